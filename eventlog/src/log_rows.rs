//! Rows of the `events` table as [`StoredEvent`]s, per backend, and the
//! envelope a row gives typed.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;
use uuid::Uuid;

use crate::log::{Cursor, Envelope};
use crate::{StoreError, StoredEvent};

/// How much of a row a read decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decode {
    /// The envelope, `payload` and `metadata` as JSON values, the typed event.
    Full,
    /// The envelope and the typed event, read straight from the payload's
    /// text; `payload` and `metadata` are `Null` (for folds).
    Typed,
}

impl StoredEvent {
    pub(crate) fn from_pg(row: &PgRow, decode: Decode) -> Result<Self, StoreError> {
        // By index, in the order of `PG_COLUMNS` / `PG_TYPED_COLUMNS`: a
        // lookup by name hashes every column's name on every row.
        let (mut e, next) = pg_envelope(row)?;
        match decode {
            Decode::Full => {
                e.payload = row.try_get(next)?;
                e.metadata = row.try_get(next + 1)?;
                e.recorded_at = row.try_get(next + 2)?;
                Ok(Self::from(e))
            }
            Decode::Typed => {
                e.recorded_at = row.try_get(next + 1)?;
                Ok(typed(e, row.try_get(next)?))
            }
        }
    }

    pub(crate) fn from_sqlite(row: &SqliteRow, decode: Decode) -> Result<Self, StoreError> {
        let corrupt = |e: &dyn std::fmt::Display| StoreError::Corrupt(e.to_string());
        let event_id: String = row.try_get("event_id")?;
        let payload: &str = row.try_get("payload")?;
        let recorded_at: String = row.try_get("recorded_at")?;
        let mut e = Envelope {
            position: row.try_get("position")?,
            transaction_id: 0,
            event_id: Uuid::parse_str(&event_id).map_err(|e| corrupt(&e))?,
            aggregate_type: row.try_get("aggregate_type")?,
            aggregate_id: row.try_get("aggregate_id")?,
            sequence: row.try_get("sequence")?,
            event_type: row.try_get("event_type")?,
            event_version: row.try_get("event_version")?,
            payload: Value::Null,
            metadata: Value::Null,
            recorded_at: DateTime::parse_from_rfc3339(&recorded_at)
                .map_err(|e| corrupt(&e))?
                .with_timezone(&Utc),
        };
        match decode {
            Decode::Full => {
                let metadata: &str = row.try_get("metadata")?;
                e.payload = serde_json::from_str(payload).map_err(|e| corrupt(&e))?;
                e.metadata = serde_json::from_str(metadata).map_err(|e| corrupt(&e))?;
                Ok(Self::from(e))
            }
            Decode::Typed => Ok(typed(e, payload)),
        }
    }
}

impl From<Envelope> for StoredEvent {
    fn from(e: Envelope) -> Self {
        let event = domain::Event::decode(
            &e.aggregate_type,
            &e.event_type,
            &e.event_version,
            &e.payload,
        );
        Self::with_event(e, event)
    }
}

impl StoredEvent {
    /// `e` with its typed payload, `event`.
    pub(crate) fn with_event(
        e: Envelope,
        event: Result<domain::Event, domain::UndecodableEvent>,
    ) -> Self {
        Self {
            event,
            position: e.position,
            transaction_id: e.transaction_id,
            event_id: e.event_id,
            aggregate_type: e.aggregate_type,
            aggregate_id: e.aggregate_id,
            sequence: e.sequence,
            event_type: e.event_type,
            event_version: e.event_version,
            payload: e.payload,
            metadata: e.metadata,
            recorded_at: e.recorded_at,
        }
    }
}

/// [`Decode::Typed`]: `e` with its event read from the payload's `text`.
fn typed(e: Envelope, text: &str) -> StoredEvent {
    let event =
        domain::Event::decode_text(&e.aggregate_type, &e.event_type, &e.event_version, text);
    StoredEvent::with_event(e, event)
}

/// The cursor of a row read with [`PG_COLUMNS`] or [`PG_TYPED_COLUMNS`].
fn pg_cursor(row: &PgRow) -> Result<Cursor, StoreError> {
    let xid: &str = row.try_get(1)?;
    Ok(Cursor {
        transaction_id: xid
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("xid {xid}")))?,
        position: row.try_get(0)?,
    })
}

/// The envelope columns every read selects first (`recorded_at` comes
/// last and is left at the epoch), and the index of the next column.
fn pg_envelope(row: &PgRow) -> Result<(Envelope, usize), StoreError> {
    let Cursor {
        transaction_id,
        position,
    } = pg_cursor(row)?;
    let event_id: &str = row.try_get(2)?;
    let e = Envelope {
        position,
        transaction_id,
        event_id: Uuid::parse_str(event_id).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        aggregate_type: row.try_get(3)?,
        aggregate_id: row.try_get(4)?,
        sequence: row.try_get(5)?,
        event_type: row.try_get(6)?,
        event_version: row.try_get(7)?,
        payload: Value::Null,
        metadata: Value::Null,
        recorded_at: DateTime::<Utc>::UNIX_EPOCH,
    };
    Ok((e, 8))
}

/// A read of the log for folding whose rows are decoded later
/// ([`RawBatch::decode`]), so that a reader can send the next query while
/// this batch is decoded on another core.
pub struct RawBatch {
    rows: RawRows,
    last: Option<Cursor>,
}

enum RawRows {
    /// PostgreSQL rows as they arrived.
    Pg(Vec<PgRow>),
    /// Decoded already (SQLite: the rows borrow the connection's buffers).
    Decoded(Vec<StoredEvent>),
}

impl RawBatch {
    pub(crate) fn pg(rows: Vec<PgRow>) -> Result<Self, StoreError> {
        let last = rows.last().map(pg_cursor).transpose()?;
        Ok(Self {
            rows: RawRows::Pg(rows),
            last,
        })
    }

    pub(crate) fn decoded(events: Vec<StoredEvent>) -> Self {
        Self {
            last: events.last().map(StoredEvent::cursor),
            rows: RawRows::Decoded(events),
        }
    }

    /// Events in the batch.
    pub fn len(&self) -> usize {
        match &self.rows {
            RawRows::Pg(rows) => rows.len(),
            RawRows::Decoded(events) => events.len(),
        }
    }

    /// Whether the read found nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The cursor after the batch's last event (where the next read starts).
    pub fn last(&self) -> Option<Cursor> {
        self.last
    }

    /// The batch's events, typed as [`crate::EventLog::read_typed_from`]
    /// gives them (CPU-bound: call it off the reader's task).
    ///
    /// # Errors
    /// [`StoreError::Corrupt`], or a row that does not decode.
    pub fn decode(self) -> Result<Vec<StoredEvent>, StoreError> {
        match self.rows {
            RawRows::Pg(rows) => rows
                .iter()
                .map(|row| StoredEvent::from_pg(row, Decode::Typed))
                .collect(),
            RawRows::Decoded(events) => Ok(events),
        }
    }
}

// The transaction id goes out as text under another name: an ORDER BY on
// `transaction_id` must sort the xid8 column, not its text (where "10001"
// sorts before "9993").
pub(crate) const PG_COLUMNS: &str = "position, transaction_id::text AS txid_text, event_id::text AS event_id, \
     aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, recorded_at";
/// [`PG_COLUMNS`] for [`Decode::Typed`]: the payload as text, no metadata.
pub(crate) const PG_TYPED_COLUMNS: &str = "position, transaction_id::text AS txid_text, event_id::text AS event_id, \
     aggregate_type, aggregate_id, sequence, event_type, event_version, payload::text AS payload_text, recorded_at";
pub(crate) const SQLITE_COLUMNS: &str =
    "position, event_id, aggregate_type, aggregate_id, sequence, \
     event_type, event_version, payload, metadata, recorded_at";
