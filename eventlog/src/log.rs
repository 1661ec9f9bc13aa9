use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::Row;
use uuid::Uuid;

use domain::UndecodableEvent;

use crate::db::on_pool;
use crate::log_rows::{Decode, RawBatch, PG_COLUMNS, PG_TYPED_COLUMNS, SQLITE_COLUMNS};
use crate::{Database, StoreError};

/// A place in the log: read everything after it.
///
/// The log is ordered by `(transaction_id, position)`. On Postgres, positions
/// come from a sequence and transactions commit out of order, so a reader
/// that trusted `position > last_seen` alone would lose a late commit
/// (invariant 3). Every row whose transaction id is below the oldest running
/// transaction (`pg_snapshot_xmin`) is final, and every row committed later
/// has a larger transaction id: reading only below that horizon, in
/// `(transaction_id, position)` order, never skips and never revisits.
/// On SQLite (one writer) `transaction_id` is always 0 and the order is the
/// position order.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Cursor {
    /// The appending transaction (Postgres `xid8`; 0 on SQLite).
    pub transaction_id: u64,
    /// The event's global position.
    pub position: i64,
}

impl Cursor {
    /// Before the first event.
    pub const START: Cursor = Cursor {
        transaction_id: 0,
        position: 0,
    };
}

/// One event as stored, with its place in the log, and its payload decoded
/// once into the domain's typed [`domain::Event`] (or why it cannot be).
///
/// It serializes as the stored envelope (the Kafka record format); reading
/// one back decodes the payload again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "Envelope")]
pub struct StoredEvent {
    /// Global position, unique across the store.
    pub position: i64,
    /// The appending transaction (0 on SQLite).
    pub transaction_id: u64,
    /// Unique event id.
    pub event_id: Uuid,
    pub aggregate_type: String,
    pub aggregate_id: String,
    /// 1-based sequence within the aggregate's stream.
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub payload: Value,
    pub metadata: Value,
    /// When the store recorded the event.
    pub recorded_at: DateTime<Utc>,
    /// The payload, typed. An error is a poison event for whoever needs it
    /// (a projection stops on it; nothing skips it).
    #[serde(skip_serializing)]
    pub event: Result<domain::Event, UndecodableEvent>,
}

/// The stored envelope without the typed payload: what [`StoredEvent`]
/// deserializes from.
#[derive(Deserialize)]
pub(crate) struct Envelope {
    pub(crate) position: i64,
    pub(crate) transaction_id: u64,
    pub(crate) event_id: Uuid,
    pub(crate) aggregate_type: String,
    pub(crate) aggregate_id: String,
    pub(crate) sequence: i64,
    pub(crate) event_type: String,
    pub(crate) event_version: String,
    pub(crate) payload: Value,
    pub(crate) metadata: Value,
    pub(crate) recorded_at: DateTime<Utc>,
}

impl StoredEvent {
    /// The typed event.
    ///
    /// # Errors
    /// Why the payload is not a known event, naming the event.
    pub fn typed(&self) -> Result<&domain::Event, String> {
        self.event.as_ref().map_err(|e| {
            format!(
                "{} v{} of {} {} is unreadable: {e}",
                self.event_type, self.event_version, self.aggregate_type, self.aggregate_id
            )
        })
    }

    /// The customer this event belongs to: the user itself for a user's
    /// events, the order's or payment's customer when the event names it.
    pub fn customer_id(&self) -> Option<String> {
        if self.aggregate_type == "User" {
            return Some(self.aggregate_id.clone());
        }
        self.event
            .as_ref()
            .ok()
            .and_then(domain::Event::customer_id)
            .map(|c| c.to_string())
    }

    /// The cursor that reads everything after this event.
    pub fn cursor(&self) -> Cursor {
        Cursor {
            transaction_id: self.transaction_id,
            position: self.position,
        }
    }
}

/// Reads the event log: the whole store in log order, or one stream.
#[derive(Debug, Clone)]
pub struct EventLog {
    pub(crate) db: Database,
}

impl EventLog {
    /// A reader over `db`.
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// Up to `limit` events after `after`, in log order, never passing an
    /// event whose transaction may still commit (see [`Cursor`]).
    ///
    /// # Errors
    /// [`StoreError::Database`] or [`StoreError::Corrupt`].
    pub async fn read_from(
        &self,
        after: Cursor,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.read(after, limit, true, Decode::Full).await
    }

    /// [`EventLog::read_from`] for folding (a rebuild's read of the whole
    /// log): each typed event is decoded straight from the payload's text,
    /// and `payload` and `metadata` are left `Null` (a fold reads only the
    /// typed event and the envelope).
    ///
    /// # Errors
    /// As [`EventLog::read_from`].
    pub async fn read_typed_from(
        &self,
        after: Cursor,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.read_rows_from(after, limit).await?.decode()
    }

    /// [`EventLog::read_typed_from`], the rows decoded later
    /// ([`RawBatch::decode`]): the next read can start first.
    ///
    /// # Errors
    /// As [`EventLog::read_from`].
    pub async fn read_rows_from(&self, after: Cursor, limit: u32) -> Result<RawBatch, StoreError> {
        match &self.db {
            Database::Postgres(pool) => {
                RawBatch::pg(pg_rows(pool, after, limit, true, Decode::Typed).await?)
            }
            Database::Sqlite(_) => Ok(RawBatch::decoded(
                self.read(after, limit, true, Decode::Typed).await?,
            )),
        }
    }

    /// [`EventLog::read_from`] without the safe horizon, for a store nobody
    /// writes to (a copy's target): the horizon is cluster-wide, so any
    /// transaction open on another database would hide events.
    ///
    /// # Errors
    /// As [`EventLog::read_from`].
    pub async fn read_settled_from(
        &self,
        after: Cursor,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.read(after, limit, false, Decode::Full).await
    }

    async fn read(
        &self,
        after: Cursor,
        limit: u32,
        horizon: bool,
        decode: Decode,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        match &self.db {
            Database::Postgres(pool) => pg_rows(pool, after, limit, horizon, decode)
                .await?
                .iter()
                .map(|row| StoredEvent::from_pg(row, decode))
                .collect(),
            Database::Sqlite(pool) => {
                let sql = format!(
                    "SELECT {SQLITE_COLUMNS} FROM events WHERE position > $1 ORDER BY position LIMIT $2"
                );
                let rows = sqlx::query(&sql)
                    .bind(after.position)
                    .bind(i64::from(limit))
                    .fetch_all(pool)
                    .await?;
                rows.iter()
                    .map(|row| StoredEvent::from_sqlite(row, decode))
                    .collect()
            }
        }
    }

    /// The highest position committed so far (0 when the store is empty).
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn head(&self) -> Result<i64, StoreError> {
        let sql = "SELECT COALESCE(MAX(position), 0) AS head FROM events";
        Ok(on_pool!(&self.db, |pool| sqlx::query_scalar(sql)
            .fetch_one(pool)
            .await?))
    }

    /// How many events lie after `position`, and when the newest was
    /// recorded (projection lag).
    ///
    /// # Errors
    /// [`StoreError::Database`] or [`StoreError::Corrupt`].
    pub async fn backlog_after(
        &self,
        position: i64,
    ) -> Result<(i64, Option<DateTime<Utc>>), StoreError> {
        match &self.db {
            Database::Postgres(pool) => {
                let row = sqlx::query("SELECT count(*) AS n, max(recorded_at) AS newest FROM events WHERE position > $1")
                    .bind(position)
                    .fetch_one(pool)
                    .await?;
                Ok((row.try_get("n")?, row.try_get("newest")?))
            }
            Database::Sqlite(pool) => {
                let row = sqlx::query("SELECT count(*) AS n, max(recorded_at) AS newest FROM events WHERE position > $1")
                    .bind(position)
                    .fetch_one(pool)
                    .await?;
                let newest: Option<String> = row.try_get("newest")?;
                let newest = newest
                    .map(|s| DateTime::parse_from_rfc3339(&s).map(|d| d.with_timezone(&Utc)))
                    .transpose()
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                Ok((row.try_get("n")?, newest))
            }
        }
    }

    /// One aggregate's stream in sequence order.
    ///
    /// # Errors
    /// [`StoreError::Database`] or [`StoreError::Corrupt`].
    pub async fn stream(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.select_where(
            "aggregate_type = $1 AND aggregate_id = $2 ORDER BY sequence",
            &[aggregate_type, aggregate_id],
        )
        .await
    }

    /// The first event of one aggregate's stream, if it has any.
    ///
    /// # Errors
    /// [`StoreError::Database`] or [`StoreError::Corrupt`].
    pub async fn first_of(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<Option<StoredEvent>, StoreError> {
        let mut first = self
            .select_where(
                "aggregate_type = $1 AND aggregate_id = $2 AND sequence = 1",
                &[aggregate_type, aggregate_id],
            )
            .await?;
        Ok(first.pop())
    }

    /// The events a request with this idempotency key appended, if any.
    ///
    /// # Errors
    /// [`StoreError::Database`] or [`StoreError::Corrupt`].
    pub async fn by_idempotency_key(&self, key: &str) -> Result<Vec<StoredEvent>, StoreError> {
        let clause = self.db.dialect(
            "metadata ->> 'idempotency_key' = $1 ORDER BY position",
            "json_extract(metadata, '$.idempotency_key') = $1 ORDER BY position",
        );
        self.select_where(clause, &[key]).await
    }

    /// The global position of one event.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn position_of(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        sequence: i64,
    ) -> Result<Option<i64>, StoreError> {
        let sql = "SELECT position FROM events WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence = $3";
        Ok(on_pool!(&self.db, |pool| {
            sqlx::query_scalar(sql)
                .bind(aggregate_type)
                .bind(aggregate_id)
                .bind(sequence)
                .fetch_optional(pool)
                .await?
        }))
    }

    async fn select_where(
        &self,
        clause: &str,
        binds: &[&str],
    ) -> Result<Vec<StoredEvent>, StoreError> {
        match &self.db {
            Database::Postgres(pool) => {
                let sql = format!("SELECT {PG_COLUMNS} FROM events WHERE {clause}");
                let mut query = sqlx::query(&sql);
                for b in binds {
                    query = query.bind(*b);
                }
                let rows = query.fetch_all(pool).await?;
                rows.iter()
                    .map(|row| StoredEvent::from_pg(row, Decode::Full))
                    .collect()
            }
            Database::Sqlite(pool) => {
                let sql = format!("SELECT {SQLITE_COLUMNS} FROM events WHERE {clause}");
                let mut query = sqlx::query(&sql);
                for b in binds {
                    query = query.bind(*b);
                }
                let rows = query.fetch_all(pool).await?;
                rows.iter()
                    .map(|row| StoredEvent::from_sqlite(row, Decode::Full))
                    .collect()
            }
        }
    }
}

/// The rows of a read of the log on PostgreSQL (see [`Cursor`] for
/// `horizon`), in the columns `decode` selects.
async fn pg_rows(
    pool: &sqlx::PgPool,
    after: Cursor,
    limit: u32,
    horizon: bool,
    decode: Decode,
) -> Result<Vec<sqlx::postgres::PgRow>, StoreError> {
    let below = if horizon {
        "AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())"
    } else {
        ""
    };
    let columns = match decode {
        Decode::Full => PG_COLUMNS,
        Decode::Typed => PG_TYPED_COLUMNS,
    };
    let sql = format!(
        "SELECT {columns} FROM events \
         WHERE (transaction_id, position) > ($1::text::xid8, $2) {below} \
         ORDER BY events.transaction_id, events.position LIMIT $3"
    );
    Ok(sqlx::query(&sql)
        .bind(after.transaction_id.to_string())
        .bind(after.position)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?)
}
