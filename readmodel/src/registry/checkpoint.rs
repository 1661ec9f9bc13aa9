//! Moving and reading a generation's checkpoint.

use eventlog::Cursor;
use sqlx::Row;

use super::now;
use crate::db::Tx;
use crate::offsets::parse_cursor;
use crate::ProjectionError;

/// Advances generation `g`'s checkpoint from `from` to `to` inside `tx`,
/// only if nobody moved it meanwhile (several runners may share a store).
///
/// # Errors
/// [`ProjectionError::CheckpointMoved`] when the checkpoint is no longer
/// `from` or the generation is no longer being built.
pub async fn advance(
    tx: &mut Tx<'_>,
    name: &str,
    g: i64,
    from: eventlog::Cursor,
    to: eventlog::Cursor,
    applied: i64,
    last_event_at: &str,
) -> Result<(), ProjectionError> {
    let done = sqlx::query(ADVANCE)
        .bind(to.transaction_id.to_string())
        .bind(to.position)
        .bind(applied)
        .bind(last_event_at)
        .bind(now())
        .bind(name)
        .bind(g)
        .bind(from.transaction_id.to_string())
        .bind(from.position)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    moved_unless(done == 1)
}

/// A checkpoint's move, for [`advance_direct`].
#[derive(Debug, Clone, Copy)]
pub struct Advance<'a> {
    pub name: &'a str,
    pub g: i64,
    pub from: eventlog::Cursor,
    pub to: eventlog::Cursor,
    pub applied: i64,
    pub last_event_at: &'a str,
}

/// [`advance`] on a dedicated PostgreSQL connection's transaction (a
/// bulk rebuild's `COPY`).
///
/// # Errors
/// As [`advance`].
pub async fn advance_direct(
    tx: &mut crate::db::copy::PgTx<'_>,
    a: Advance<'_>,
) -> Result<(), ProjectionError> {
    let done = sqlx::query(ADVANCE)
        .bind(a.to.transaction_id.to_string())
        .bind(a.to.position)
        .bind(a.applied)
        .bind(a.last_event_at)
        .bind(now())
        .bind(a.name)
        .bind(a.g)
        .bind(a.from.transaction_id.to_string())
        .bind(a.from.position)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    moved_unless(done == 1)
}

const ADVANCE: &str = "UPDATE projection_state SET cursor_txid = $1, cursor_position = $2, \
     events_applied = events_applied + $3, last_event_at = $4, updated_at = $5 \
     WHERE name = $6 AND generation = $7 AND cursor_txid = $8 AND cursor_position = $9 \
       AND state IN ('live', 'rebuilding')";

fn moved_unless(advanced: bool) -> Result<(), ProjectionError> {
    if advanced {
        Ok(())
    } else {
        Err(ProjectionError::CheckpointMoved)
    }
}

/// Locks generation `g`'s registry row for the rest of `tx` and returns
/// its cursor (the live runner cannot advance until `tx` ends).
///
/// # Errors
/// Database errors.
pub async fn lock_cursor(
    tx: &mut Tx<'_>,
    name: &str,
    g: i64,
) -> Result<Option<Cursor>, ProjectionError> {
    // A no-op write takes the row lock on Postgres; SQLite transactions
    // here already hold the database's write lock.
    sqlx::query(
        "UPDATE projection_state SET updated_at = updated_at WHERE name = $1 AND generation = $2",
    )
    .bind(name)
    .bind(g)
    .execute(&mut **tx)
    .await?;
    let row = sqlx::query("SELECT cursor_txid, cursor_position FROM projection_state WHERE name = $1 AND generation = $2")
        .bind(name)
        .bind(g)
        .fetch_optional(&mut **tx)
        .await?;
    row.map(|r| parse_cursor(&r.try_get::<String, _>(0)?, r.try_get(1)?))
        .transpose()
}
