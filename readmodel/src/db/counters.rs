//! Additive counters (analytics): deltas summed in memory over a batch.

use std::collections::HashMap;

use super::bulk::{BulkTable, Merge, RowSink, Shape};
use super::{SqlValue, Tx};
use crate::ProjectionError;

/// Additive counters for one table: key columns → metric deltas, summed in
/// memory over a batch and written with one upsert per key (in key order).
#[derive(Debug, Clone)]
pub struct Counters {
    table: &'static str,
    keys: &'static [&'static str],
    metrics: &'static [&'static str],
    /// The key columns joined by NUL (which no text value holds).
    rows: HashMap<String, Vec<i64>>,
    scratch: String,
    /// Rows being drained, in reverse key order.
    draining: Vec<(String, Vec<i64>)>,
}

/// Between the key columns of a joined key.
const SEP: char = '\0';

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
            rows: HashMap::new(),
            scratch: String::new(),
            draining: Vec::new(),
        }
    }

    /// Adds `delta` to `metric` of the row `key`.
    pub fn add(&mut self, key: &[&str], metric: &str, delta: i64) {
        let Some(i) = self.metrics.iter().position(|m| *m == metric) else {
            debug_assert!(false, "unknown metric {metric}");
            return;
        };
        join(&mut self.scratch, key);
        if let Some(row) = self.rows.get_mut(self.scratch.as_str()) {
            row[i] += delta;
            return;
        }
        let mut row = vec![0; self.metrics.len()];
        row[i] = delta;
        self.rows.insert(self.scratch.clone(), row);
    }

    /// Whether nothing was counted.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The summed deltas of `key` (for tests).
    pub fn get(&self, key: &[&str]) -> Option<&Vec<i64>> {
        let mut joined = String::new();
        join(&mut joined, key);
        self.rows.get(&joined)
    }

    /// The rows in key order (the order writers lock them in).
    fn sorted(&self) -> Vec<(&String, &Vec<i64>)> {
        let mut rows: Vec<_> = self.rows.iter().collect();
        rows.sort_unstable_by(|a, b| a.0.cmp(b.0));
        rows
    }

    /// Writes the deltas into generation `g`.
    ///
    /// # Errors
    /// Database errors.
    pub async fn save(&self, tx: &mut Tx<'_>, g: i64) -> Result<(), ProjectionError> {
        let rows = self
            .sorted()
            .into_iter()
            .map(|(k, d)| values(k, d))
            .collect();
        self.shape().upsert(tx, g, rows).await
    }
}

/// `key`'s columns joined into `out`.
fn join(out: &mut String, key: &[&str]) {
    out.clear();
    for (i, k) in key.iter().enumerate() {
        if i > 0 {
            out.push(SEP);
        }
        out.push_str(k);
    }
}

/// A counter row's values: its key columns, then its metrics.
fn values(key: &str, deltas: &[i64]) -> Vec<SqlValue> {
    key.split(SEP)
        .map(|k| SqlValue::Text(k.to_string()))
        .chain(deltas.iter().copied().map(SqlValue::Int))
        .collect()
}

impl BulkTable for Counters {
    /// Deltas add up wherever they are written: nothing to remember.
    fn keep(&mut self, _stored: bool) {}

    fn estimated_bytes(&mut self) -> usize {
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
        !self.rows.is_empty() || !self.draining.is_empty()
    }

    fn drain(&mut self, sink: &mut dyn RowSink) -> Result<bool, ProjectionError> {
        if self.draining.is_empty() {
            // Last key first: popped in key order.
            self.draining = self.rows.drain().collect();
            self.draining.sort_unstable_by(|a, b| b.0.cmp(&a.0));
        }
        while let Some((key, deltas)) = self.draining.pop() {
            sink.row(values(&key, &deltas))?;
            if sink.full() {
                return Ok(!self.draining.is_empty());
            }
        }
        Ok(false)
    }

    fn clear(&mut self) {
        self.rows.clear();
        self.draining.clear();
    }
}
