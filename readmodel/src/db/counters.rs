//! Additive counters (analytics): deltas summed in memory over a batch.

use std::collections::HashMap;

use super::bulk::{BulkTable, Merge, Part, RowSink, Shape, Written};
use super::{SqlValue, Tx};
use crate::ProjectionError;

/// Additive counters for one table: key columns → metric deltas, summed in
/// memory over a batch and written with one upsert per key (in key order).
#[derive(Debug)]
pub struct Counters {
    table: &'static str,
    keys: &'static [&'static str],
    metrics: &'static [&'static str],
    /// The key columns joined by NUL (which no text value holds).
    rows: HashMap<String, Vec<i64>, foldhash::fast::RandomState>,
    scratch: String,
    /// Rows being drained, per [`Part`], in reverse key order.
    draining: [Vec<(String, Vec<i64>)>; 2],
    /// What a bulk fill wrote (everywhere else: any key may be stored).
    written: Written,
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
            rows: HashMap::default(),
            scratch: String::new(),
            draining: [Vec::new(), Vec::new()],
            written: Written::new(true),
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
    /// Deltas add up wherever they are written: only which keys the table
    /// holds is remembered (a new key is copied straight in).
    fn keep(&mut self, stored: bool) {
        self.written = Written::new(stored);
    }

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
        !self.rows.is_empty() || self.draining.iter().any(|d| !d.is_empty())
    }

    fn split(&mut self, _retain: usize) {
        for (key, deltas) in self.rows.drain() {
            let part = self.written.part(&key);
            self.written.add(&key);
            self.draining[part as usize].push((key, deltas));
        }
        for list in &mut self.draining {
            // Last key first: popped in key order.
            list.sort_unstable_by(|a, b| b.0.cmp(&a.0));
        }
    }

    fn has(&self, part: Part) -> bool {
        !self.draining[part as usize].is_empty()
    }

    fn drain(&mut self, part: Part, sink: &mut dyn RowSink) -> Result<bool, ProjectionError> {
        let list = &mut self.draining[part as usize];
        while let Some((key, deltas)) = list.pop() {
            sink.row(values(&key, &deltas))?;
            if sink.full() {
                return Ok(!list.is_empty());
            }
        }
        Ok(false)
    }

    /// Deltas written are gone from memory either way.
    fn written(&mut self) {
        self.rows.clear();
        for list in &mut self.draining {
            list.clear();
        }
    }
}
