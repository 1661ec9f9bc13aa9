//! [`Rows`]: one document table's share of a batch's working set — the rows
//! the batch read, and which of them it changed (only those are written).

use std::collections::{BTreeSet, HashMap};

use super::{load_docs, save_docs, DocRow, Tx};
use eventlog::StoredEvent;

use crate::models::missing;
use crate::{FoldError, ProjectionError};

/// The rows of `T`'s table a batch works on.
#[derive(Debug)]
pub struct Rows<T> {
    rows: HashMap<String, T>,
    dirty: BTreeSet<String>,
}

impl<T> Default for Rows<T> {
    fn default() -> Self {
        Self {
            rows: HashMap::new(),
            dirty: BTreeSet::new(),
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
        self.rows = load_docs(tx, T::TABLE, T::KEY, g, &keys).await?;
        Ok(())
    }

    /// Writes the changed rows (generation `g`).
    ///
    /// # Errors
    /// Database errors.
    pub async fn save(&self, tx: &mut Tx<'_>, g: i64) -> Result<(), ProjectionError> {
        let changed = self.dirty.iter().filter_map(|k| self.rows.get_key_value(k));
        save_docs(tx, T::TABLE, T::KEY, g, changed).await
    }
}

impl<T> std::ops::Deref for Rows<T> {
    type Target = HashMap<String, T>;
    fn deref(&self) -> &HashMap<String, T> {
        &self.rows
    }
}
