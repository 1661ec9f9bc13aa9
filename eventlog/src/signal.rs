//! Wake-ups for tailers in other processes after appends (Postgres).
//!
//! A `NOTIFY` inside the appending transaction would serialize every
//! append's commit, WAL flush included, on PostgreSQL's one notification
//! lock (measured: raw single-row inserts fell from ~8,700/s to ~1,300/s
//! at 16 clients with a notifying trigger). Appenders instead signal after
//! their commit; one task per signal sends the `NOTIFY` in its own small
//! transaction that does not wait for the WAL flush, coalescing the
//! signals that arrive while one is on its way. A notification is only a
//! hint: tailers also poll, so one lost with a crash costs a poll interval.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::Notify;

/// The channel tailers `LISTEN` on for new events.
pub const EVENTS_CHANNEL: &str = "shopstream_events";

/// Under load tailers are busy anyway: at most one notification per this
/// interval per signal.
const SPACING: Duration = Duration::from_millis(5);

/// One `NOTIFY`, committed without waiting for the WAL flush.
async fn send(pool: &PgPool) -> Result<(), sqlx::Error> {
    let mut tx = pool
        .begin_with("BEGIN; SET LOCAL synchronous_commit = off")
        .await?;
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(EVENTS_CHANNEL)
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

/// Cheap to clone; every clone feeds the same task.
#[derive(Clone)]
pub struct AppendSignal {
    notify: Arc<Notify>,
}

impl AppendSignal {
    /// A signal sending `NOTIFY shopstream_events` through `pool`; its task
    /// ends when the last clone is dropped.
    pub fn new(pool: PgPool) -> Self {
        let notify = Arc::new(Notify::new());
        let weak = Arc::downgrade(&notify);
        tokio::spawn(async move {
            loop {
                let Some(notify) = weak.upgrade() else { return };
                // Wakes at once when a signal arrived meanwhile (a stored
                // permit): all signals since the last NOTIFY become one.
                let waited = tokio::time::timeout(Duration::from_secs(5), notify.notified()).await;
                drop(notify);
                if waited.is_err() {
                    continue;
                }
                if pool.is_closed() {
                    return;
                }
                if let Err(e) = send(&pool).await {
                    tracing::debug!(error = %e, "could not notify tailers; they poll");
                }
                tokio::time::sleep(SPACING).await;
            }
        });
        Self { notify }
    }

    /// A signal for `db`'s tailers (none on SQLite: its tailers live in the
    /// appending process and are woken there).
    pub fn for_database(db: &crate::Database) -> Option<Self> {
        match db {
            crate::Database::Postgres(pool) => Some(Self::new(pool.clone())),
            crate::Database::Sqlite(_) => None,
        }
    }

    /// Something was appended and committed.
    pub fn appended(&self) {
        self.notify.notify_one();
    }
}
