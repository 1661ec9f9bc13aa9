//! The relay's checkpoint (`relay_checkpoint`, in the store's database):
//! the cursor of the last event the broker acknowledged with everything
//! before it.

use chrono::{DateTime, Utc};
use eventlog::{Cursor, Database, StoreError};
use sqlx::{PgPool, Row};

use super::RelayError;

/// The relay checkpoint as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayCheckpoint {
    pub cursor: Cursor,
    pub recorded_at: Option<DateTime<Utc>>,
}

/// Reads relay `name`'s checkpoint (None before its first start).
///
/// # Errors
/// Database errors; [`RelayError::NotPostgres`] on SQLite.
pub async fn checkpoint(db: &Database, name: &str) -> Result<Option<RelayCheckpoint>, RelayError> {
    let Database::Postgres(pool) = db else {
        return Err(RelayError::NotPostgres);
    };
    let row = sqlx::query(
        "SELECT cursor_txid, cursor_position, recorded_at FROM relay_checkpoint WHERE name = $1",
    )
    .bind(name)
    .fetch_optional(pool)
    .await?;
    row.map(|r| {
        let txid: String = r.try_get(0)?;
        Ok(RelayCheckpoint {
            cursor: Cursor {
                transaction_id: txid
                    .parse()
                    .map_err(|_| StoreError::Corrupt(format!("relay cursor {txid}")))?,
                position: r.try_get(1)?,
            },
            recorded_at: r.try_get(2)?,
        })
    })
    .transpose()
}

/// Creates relay `name`'s checkpoint row when missing.
pub(super) async fn ensure(pool: &PgPool, name: &str) -> Result<(), RelayError> {
    sqlx::query("INSERT INTO relay_checkpoint (name) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(name)
        .execute(pool)
        .await?;
    Ok(())
}

/// Stores relay `name`'s checkpoint.
pub(super) async fn save(
    pool: &PgPool,
    name: &str,
    cursor: Cursor,
    at: Option<DateTime<Utc>>,
) -> Result<(), RelayError> {
    // Without waiting for the WAL flush: a checkpoint lost with a database
    // crash only re-publishes records the consumers skip as duplicates, and
    // the relay's loop (and every horizon reader, while this transaction
    // holds an id) does not wait for the disk.
    let mut tx = pool
        .begin_with("BEGIN; SET LOCAL synchronous_commit = off")
        .await?;
    sqlx::query(
        "UPDATE relay_checkpoint SET cursor_txid = $1, cursor_position = $2, \
         recorded_at = COALESCE($3, recorded_at), updated_at = now() WHERE name = $4",
    )
    .bind(cursor.transaction_id.to_string())
    .bind(cursor.position)
    .bind(at)
    .bind(name)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    super::gauge(
        "relay_checkpoint_position",
        "Position of the last event the broker acknowledged.",
        cursor.position as f64,
    );
    Ok(())
}
