//! shopstream projectors: the projection engine and the read models.
//!
//! A projection folds the event log into read-model tables. The engine
//! ([`engine::run`]) tails the store below its safe horizon and applies each
//! batch in one transaction together with the projection's checkpoint, so a
//! crash at any instant loses and duplicates nothing (invariant 4). Each build
//! of a projection's tables is a *generation*; readers query views that point
//! at the live generation, and [`rebuild`] fills a shadow generation from
//! position 0 and swaps it in atomically (invariant 7).
//!
//! # Layout
//! - `engine`: the [`Projection`] trait, batch application, the tail loop, wake-ups.
//! - `kafka`: the Kafka source (consumer group, positions in the read-model database).
//! - `registry`: generations, checkpoints, states, the atomic swap (SQL).
//! - `store`: the read-model pool and generic row operations (documents, counters, checksums).
//! - `models`: the read models — `customer` (customer_view), `orders` (order_view), `analytics`.
//! - `rebuild`: shadow rebuild with progress, diff, verify and swap.
//! - `status`: per-projection version, checkpoint, lag and state.
//! - `error`: [`ProjectionError`], [`FoldError`].
//! - `testing` (feature `testing`): a seeded generator of valid shop activity.

pub mod engine;
mod error;
pub mod kafka;
pub mod models;
pub mod rebuild;
pub mod registry;
pub mod status;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;

use std::time::Duration;

pub use engine::{Projection, Wake};
pub use error::{FoldError, ProjectionError};
use eventlog::EventLog;
pub use models::analytics::Analytics;
pub use models::customer::CustomerView;
pub use models::orders::OrderViewProjection;
pub use store::ReadDb;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The names of every projection, in the order operators see them.
pub const NAMES: &[&str] = &[
    CustomerView::NAME,
    OrderViewProjection::NAME,
    Analytics::NAME,
];

/// Starts every projection's tail loop (several projections, one process).
/// `wake` signals new events; `commits` is signalled after every commit.
pub fn spawn_all(
    log: &EventLog,
    db: &ReadDb,
    wake: &Wake,
    commits: &Wake,
    poll: Duration,
    shutdown: &watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    let (l, d, w, c, s) = (log, db, wake, commits, shutdown);
    vec![
        tokio::spawn(engine::run::<CustomerView>(
            l.clone(),
            d.clone(),
            w.clone(),
            c.clone(),
            poll,
            s.clone(),
        )),
        tokio::spawn(engine::run::<OrderViewProjection>(
            l.clone(),
            d.clone(),
            w.clone(),
            c.clone(),
            poll,
            s.clone(),
        )),
        tokio::spawn(engine::run::<Analytics>(
            l.clone(),
            d.clone(),
            w.clone(),
            c.clone(),
            poll,
            s.clone(),
        )),
    ]
}

/// Starts every projection's Kafka consumer (the distributed profile).
pub fn spawn_all_kafka(
    settings: &eventlog::kafka::KafkaSettings,
    db: &ReadDb,
    commits: &Wake,
    shutdown: &watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    vec![
        tokio::spawn(kafka::run::<CustomerView>(
            settings.clone(),
            db.clone(),
            commits.clone(),
            shutdown.clone(),
        )),
        tokio::spawn(kafka::run::<OrderViewProjection>(
            settings.clone(),
            db.clone(),
            commits.clone(),
            shutdown.clone(),
        )),
        tokio::spawn(kafka::run::<Analytics>(
            settings.clone(),
            db.clone(),
            commits.clone(),
            shutdown.clone(),
        )),
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

/// Forwards Postgres notifications on `channel` (`shopstream_events` for
/// new events, `shopstream_projections` for projection commits) to `wake`
/// until the task is aborted; reconnects after failures (pollers cover gaps).
pub fn listen_postgres(url: String, channel: &'static str, wake: Wake) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match sqlx::postgres::PgListener::connect(&url).await {
                Ok(mut listener) => {
                    if listener.listen(channel).await.is_ok() {
                        while listener.recv().await.is_ok() {
                            wake.notify();
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot LISTEN for new events; polling only"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    })
}
