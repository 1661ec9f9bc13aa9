//! shopstream projectors: the projection engine.
//!
//! A projection (a read model of crate `readmodel`) folds the event log into
//! read-model tables. The engine ([`engine::run`]) tails the store below its
//! safe horizon and applies each batch in one transaction together with the
//! projection's checkpoint, so a crash at any instant loses and duplicates
//! nothing (invariant 4). Each build of a projection's tables is a
//! *generation*; readers query views that point at the live generation, and
//! [`rebuild`] fills a shadow generation from position 0 and swaps it in
//! atomically (invariant 7). The Kafka source lives in crate `relay`.
//!
//! # Layout
//! - `engine`: batch application, the tail loop, first generations.
//! - `observe`: event spans and batch metrics (both sources).
//! - `rebuild`: shadow rebuild with progress, diff, verify and swap.
//! - `testing` (feature `testing`): a seeded generator of valid shop activity.

pub mod engine;
pub mod observe;
pub mod rebuild;
#[cfg(feature = "testing")]
pub mod testing;

use eventlog::EventLog;
use readmodel::{
    Analytics, CustomerView, OrderViewProjection, Projection, ProjectionError, ReadDb, Wake,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Starts every projection's tail loop (several projections, one process).
/// `wake` signals new events; `commits` is signalled after every commit;
/// `pace`: how often to read.
pub fn spawn_all(
    log: &EventLog,
    db: &ReadDb,
    wake: &Wake,
    commits: &Wake,
    pace: engine::Pace,
    shutdown: &watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    fn one<P: Projection>(
        (log, db, wake, commits): (&EventLog, &ReadDb, &Wake, &Wake),
        pace: engine::Pace,
        shutdown: &watch::Receiver<bool>,
    ) -> JoinHandle<()> {
        let (log, db, wake, commits) = (log.clone(), db.clone(), wake.clone(), commits.clone());
        tokio::spawn(engine::run::<P>(
            log,
            db,
            wake,
            commits,
            pace,
            shutdown.clone(),
        ))
    }
    let with = (log, db, wake, commits);
    vec![
        one::<CustomerView>(with, pace, shutdown),
        one::<OrderViewProjection>(with, pace, shutdown),
        one::<Analytics>(with, pace, shutdown),
    ]
}

/// Creates every projection's live generation if it has none (so the views
/// exist before the first query).
///
/// # Errors
/// Database errors.
pub async fn ensure_all(db: &ReadDb) -> Result<(), ProjectionError> {
    engine::ensure_live::<CustomerView>(db).await?;
    engine::ensure_live::<OrderViewProjection>(db).await?;
    engine::ensure_live::<Analytics>(db).await?;
    Ok(())
}
