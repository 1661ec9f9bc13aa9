//! Moving a store: every event of one store into another (the embedded
//! SQLite file into PostgreSQL, typically), in log order, with its event
//! id, aggregate sequence, recorded time, payload and metadata; then the
//! idempotency keys, e-mail and identity reservations and the saga's state.
//!
//! The target must be empty, or hold a prefix of the source (a copy that
//! was stopped or killed): the copy then resumes after it, having checked
//! every event of the prefix by id. Each batch commits in one transaction,
//! so a kill loses at most the batch in flight. At the end both logs are
//! read again and compared: the same count and the same checksum over every
//! event's id, stream, sequence, type, version, payload, metadata and time.
//! Read models are not copied: the target's projectors build them.

use sha2::{Digest, Sha256};

mod side;

use crate::db::on_pool;
use crate::{Cursor, Database, EventLog, StoreError, StoredEvent};

/// How a copy runs.
#[derive(Debug, Clone, Copy)]
pub struct CopyOptions {
    /// Events per batch (one transaction each).
    pub batch: u32,
    /// Stop once this many events are in the target (a copy in stages).
    pub stop_after: Option<u64>,
}

/// What a copy did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyReport {
    /// Events in the target at the end.
    pub events: u64,
    /// Events the target already held (a resumed copy).
    pub resumed: u64,
    /// Whether it stopped at `stop_after` before the end of the source.
    pub stopped: bool,
    /// Rows copied per side table.
    pub side_rows: Vec<(&'static str, u64)>,
    /// The checksum both logs share (hex SHA-256), when verified.
    pub checksum: Option<String>,
}

/// Why a copy refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("the target store holds events that are not a prefix of the source ({0}); copy into an empty store")]
    NotAPrefix(String),
    #[error("verification failed: {0}")]
    Mismatch(String),
    #[error("the archive: {0}")]
    Archive(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for CopyError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(e.into())
    }
}

/// Copies `from` into `to` (both migrated).
///
/// # Errors
/// [`CopyError::NotAPrefix`] for a target holding other events,
/// [`CopyError::Mismatch`] when the verification finds a difference, or a
/// database error (rerun to resume).
pub async fn copy(
    from: &Database,
    to: &Database,
    options: CopyOptions,
) -> Result<CopyReport, CopyError> {
    let (source, target) = (EventLog::new(from.clone()), EventLog::new(to.clone()));
    let batch = options.batch.clamp(1, 1000);
    let (mut after, resumed) = common_prefix(&source, &target, batch).await?;
    let mut events = resumed;
    let mut stopped = false;
    loop {
        let room = options.stop_after.map_or(u64::from(batch), |n| {
            n.saturating_sub(events).min(u64::from(batch))
        });
        if room == 0 {
            stopped = !source.read_from(after, 1).await?.is_empty();
            break;
        }
        let chunk = source
            .read_from(after, u32::try_from(room).unwrap_or(batch))
            .await?;
        let Some(last) = chunk.last() else { break };
        after = last.cursor();
        insert(to, &chunk).await?;
        events += chunk.len() as u64;
        tracing::info!(events, "copied");
    }
    let side_rows = if stopped {
        Vec::new()
    } else {
        side::tables(from, to).await?
    };
    let checksum = if stopped {
        None
    } else {
        Some(verify(&source, &target, batch).await?)
    };
    Ok(CopyReport {
        events,
        resumed,
        stopped,
        side_rows,
        checksum,
    })
}

/// How far the target already holds the source's events, checked by id.
async fn common_prefix(
    source: &EventLog,
    target: &EventLog,
    batch: u32,
) -> Result<(Cursor, u64), CopyError> {
    let (mut s_after, mut t_after, mut n) = (Cursor::START, Cursor::START, 0u64);
    loop {
        // The target is the copy's alone: all it holds is settled.
        let held = target.read_settled_from(t_after, batch).await?;
        if held.is_empty() {
            return Ok((s_after, n));
        }
        let ours = source
            .read_from(s_after, u32::try_from(held.len()).unwrap_or(batch))
            .await?;
        for (i, t) in held.iter().enumerate() {
            match ours.get(i) {
                Some(s) if s.event_id == t.event_id => {}
                _ => {
                    return Err(CopyError::NotAPrefix(format!(
                        "its event {} (event id {}) is not the source's",
                        n + i as u64 + 1,
                        t.event_id
                    )))
                }
            }
        }
        n += held.len() as u64;
        t_after = held.last().map_or(t_after, StoredEvent::cursor);
        s_after = ours
            .get(held.len() - 1)
            .map_or(s_after, StoredEvent::cursor);
    }
}

/// Appends `events` to `to` in one transaction, keeping their ids and times.
pub(crate) async fn insert(to: &Database, events: &[StoredEvent]) -> Result<(), CopyError> {
    let casts = to.casts(&[
        "",
        "",
        "",
        "",
        "",
        "::json",
        "::json",
        "::uuid",
        "::timestamptz",
    ]);
    let sql = format!(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
         payload, metadata, event_id, recorded_at) VALUES {}",
        crate::values_rows(events.len(), &casts)
    );
    let stamp = |e: &StoredEvent| e.recorded_at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
    // SQLite's trigger assigns ids and times to new rows: put the source's back.
    let restore = "UPDATE events SET event_id = $1, recorded_at = $2 \
                   WHERE aggregate_type = $3 AND aggregate_id = $4 AND sequence = $5";
    on_pool!(to, |pool| {
        let mut tx = pool.begin().await?;
        let mut q = sqlx::query(&sql);
        for e in events {
            q = q
                .bind(&e.aggregate_type)
                .bind(&e.aggregate_id)
                .bind(e.sequence)
                .bind(&e.event_type)
                .bind(&e.event_version)
                .bind(e.payload.to_string())
                .bind(e.metadata.to_string())
                .bind(e.event_id.to_string())
                .bind(stamp(e));
        }
        q.execute(&mut *tx).await?;
        if matches!(to, Database::Sqlite(_)) {
            for e in events {
                sqlx::query(restore)
                    .bind(e.event_id.to_string())
                    .bind(stamp(e))
                    .bind(&e.aggregate_type)
                    .bind(&e.aggregate_id)
                    .bind(e.sequence)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
    });
    Ok(())
}

/// Reads both logs again: the same count and checksum, or the difference.
async fn verify(source: &EventLog, target: &EventLog, batch: u32) -> Result<String, CopyError> {
    let (a, na) = checksum(source, batch).await?;
    let (b, nb) = checksum(target, batch).await?;
    if na != nb {
        return Err(CopyError::Mismatch(format!(
            "the source holds {na} events, the target {nb}"
        )));
    }
    if a != b {
        return Err(CopyError::Mismatch(format!(
            "{na} events on both sides, but their checksums differ ({a} / {b})"
        )));
    }
    Ok(a)
}

/// The checksum of a sequence of events: SHA-256 over each one's id,
/// stream, sequence, type, version, payload, metadata and time, in order.
#[derive(Default)]
pub struct Checksum {
    hash: Sha256,
    count: u64,
}

impl Checksum {
    /// Adds the next event.
    pub fn add(&mut self, e: &StoredEvent) {
        let line = format!(
            "{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}\n",
            e.event_id,
            e.aggregate_type,
            e.aggregate_id,
            e.sequence,
            e.event_type,
            e.event_version,
            e.payload,
            e.metadata,
            e.recorded_at.timestamp_micros()
        );
        self.hash.update(line.as_bytes());
        self.count += 1;
    }

    /// The hex digest and the number of events.
    pub fn finish(self) -> (String, u64) {
        let digest = self.hash.finalize();
        (
            digest.iter().map(|b| format!("{b:02x}")).collect(),
            self.count,
        )
    }
}

/// The checksum of a whole log, in log order, and its count (of what it
/// holds settled: it verifies stores nobody writes to).
///
/// # Errors
/// Database errors.
pub async fn checksum(log: &EventLog, batch: u32) -> Result<(String, u64), StoreError> {
    let mut sum = Checksum::default();
    let mut after = Cursor::START;
    loop {
        let chunk = log.read_settled_from(after, batch).await?;
        let Some(last) = chunk.last() else { break };
        after = last.cursor();
        chunk.iter().for_each(|e| sum.add(e));
    }
    Ok(sum.finish())
}
