//! [`Rows`]: one document table's share of a batch's working set — the rows
//! the batch read, and which of them it changed (only those are written).
//! A bulk rebuild keeps them across batches ([`BulkTable`]).

use std::collections::{BTreeSet, HashMap};

use super::bulk::{BulkTable, RowSink, Shape};
use super::{doc_shape, doc_values, load_docs, save_docs, DocRow, Tx};
use eventlog::StoredEvent;

use crate::models::missing;
use crate::{FoldError, ProjectionError};

/// The rows of `T`'s table a batch works on.
#[derive(Debug)]
pub struct Rows<T> {
    rows: HashMap<String, T>,
    dirty: BTreeSet<String>,
    /// Kept across batches (a bulk rebuild), else `None`.
    kept: Option<Kept>,
}

/// What a working set kept across batches knows besides its rows.
#[derive(Debug, Default)]
struct Kept {
    /// The table may hold rows that are not in memory.
    stored: bool,
    /// The keys the last load asked for (this batch's rows).
    batch: Vec<String>,
}

impl<T> Default for Rows<T> {
    fn default() -> Self {
        Self {
            rows: HashMap::new(),
            dirty: BTreeSet::new(),
            kept: None,
        }
    }
}

impl<T> Rows<T> {
    /// A new row (or one replaced): it is written.
    pub fn insert(&mut self, id: String, row: T) {
        self.dirty.insert(id.clone());
        self.rows.insert(id, row);
    }

    /// A row to change: it is written.
    pub fn get_mut(&mut self, id: &str) -> Option<&mut T> {
        let row = self.rows.get_mut(id)?;
        self.dirty.insert(id.to_string());
        Some(row)
    }

    /// The row `e` changes (`what` `id`): it is written; a missing one is a
    /// fold error naming it.
    ///
    /// # Errors
    /// [`FoldError`] when the row is not in the working set.
    pub fn existing(&mut self, what: &str, id: &str, e: &StoredEvent) -> Result<&mut T, FoldError> {
        self.get_mut(id).ok_or_else(|| missing(what, id, e))
    }

    /// Marks a row written (it was changed through a copy).
    pub fn touch(&mut self, id: &str) {
        self.dirty.insert(id.to_string());
    }

    /// The rows the last load asked for that exist (every row in memory,
    /// unless the rows are kept across batches).
    pub fn loaded(&self) -> Box<dyn Iterator<Item = &T> + '_> {
        match &self.kept {
            Some(kept) => Box::new(kept.batch.iter().filter_map(|k| self.rows.get(k))),
            None => Box::new(self.rows.values()),
        }
    }
}

impl<T: DocRow> Rows<T> {
    /// Reads the rows of `keys` (generation `g`) that exist.
    ///
    /// # Errors
    /// Database errors, or an unreadable document.
    pub async fn load(
        &mut self,
        tx: &mut Tx<'_>,
        g: i64,
        keys: impl IntoIterator<Item = String>,
    ) -> Result<(), ProjectionError> {
        let keys: Vec<String> = keys
            .into_iter()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let Some(kept) = &mut self.kept else {
            self.rows = load_docs(tx, T::TABLE, T::KEY, g, &keys).await?;
            return Ok(());
        };
        if kept.stored {
            let missing: Vec<String> = keys
                .iter()
                .filter(|k| !self.rows.contains_key(*k))
                .cloned()
                .collect();
            if !missing.is_empty() {
                let found: HashMap<String, T> =
                    load_docs(tx, T::TABLE, T::KEY, g, &missing).await?;
                self.rows.extend(found);
            }
        }
        kept.batch = keys;
        Ok(())
    }

    /// Writes the changed rows (generation `g`).
    ///
    /// # Errors
    /// Database errors.
    pub async fn save(&self, tx: &mut Tx<'_>, g: i64) -> Result<(), ProjectionError> {
        let changed = self.dirty.iter().filter_map(|k| self.rows.get_key_value(k));
        save_docs(tx, g, changed).await
    }
}

/// Rows sampled to estimate the bytes of all of them.
const SAMPLE: usize = 32;

impl<T: DocRow + Send> BulkTable for Rows<T> {
    fn keep(&mut self, stored: bool) {
        self.kept = Some(Kept {
            stored,
            batch: Vec::new(),
        });
    }

    fn estimated_bytes(&self) -> usize {
        // A parsed row takes about twice its JSON (strings, vectors and
        // their capacity), plus the map's entry and the key.
        let sampled: Vec<usize> = self
            .rows
            .iter()
            .take(SAMPLE)
            .map(|(k, v)| k.len() + serde_json::to_vec(v).map_or(0, |j| j.len()))
            .collect();
        let Some(n) = std::num::NonZeroUsize::new(sampled.len()) else {
            return 0;
        };
        let mean = sampled.iter().sum::<usize>() / n;
        self.rows.len() * (2 * mean + 96) + self.dirty.len() * 48
    }

    fn shape(&self) -> Shape {
        doc_shape::<T>()
    }

    fn is_dirty(&self) -> bool {
        !self.dirty.is_empty()
    }

    fn drain(&mut self, sink: &mut dyn RowSink) -> Result<bool, ProjectionError> {
        while let Some(key) = self.dirty.pop_first() {
            if let Some(row) = self.rows.remove(&key) {
                sink.row(doc_values(key, &row)?)?;
            }
            if sink.full() {
                return Ok(!self.dirty.is_empty());
            }
        }
        Ok(false)
    }

    fn clear(&mut self) {
        self.rows = HashMap::new();
        self.dirty.clear();
        if let Some(kept) = &mut self.kept {
            kept.stored = true;
            kept.batch.clear();
        }
    }
}

impl<T> std::ops::Deref for Rows<T> {
    type Target = HashMap<String, T>;
    fn deref(&self) -> &HashMap<String, T> {
        &self.rows
    }
}
