//! [`Rows`]: one document table's share of a batch's working set — the rows
//! the batch read, and which of them it changed (only those are written).
//! A bulk rebuild keeps them across batches ([`BulkTable`]).

use std::collections::{BTreeSet, HashMap, HashSet};

use super::bulk::{BulkTable, RowSink, Shape};
use super::{doc_shape, doc_values, load_docs, save_docs, DocRow, Tx};
use eventlog::StoredEvent;

use crate::models::missing;
use crate::{FoldError, ProjectionError};

/// The rows of `T`'s table a batch works on.
#[derive(Debug)]
pub struct Rows<T> {
    rows: HashMap<String, T>,
    /// The changed rows (written in key order, the order writers lock in).
    dirty: HashSet<String>,
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
    /// Changed rows being drained, last key first.
    draining: Vec<String>,
    /// Bytes per row as last sampled, and estimates since.
    per_row: usize,
    estimates: u32,
}

impl<T> Default for Rows<T> {
    fn default() -> Self {
        Self {
            rows: HashMap::new(),
            dirty: HashSet::new(),
            kept: None,
        }
    }
}

impl<T> Rows<T> {
    /// A new row (or one replaced): it is written.
    pub fn insert(&mut self, id: String, row: T) {
        mark(&mut self.dirty, &id);
        self.rows.insert(id, row);
    }

    /// A row to change: it is written.
    pub fn get_mut(&mut self, id: &str) -> Option<&mut T> {
        let row = self.rows.get_mut(id)?;
        mark(&mut self.dirty, id);
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
        mark(&mut self.dirty, id);
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
        let mut keys: Vec<&String> = self.dirty.iter().collect();
        keys.sort_unstable();
        let changed = keys.into_iter().filter_map(|k| self.rows.get_key_value(k));
        save_docs(tx, g, changed).await
    }
}

/// Adds `id` to `dirty` (allocating only the first time).
fn mark(dirty: &mut HashSet<String>, id: &str) {
    if !dirty.contains(id) {
        dirty.insert(id.to_string());
    }
}

/// Rows sampled to estimate the bytes of all of them.
const SAMPLE: usize = 16;
/// Estimates between two samples.
const RESAMPLE_EVERY: u32 = 16;

impl<T: DocRow + Send> BulkTable for Rows<T> {
    fn keep(&mut self, stored: bool) {
        self.kept = Some(Kept {
            stored,
            ..Kept::default()
        });
    }

    fn estimated_bytes(&mut self) -> usize {
        let Some(kept) = &mut self.kept else {
            return 0;
        };
        if kept.estimates % RESAMPLE_EVERY == 0 || kept.per_row == 0 {
            // A parsed row takes about twice its JSON (strings, vectors
            // and their capacity), plus the map's entry and the key.
            let sampled: Vec<usize> = self
                .rows
                .iter()
                .take(SAMPLE)
                .map(|(k, v)| k.len() + serde_json::to_vec(v).map_or(0, |j| j.len()))
                .collect();
            if let Some(n) = std::num::NonZeroUsize::new(sampled.len()) {
                kept.per_row = 2 * (sampled.iter().sum::<usize>() / n) + 96;
            }
        }
        kept.estimates = kept.estimates.wrapping_add(1);
        self.rows.len() * kept.per_row + self.dirty.len() * 48
    }

    fn shape(&self) -> Shape {
        doc_shape::<T>()
    }

    fn is_dirty(&self) -> bool {
        !self.dirty.is_empty() || self.kept.as_ref().is_some_and(|k| !k.draining.is_empty())
    }

    fn drain(&mut self, sink: &mut dyn RowSink) -> Result<bool, ProjectionError> {
        let kept = self.kept.get_or_insert_with(Kept::default);
        if kept.draining.is_empty() {
            kept.draining = self.dirty.drain().collect();
            kept.draining.sort_unstable_by(|a, b| b.cmp(a));
        }
        while let Some(key) = kept.draining.pop() {
            if let Some(row) = self.rows.remove(&key) {
                sink.row(doc_values(key, &row)?)?;
            }
            if sink.full() {
                return Ok(!kept.draining.is_empty());
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
            kept.draining.clear();
        }
    }
}

impl<T> std::ops::Deref for Rows<T> {
    type Target = HashMap<String, T>;
    fn deref(&self) -> &HashMap<String, T> {
        &self.rows
    }
}
