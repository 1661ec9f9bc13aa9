//! The contract between a read model and the projection engine.

use std::future::Future;

use eventlog::StoredEvent;

use crate::db::{BulkTable, Tx};
use crate::{FoldError, ProjectionError};

/// A batch of events folded into generation `g`.
#[derive(Debug, Clone, Copy)]
pub struct Batch<'a> {
    pub g: i64,
    pub events: &'a [&'a StoredEvent],
}

/// A batch's working set: the rows a batch of events touches, loaded
/// before the fold and the changed ones saved after it (a read model's
/// `store`).
pub trait WorkingSet: Default + Send {
    /// Loads the rows `events` will touch.
    fn load(
        &mut self,
        tx: &mut Tx<'_>,
        batch: Batch<'_>,
    ) -> impl Future<Output = Result<(), ProjectionError>> + Send;

    /// Writes the changed rows.
    fn save(
        &self,
        tx: &mut Tx<'_>,
        g: i64,
    ) -> impl Future<Output = Result<(), ProjectionError>> + Send;

    /// Its tables, for a bulk rebuild that keeps the working set across
    /// batches and drains it into the tables when memory is at its bound.
    fn tables(&mut self) -> Vec<&mut dyn BulkTable>;
}

/// A projection: a name, a version, the events it needs, and a pure fold
/// over its working set (which loads and saves itself).
pub trait Projection: Send + Sync + 'static {
    /// Stable name; also the name operators use.
    const NAME: &'static str;
    /// Bump when the fold or the schema changes; a rebuild brings the live
    /// version up to date.
    const VERSION: i64;
    /// DDL template (`migrations/projections/<name>.sql`), `{g}` = generation.
    const SCHEMA: &'static str;
    /// Tables and their key order, for checksums.
    const CHECKSUM_ORDER: &'static [(&'static str, &'static str)];

    /// Whether the rows show personal data: the engine then opens sealed
    /// values with their owners' keys before the fold.
    const PERSONAL: bool = false;

    /// The rows one batch reads and writes.
    type State: WorkingSet;

    /// Whether the projection needs events of this type.
    fn handles(event_type: &str) -> bool;

    /// Folds one event into the working set. Pure: no IO, no clock; times
    /// come from the event.
    ///
    /// # Errors
    /// A [`FoldError`] for an event the projection cannot make sense of.
    fn fold(state: &mut Self::State, event: &StoredEvent) -> Result<(), FoldError>;
}
