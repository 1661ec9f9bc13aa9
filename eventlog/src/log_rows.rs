//! Rows of the `events` table as [`StoredEvent`]s, per backend.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;
use uuid::Uuid;

use crate::log::Envelope;
use crate::{StoreError, StoredEvent};

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

    pub(crate) fn from_sqlite(row: &SqliteRow) -> Result<Self, StoreError> {
        let corrupt = |e: &dyn std::fmt::Display| StoreError::Corrupt(e.to_string());
        let event_id: String = row.try_get("event_id")?;
        let payload: String = row.try_get("payload")?;
        let metadata: String = row.try_get("metadata")?;
        let recorded_at: String = row.try_get("recorded_at")?;
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
            recorded_at: DateTime::parse_from_rfc3339(&recorded_at)
                .map_err(|e| corrupt(&e))?
                .with_timezone(&Utc),
        }))
    }
}

// The transaction id goes out as text under another name: an ORDER BY on
// `transaction_id` must sort the xid8 column, not its text (where "10001"
// sorts before "9993").
pub(crate) const PG_COLUMNS: &str = "position, transaction_id::text AS txid_text, event_id::text AS event_id, \
     aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, recorded_at";
pub(crate) const SQLITE_COLUMNS: &str =
    "position, event_id, aggregate_type, aggregate_id, sequence, \
     event_type, event_version, payload, metadata, recorded_at";
