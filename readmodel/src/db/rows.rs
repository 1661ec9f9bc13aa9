//! [`Rows`]: one document table's share of a batch's working set — the rows
//! the batch read, and which of them it changed (only those are written).
//! A bulk rebuild keeps them across batches ([`BulkTable`]).

use std::collections::{BTreeSet, HashMap};

use super::bulk::{BulkTable, Part, RowSink, Shape, Written};
use super::cold::Cold;
use super::{doc_shape, doc_values, load_docs, save_docs, DocRow, SqlValue, Tx};
use eventlog::StoredEvent;

use crate::models::missing;
use crate::{FoldError, ProjectionError};

/// A map keyed by row keys (foldhash: the working sets hash every key of
/// every event; SipHash took 3 % of a rebuild).
type Map<V> = HashMap<String, V, foldhash::fast::RandomState>;

/// The rows of `T`'s table a batch works on.
#[derive(Debug)]
pub struct Rows<T> {
    rows: Map<T>,
    /// The changed rows (written in key order, the order writers lock in),
    /// each with the batch that changed it last.
    dirty: Map<u32>,
    /// Kept across batches (a bulk rebuild), else `None`.
    kept: Option<Kept>,
}

/// What a working set kept across batches knows besides its rows.
#[derive(Debug)]
struct Kept {
    /// Which keys the table may hold.
    written: Written,
    /// The batch being folded.
    epoch: u32,
    /// The keys the last load asked for (this batch's rows).
    batch: Vec<String>,
    /// Changed rows being drained, per [`Part`], last key first.
    draining: [Vec<String>; 2],
    /// The bytes of rows the write-out under way keeps (a spill: rows stay
    /// in memory until it commits, the most recent after).
    retain: usize,
    /// Bytes per row as last sampled, and estimates since.
    per_row: usize,
    estimates: u32,
    /// Changed rows not touched for a while, compressed.
    cold: Cold,
    /// Whether rows are being frozen (memory is short): changes are noted
    /// by batch only then.
    freezing: bool,
}

impl Kept {
    /// `stored`: the table may hold rows already.
    fn new(stored: bool) -> Self {
        Self {
            written: Written::new(stored),
            epoch: 0,
            batch: Vec::new(),
            draining: [Vec::new(), Vec::new()],
            retain: 0,
            per_row: 0,
            estimates: 0,
            cold: Cold::default(),
            freezing: false,
        }
    }
}

/// The share of the changed rows a spill keeps in memory: the most
/// recently changed (an order's events come close together; a row not
/// changed for a while rarely changes again).
const RETAIN: usize = 4;

impl<T> Default for Rows<T> {
    fn default() -> Self {
        Self {
            rows: Map::default(),
            dirty: Map::default(),
            kept: None,
        }
    }
}

impl<T> Rows<T> {
    /// A new row (or one replaced): it is written.
    pub fn insert(&mut self, id: String, row: T) {
        changed(&mut self.dirty, &mut self.kept, &id);
        if let Some(kept) = &mut self.kept {
            if !kept.cold.is_empty() {
                // The new row replaces a cold one.
                kept.cold.discard(&id);
            }
        }
        self.rows.insert(id, row);
    }

    /// A row to change: it is written.
    pub fn get_mut(&mut self, id: &str) -> Option<&mut T> {
        let row = self.rows.get_mut(id)?;
        changed(&mut self.dirty, &mut self.kept, id);
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
        changed(&mut self.dirty, &mut self.kept, id);
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
        let Some(kept) = &mut self.kept else {
            // In key order: the order writers lock rows in.
            let keys: Vec<String> = keys
                .into_iter()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            self.rows = load_docs(tx, T::TABLE, T::KEY, g, &keys).await?;
            return Ok(());
        };
        // A bulk fill locks nothing: distinct keys, in no order.
        let keys: std::collections::HashSet<String, foldhash::fast::RandomState> =
            keys.into_iter().collect();
        let keys: Vec<String> = keys.into_iter().collect();
        // Cold rows this batch touches are parsed again (still changed).
        if !kept.cold.is_empty() {
            for key in &keys {
                if let Some(row) = kept.cold.thaw::<T>(key)? {
                    self.rows.insert(key.clone(), row);
                    mark(&mut self.dirty, key, kept.epoch);
                    if kept.freezing {
                        kept.cold.note(kept.epoch, key);
                    }
                }
            }
        }
        // Only rows the table may hold are looked up (a new key is not).
        let missing: Vec<String> = keys
            .iter()
            .filter(|k| !self.rows.contains_key(*k) && kept.written.may_hold(k))
            .cloned()
            .collect();
        if !missing.is_empty() {
            let found: Map<T> = load_docs(tx, T::TABLE, T::KEY, g, &missing).await?;
            self.rows.extend(found);
        }
        kept.batch = keys;
        Ok(())
    }

    /// Writes the changed rows (generation `g`).
    ///
    /// # Errors
    /// Database errors.
    pub async fn save(&self, tx: &mut Tx<'_>, g: i64) -> Result<(), ProjectionError> {
        let mut keys: Vec<&String> = self.dirty.keys().collect();
        keys.sort_unstable();
        let changed = keys.into_iter().filter_map(|k| self.rows.get_key_value(k));
        save_docs(tx, g, changed).await
    }
}

/// Marks `id` changed in batch `epoch` (allocating only the first time);
/// whether that moved its batch.
fn mark(dirty: &mut Map<u32>, id: &str, epoch: u32) -> bool {
    match dirty.get_mut(id) {
        Some(at) if *at == epoch => false,
        Some(at) => {
            *at = epoch;
            true
        }
        None => {
            dirty.insert(id.to_string(), epoch);
            true
        }
    }
}

/// Marks `id` changed in the batch being folded (and, kept across
/// batches, when).
fn changed(dirty: &mut Map<u32>, kept: &mut Option<Kept>, id: &str) {
    let epoch = kept.as_ref().map_or(0, |k| k.epoch);
    if mark(dirty, id, epoch) {
        if let Some(kept) = kept.as_mut().filter(|k| k.freezing) {
            kept.cold.note(epoch, id);
        }
    }
}

/// Rows sampled to estimate the bytes of all of them.
const SAMPLE: usize = 16;
/// Estimates between two samples.
const RESAMPLE_EVERY: u32 = 16;

impl<T: DocRow + Send> BulkTable for Rows<T> {
    fn keep(&mut self, stored: bool) {
        self.kept = Some(Kept::new(stored));
    }

    fn tick(&mut self, freeze: bool) {
        if let Some(kept) = &mut self.kept {
            kept.epoch = kept.epoch.wrapping_add(1);
        }
        if let Some(kept) = &mut self.kept {
            let now = kept.epoch;
            let work = (&mut self.rows, &mut self.dirty);
            kept.cold
                .freeze_aged(work, now, (&mut kept.freezing, freeze));
        }
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
        self.rows.len() * kept.per_row + self.dirty.len() * 48 + kept.cold.bytes()
    }

    fn shape(&self) -> Shape {
        doc_shape::<T>()
    }

    fn is_dirty(&self) -> bool {
        !self.dirty.is_empty() || self.kept.as_ref().is_some_and(|k| !k.cold.is_empty())
    }

    fn split(&mut self, retain: usize) {
        // Outside a bulk fill any key may be stored.
        let kept = self.kept.get_or_insert_with(|| Kept::new(true));
        kept.retain = retain;
        // Cold rows leave memory as they are drained.
        let cold: Vec<String> = kept.cold.keys().cloned().collect();
        let mut sort = |key: String| {
            kept.draining[kept.written.part(&key) as usize].push(key);
        };
        if retain > 0 {
            // The change times decide what stays once written.
            self.dirty.keys().cloned().for_each(&mut sort);
        } else {
            self.dirty.drain().map(|(k, _)| k).for_each(&mut sort);
        }
        cold.into_iter().for_each(&mut sort);
        for list in &mut kept.draining {
            for key in list.iter() {
                kept.written.add(key);
            }
            list.sort_unstable_by(|a, b| b.cmp(a));
        }
    }

    fn has(&self, part: Part) -> bool {
        self.kept
            .as_ref()
            .is_some_and(|k| !k.draining[part as usize].is_empty())
    }

    fn drain(&mut self, part: Part, sink: &mut dyn RowSink) -> Result<bool, ProjectionError> {
        let Some(kept) = &mut self.kept else {
            return Ok(false);
        };
        let list = &mut kept.draining[part as usize];
        while let Some(key) = list.pop() {
            if !self.rows.contains_key(&key) {
                if let Some(values) = kept.cold.take(&key)? {
                    let mut row = Vec::with_capacity(values.len() + 1);
                    row.push(SqlValue::Text(key));
                    row.extend(values);
                    sink.row(row)?;
                }
            } else if kept.retain > 0 {
                if let Some(row) = self.rows.get(&key) {
                    sink.row(doc_values(key, row)?)?;
                }
            } else if let Some((key, row)) = self.rows.remove_entry(&key) {
                sink.row(doc_values(key, &row)?)?;
            }
            if sink.full() {
                return Ok(!list.is_empty());
            }
        }
        Ok(false)
    }

    fn written(&mut self) {
        let Some(kept) = &mut self.kept else {
            return;
        };
        kept.batch.clear();
        for list in &mut kept.draining {
            list.clear();
        }
        let fits = kept.retain / kept.per_row.max(1);
        let keep = (self.dirty.len() / RETAIN).min(fits);
        if keep > 0 {
            // The most recently changed rows stay (at most a quarter, and
            // what fits); unchanged rows and the rest go (later loads read
            // them back).
            let mut epochs: Vec<u32> = self.dirty.values().copied().collect();
            let at = epochs.len() - keep - 1;
            let (_, cutoff, _) = epochs.select_nth_unstable(at);
            let (cutoff, dirty) = (*cutoff, &self.dirty);
            self.rows
                .retain(|k, _| dirty.get(k).is_some_and(|epoch| *epoch > cutoff));
            self.rows.shrink_to_fit();
        } else {
            self.rows = Map::default();
        }
        self.dirty = Map::default();
    }
}

impl<T> std::ops::Deref for Rows<T> {
    type Target = Map<T>;
    fn deref(&self) -> &Map<T> {
        &self.rows
    }
}
