//! [`Rows`]: one document table's share of a batch's working set — the rows
//! the batch read, and which of them it changed (only those are written).

use std::collections::{BTreeSet, HashMap};

use super::{load_docs, save_docs, DocRow, Tx};
use crate::ProjectionError;

/// The rows of `table` (keyed by `key`) a batch works on.
#[derive(Debug)]
pub struct Rows<T> {
    table: &'static str,
    key: &'static str,
    rows: HashMap<String, T>,
    dirty: BTreeSet<String>,
}

impl<T> Rows<T> {
    /// An empty working set of `table`, keyed by `key`.
    pub fn new(table: &'static str, key: &'static str) -> Self {
        Self {
            table,
            key,
            rows: HashMap::new(),
            dirty: BTreeSet::new(),
        }
    }

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

    /// Marks a row written (it was changed through a copy).
    pub fn touch(&mut self, id: &str) {
        self.dirty.insert(id.to_string());
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
        self.rows = load_docs(tx, self.table, self.key, g, &keys).await?;
        Ok(())
    }

    /// Writes the changed rows (generation `g`).
    ///
    /// # Errors
    /// Database errors.
    pub async fn save(&self, tx: &mut Tx<'_>, g: i64) -> Result<(), ProjectionError> {
        let changed = self.dirty.iter().filter_map(|k| self.rows.get_key_value(k));
        save_docs(tx, self.table, self.key, g, changed).await
    }
}

impl<T> std::ops::Deref for Rows<T> {
    type Target = HashMap<String, T>;
    fn deref(&self) -> &HashMap<String, T> {
        &self.rows
    }
}
