//! Rows of the `events` table as [`StoredEvent`]s, per backend.

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
    pub(crate) fn from_pg(row: &PgRow) -> Result<Self, StoreError> {
        let xid: String = row.try_get("txid_text")?;
        let event_id: String = row.try_get("event_id")?;
        Ok(Self::from(Envelope {
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
            payload: row.try_get("payload")?,
            metadata: row.try_get("metadata")?,
            recorded_at: row.try_get("recorded_at")?,
        }))
    }

    /// A row of [`PG_TYPED_COLUMNS`]: see [`Decode::Typed`].
    pub(crate) fn typed_from_pg(row: &PgRow) -> Result<Self, StoreError> {
        let xid: String = row.try_get("txid_text")?;
        let event_id: String = row.try_get("event_id")?;
        let payload: &str = row.try_get("payload_text")?;
        let aggregate_type: String = row.try_get("aggregate_type")?;
        let event_type: String = row.try_get("event_type")?;
        let event_version: String = row.try_get("event_version")?;
        let event =
            domain::Event::decode_text(&aggregate_type, &event_type, &event_version, payload);
        Ok(Self {
            position: row.try_get("position")?,
            transaction_id: xid
                .parse()
                .map_err(|_| StoreError::Corrupt(format!("xid {xid}")))?,
            event_id: Uuid::parse_str(&event_id).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            aggregate_type,
            aggregate_id: row.try_get("aggregate_id")?,
            sequence: row.try_get("sequence")?,
            event_type,
            event_version,
            payload: Value::Null,
            metadata: Value::Null,
            recorded_at: row.try_get("recorded_at")?,
            event,
        })
    }

    pub(crate) fn from_sqlite(row: &SqliteRow, decode: Decode) -> Result<Self, StoreError> {
        let corrupt = |e: &dyn std::fmt::Display| StoreError::Corrupt(e.to_string());
        let event_id: String = row.try_get("event_id")?;
        let payload: String = row.try_get("payload")?;
        let recorded_at: String = row.try_get("recorded_at")?;
        let recorded_at = DateTime::parse_from_rfc3339(&recorded_at)
            .map_err(|e| corrupt(&e))?
            .with_timezone(&Utc);
        if decode == Decode::Typed {
            let (aggregate_type, event_type, event_version): (String, String, String) = (
                row.try_get("aggregate_type")?,
                row.try_get("event_type")?,
                row.try_get("event_version")?,
            );
            let event =
                domain::Event::decode_text(&aggregate_type, &event_type, &event_version, &payload);
            return Ok(Self {
                position: row.try_get("position")?,
                transaction_id: 0,
                event_id: Uuid::parse_str(&event_id).map_err(|e| corrupt(&e))?,
                aggregate_type,
                aggregate_id: row.try_get("aggregate_id")?,
                sequence: row.try_get("sequence")?,
                event_type,
                event_version,
                payload: Value::Null,
                metadata: Value::Null,
                recorded_at,
                event,
            });
        }
        let metadata: String = row.try_get("metadata")?;
        Ok(Self::from(Envelope {
            position: row.try_get("position")?,
            transaction_id: 0,
            event_id: Uuid::parse_str(&event_id).map_err(|e| corrupt(&e))?,
            aggregate_type: row.try_get("aggregate_type")?,
            aggregate_id: row.try_get("aggregate_id")?,
            sequence: row.try_get("sequence")?,
            event_type: row.try_get("event_type")?,
            event_version: row.try_get("event_version")?,
            payload: serde_json::from_str(&payload).map_err(|e| corrupt(&e))?,
            metadata: serde_json::from_str(&metadata).map_err(|e| corrupt(&e))?,
            recorded_at,
        }))
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
