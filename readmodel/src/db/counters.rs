//! Additive counters (analytics): deltas summed in memory over a batch.

use std::collections::BTreeMap;

use super::{bind_all, placeholders, SqlValue, Tx, CHUNK};
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
        let rows: Vec<_> = self.rows.iter().collect();
        let width = self.keys.len() + self.metrics.len();
        let table = self.table;
        let updates = self
            .metrics
            .iter()
            .map(|m| format!("{m} = {table}_g{g}.{m} + excluded.{m}"))
            .collect::<Vec<_>>()
            .join(", ");
        let columns = [self.keys, self.metrics].concat().join(", ");
        for chunk in rows.chunks(CHUNK) {
            let mut values = Vec::with_capacity(chunk.len() * width);
            let mut tuples = Vec::with_capacity(chunk.len());
            for (key, deltas) in chunk {
                tuples.push(format!("({})", placeholders(values.len() + 1, width)));
                values.extend(key.iter().cloned().map(SqlValue::Text));
                values.extend(deltas.iter().copied().map(SqlValue::Int));
            }
            let sql = format!(
                "INSERT INTO {table}_g{g} ({columns}) VALUES {} ON CONFLICT ({}) DO UPDATE SET {updates}",
                tuples.join(", "),
                self.keys.join(", ")
            );
            bind_all(sqlx::query(&sql), values)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }
}
