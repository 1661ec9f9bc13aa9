//! Rows of the `events` table as [`StoredEvent`]s, per backend, and the
//! envelope a row gives typed.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;
use uuid::Uuid;

use crate::log::Envelope;
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
        let xid: String = row.try_get("txid_text")?;
        let event_id: String = row.try_get("event_id")?;
        let mut e = Envelope {
            position: row.try_get("position")?,
            transaction_id: xid
                .parse()
                .map_err(|_| StoreError::Corrupt(format!("xid {xid}")))?,
            event_id: Uuid::parse_str(&event_id).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            aggregate_type: row.try_get("aggregate_type")?,
            aggregate_id: row.try_get("aggregate_id")?,
            sequence: row.try_get("sequence")?,
            event_type: row.try_get("event_type")?,
            event_version: row.try_get("event_version")?,
            payload: Value::Null,
            metadata: Value::Null,
            recorded_at: row.try_get("recorded_at")?,
        };
        match decode {
            Decode::Full => {
                e.payload = row.try_get("payload")?;
                e.metadata = row.try_get("metadata")?;
                Ok(Self::from(e))
            }
            Decode::Typed => Ok(typed(e, row.try_get("payload_text")?)),
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
