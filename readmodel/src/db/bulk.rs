//! Working sets a bulk rebuild keeps in memory across batches, and how
//! their rows leave memory: drained row by row into a [`RowSink`] (a
//! PostgreSQL binary `COPY`, or multi-row upserts on SQLite).

use super::{bind_all, placeholders, sized_query, SqlValue, Tx, CHUNK};
use crate::ProjectionError;

/// How a written row meets one already in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Merge {
    /// The new row replaces the stored one (documents).
    Replace,
    /// The metrics are added to the stored ones (counters).
    Add,
}

/// A table's columns as a working set writes them.
#[derive(Debug, Clone)]
pub struct Shape {
    pub table: &'static str,
    /// Every written column, in the order rows give their values.
    pub columns: Vec<&'static str>,
    /// The key columns (the conflict target).
    pub keys: Vec<&'static str>,
    pub merge: Merge,
}

impl Shape {
    /// `ON CONFLICT (keys) DO UPDATE SET …` for generation `g`'s table.
    pub fn on_conflict(&self, g: i64) -> String {
        let table = self.table;
        let updates = self
            .columns
            .iter()
            .filter(|c| !self.keys.contains(c))
            .map(|c| match self.merge {
                Merge::Replace => format!("{c} = excluded.{c}"),
                Merge::Add => format!("{c} = {table}_g{g}.{c} + excluded.{c}"),
            })
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "ON CONFLICT ({}) DO UPDATE SET {updates}",
            self.keys.join(", ")
        )
    }

    /// Writes `rows` (each in column order) into generation `g` with
    /// multi-row upserts, [`CHUNK`] rows per statement.
    ///
    /// # Errors
    /// Database errors.
    pub async fn upsert(
        &self,
        tx: &mut Tx<'_>,
        g: i64,
        rows: Vec<Vec<SqlValue>>,
    ) -> Result<(), ProjectionError> {
        let width = self.columns.len();
        let tail = self.on_conflict(g);
        let mut rows = rows.into_iter().peekable();
        while rows.peek().is_some() {
            let mut values = Vec::with_capacity(CHUNK * width);
            let mut tuples = Vec::with_capacity(CHUNK);
            for row in rows.by_ref().take(CHUNK) {
                tuples.push(format!("({})", placeholders(values.len() + 1, width)));
                values.extend(row);
            }
            let sql = format!(
                "INSERT INTO {}_g{g} ({}) VALUES {} {tail}",
                self.table,
                self.columns.join(", "),
                tuples.join(", ")
            );
            bind_all(sized_query(&sql, tuples.len()), values)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }
}

/// Where drained rows go.
pub trait RowSink {
    /// Takes one row (values in the table's column order).
    ///
    /// # Errors
    /// A value the sink cannot encode.
    fn row(&mut self, values: Vec<SqlValue>) -> Result<(), ProjectionError>;

    /// Whether the sink wants to be written out before taking more.
    fn full(&self) -> bool;
}

/// Rows collected for [`Shape::upsert`] (SQLite), [`CHUNK`] × 16 at a time.
#[derive(Debug, Default)]
pub struct Collected(pub Vec<Vec<SqlValue>>);

impl RowSink for Collected {
    fn row(&mut self, values: Vec<SqlValue>) -> Result<(), ProjectionError> {
        self.0.push(values);
        Ok(())
    }

    fn full(&self) -> bool {
        self.0.len() >= CHUNK * 16
    }
}

/// Which of a working set's changed rows a drain takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Rows the table cannot hold yet: written straight in.
    New,
    /// Rows the table may hold (written earlier by this fill, or by the
    /// run it resumes): merged with the table's own rule.
    Stored,
}

/// One table of a working set that a bulk rebuild keeps in memory across
/// batches ([`crate::Rows`], [`crate::db::Counters`]). A write-out splits
/// its changed rows ([`BulkTable::split`]), drains each [`Part`], and
/// after the commit forgets what it wrote ([`BulkTable::written`]).
pub trait BulkTable: Send {
    /// Keeps rows across loads from now on; `stored`: the table may hold
    /// rows that are not in memory (loads then read the missing ones).
    fn keep(&mut self, stored: bool);

    /// One batch was folded: rows changed from now on are younger.
    /// `freeze`: memory is short; changed rows no batch touched for a
    /// while are kept compressed (see `cold`) instead of parsed.
    fn tick(&mut self, freeze: bool) {
        let _ = freeze;
    }

    /// Roughly how many bytes the rows in memory take.
    fn estimated_bytes(&mut self) -> usize;

    /// The columns rows are drained in.
    fn shape(&self) -> Shape;

    /// Whether a row changed since the last write-out.
    fn is_dirty(&self) -> bool;

    /// Sorts the changed rows into the two [`Part`]s, each in key order.
    /// `retain`: the bytes of the most recently changed rows a spill may
    /// keep in memory once written (they are likely to change again); at
    /// 0 every row leaves memory as it is drained.
    fn split(&mut self, retain: usize);

    /// Whether `part` holds rows to drain.
    fn has(&self, part: Part) -> bool;

    /// Hands `part`'s rows to `sink` until it is full; `Ok(true)` while
    /// rows of `part` remain.
    ///
    /// # Errors
    /// A row that cannot be serialized or encoded.
    fn drain(&mut self, part: Part, sink: &mut dyn RowSink) -> Result<bool, ProjectionError>;

    /// The drained rows are in the table (committed): forgets them, but
    /// for the ones a spill retains.
    fn written(&mut self);
}

/// The keys a bulk fill wrote into a table, as hashes: a key not among
/// them is not in the table (unless the fill resumed one that held rows),
/// so neither looked up nor merged. A collision only costs a lookup.
#[derive(Debug)]
pub(crate) struct Written {
    /// The table held rows before this run: any key may be there.
    resumed: bool,
    keys: std::collections::HashSet<u64, foldhash::fast::RandomState>,
    hasher: foldhash::fast::RandomState,
}

impl Written {
    pub(crate) fn new(resumed: bool) -> Self {
        Self {
            resumed,
            keys: std::collections::HashSet::default(),
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    /// Whether the table may hold `key`.
    pub(crate) fn may_hold(&self, key: &str) -> bool {
        use std::hash::BuildHasher;
        self.resumed || self.keys.contains(&self.hasher.hash_one(key))
    }

    /// `key` is in the table now.
    pub(crate) fn add(&mut self, key: &str) {
        use std::hash::BuildHasher;
        if !self.resumed {
            self.keys.insert(self.hasher.hash_one(key));
        }
    }

    /// Which part a changed row of `key` belongs to.
    pub(crate) fn part(&self, key: &str) -> Part {
        if self.may_hold(key) {
            Part::Stored
        } else {
            Part::New
        }
    }
}

/// Writes every changed row of `table` into generation `g` with upserts
/// (the portable path; PostgreSQL uses `COPY`, see [`crate::db::copy`]);
/// `retain`: see [`BulkTable::split`].
///
/// # Errors
/// Database errors; a row that cannot be serialized.
pub async fn upsert_all(
    tx: &mut Tx<'_>,
    g: i64,
    table: &mut dyn BulkTable,
    retain: usize,
) -> Result<(), ProjectionError> {
    let shape = table.shape();
    table.split(retain);
    for part in [Part::New, Part::Stored] {
        while table.has(part) {
            let mut rows = Collected::default();
            let more = table.drain(part, &mut rows)?;
            shape.upsert(tx, g, rows.0).await?;
            if !more {
                break;
            }
        }
    }
    Ok(())
}
