//! Reads held back by the safe horizon, and how soon to read again.
//!
//! A read of the log on PostgreSQL stops below the oldest transaction still
//! open anywhere on the server ([`crate::Cursor`]). A tailer that read
//! everything visible waits for the next append's notification, but when
//! what held its read back is not an append (a projection's batch, a
//! checkpoint, another database's work), nothing notifies it when that
//! transaction ends: the events already committed behind it waited for the
//! tailer's poll interval (the relay's 100 ms was the tail of the
//! distributed deployment's freshness). [`EventLog::held_back`] tells a
//! tailer that this is the case, and [`HeldBack`] paces its re-reads.

use std::time::Duration;

use crate::{Database, EventLog, StoreError};

/// The first re-read after a held-back read.
pub const FIRST_RETRY: Duration = Duration::from_millis(2);

impl EventLog {
    /// Whether an event committed above position `seen` (the highest a
    /// reader has read) is not readable yet: held back by the safe horizon
    /// (never on SQLite, whose reads have none). After a read that
    /// returned everything below the horizon, such an event can only be
    /// behind it: an event of a transaction older than the last one read
    /// was committed (and read) before it.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn held_back(&self, seen: i64) -> Result<bool, StoreError> {
        match &self.db {
            Database::Postgres(pool) => {
                let head: Option<i64> = sqlx::query_scalar("SELECT max(position) FROM events")
                    .fetch_one(pool)
                    .await?;
                Ok(head.unwrap_or(0) > seen)
            }
            Database::Sqlite(_) => Ok(false),
        }
    }
}

/// How soon a tailer reads again: at its poll interval, or, while reads
/// are held back by the safe horizon, after [`FIRST_RETRY`], doubling up to
/// the poll interval (a long transaction costs a few cheap reads, not a
/// busy loop).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeldBack {
    next: Option<Duration>,
}

impl HeldBack {
    /// Records whether the last read was held back.
    pub fn update(&mut self, held: bool, poll: Duration) {
        self.next = held.then(|| {
            self.next
                .map_or(FIRST_RETRY, |d| d.saturating_mul(2))
                .min(poll)
        });
    }

    /// How long to wait for a wake-up before reading again.
    pub fn wait(&self, poll: Duration) -> Duration {
        self.next.unwrap_or(poll)
    }

    /// Whether reads are being held back.
    pub fn is_held(&self) -> bool {
        self.next.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_reads_retry_soon_then_back_off_to_the_poll() {
        let poll = Duration::from_millis(100);
        let mut h = HeldBack::default();
        assert_eq!(h.wait(poll), poll);
        let waits: Vec<u64> = (0..8)
            .map(|_| {
                h.update(true, poll);
                h.wait(poll).as_millis() as u64
            })
            .collect();
        assert_eq!(waits, [2, 4, 8, 16, 32, 64, 100, 100]);
        assert!(h.is_held());
        h.update(false, poll);
        assert_eq!(h.wait(poll), poll);
        assert!(!h.is_held());
        // A poll shorter than the first retry wins.
        h.update(true, Duration::from_millis(1));
        assert_eq!(h.wait(Duration::from_millis(1)), Duration::from_millis(1));
    }
}
