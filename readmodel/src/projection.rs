//! The contract between a read model and the projection engine.

use std::future::Future;

use eventlog::StoredEvent;

use crate::db::Tx;
use crate::{FoldError, ProjectionError};

/// A projection: a name, a version, the events it needs, a pure fold over a
/// working set, and its store (loading and saving that working set).
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

    /// The rows one batch reads and writes.
    type State: Default + Send;

    /// Whether the projection needs events of this type.
    fn handles(event_type: &str) -> bool;

    /// Loads the rows `events` will touch into `state`.
    fn load(
        tx: &mut Tx<'_>,
        g: i64,
        events: &[&StoredEvent],
        state: &mut Self::State,
    ) -> impl Future<Output = Result<(), ProjectionError>> + Send;

    /// Folds one event into the working set. Pure: no IO, no clock; times
    /// come from the event.
    ///
    /// # Errors
    /// A [`FoldError`] for an event the projection cannot make sense of.
    fn fold(state: &mut Self::State, event: &StoredEvent) -> Result<(), FoldError>;

    /// Writes the changed rows of `state`.
    fn save(
        tx: &mut Tx<'_>,
        g: i64,
        state: &Self::State,
    ) -> impl Future<Output = Result<(), ProjectionError>> + Send;
}
