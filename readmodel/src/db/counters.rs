//! Additive counters (analytics): deltas summed in memory over a batch.

use std::collections::BTreeMap;

use super::bulk::{BulkTable, Merge, RowSink, Shape};
use super::{SqlValue, Tx};
use crate::ProjectionError;

/// Additive counters for one table: key columns → metric deltas, summed in
/// memory over a batch and written with one upsert per key.
#[derive(Debug, Clone)]
pub struct Counters {
    table: &'static str,
    keys: &'static [&'static str],
    metrics: &'static [&'static str],
    rows: BTreeMap<Vec<String>, Vec<i64>>,
}

impl Counters {
    /// Counters for `table` keyed by `keys`, with `metrics`.
    pub fn new(
        table: &'static str,
        keys: &'static [&'static str],
        metrics: &'static [&'static str],
    ) -> Self {
        Self {
            table,
            keys,
            metrics,
            rows: BTreeMap::new(),
        }
    }

    /// Adds `delta` to `metric` of the row `key`.
    pub fn add(&mut self, key: &[&str], metric: &str, delta: i64) {
        let Some(i) = self.metrics.iter().position(|m| *m == metric) else {
            debug_assert!(false, "unknown metric {metric}");
            return;
        };
        let row = self
            .rows
            .entry(key.iter().map(|k| (*k).to_string()).collect())
            .or_insert_with(|| vec![0; self.metrics.len()]);
        row[i] += delta;
    }

    /// Whether nothing was counted.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The summed deltas (for tests).
    pub fn rows(&self) -> &BTreeMap<Vec<String>, Vec<i64>> {
        &self.rows
    }

    /// Writes the deltas into generation `g`.
    ///
    /// # Errors
    /// Database errors.
    pub async fn save(&self, tx: &mut Tx<'_>, g: i64) -> Result<(), ProjectionError> {
        let rows = self
            .rows
            .iter()
            .map(|(k, d)| values(k.clone(), d))
            .collect();
        self.shape().upsert(tx, g, rows).await
    }
}

/// A counter row's values: its key columns, then its metrics.
fn values(key: Vec<String>, deltas: &[i64]) -> Vec<SqlValue> {
    key.into_iter()
        .map(SqlValue::Text)
        .chain(deltas.iter().copied().map(SqlValue::Int))
        .collect()
}

impl BulkTable for Counters {
    /// Deltas add up wherever they are written: nothing to remember.
    fn keep(&mut self, _stored: bool) {}

    fn estimated_bytes(&self) -> usize {
        let per_row = self.metrics.len() * 8 + self.keys.len() * 40 + 96;
        self.rows.len() * per_row
    }

    fn shape(&self) -> Shape {
        Shape {
            table: self.table,
            columns: [self.keys, self.metrics].concat(),
            keys: self.keys.to_vec(),
            merge: Merge::Add,
        }
    }

    fn is_dirty(&self) -> bool {
        !self.rows.is_empty()
    }

    fn drain(&mut self, sink: &mut dyn RowSink) -> Result<bool, ProjectionError> {
        while let Some((key, deltas)) = self.rows.pop_first() {
            sink.row(values(key, &deltas))?;
            if sink.full() {
                return Ok(!self.rows.is_empty());
            }
        }
        Ok(false)
    }

    fn clear(&mut self) {
        self.rows.clear();
    }
}
