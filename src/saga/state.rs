//! The saga's SQL: its checkpoint and the payments it watches.

use eventlog::Cursor;
use readmodel::ReadDb;
use sqlx::Row;

use super::clock::format;
use super::SagaError;

fn now() -> String {
    format(chrono::Utc::now())
}

/// Creates the checkpoint row of `name` when missing.
pub async fn ensure(db: &ReadDb, name: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO saga_checkpoints (name, updated_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(name)
    .bind(now())
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Where `name` stands in the log.
pub async fn checkpoint(db: &ReadDb, name: &str) -> Result<Cursor, SagaError> {
    ensure(db, name).await?;
    let row =
        sqlx::query("SELECT cursor_txid, cursor_position FROM saga_checkpoints WHERE name = $1")
            .bind(name)
            .fetch_one(db.pool())
            .await?;
    let txid: String = row.try_get(0)?;
    Ok(Cursor {
        transaction_id: txid.parse().unwrap_or(0),
        position: row.try_get(1)?,
    })
}

/// Moves the checkpoint from `from` to `to`, only if nobody moved it meanwhile.
pub async fn advance(db: &ReadDb, name: &str, from: Cursor, to: Cursor) -> Result<(), SagaError> {
    let done = sqlx::query(
        "UPDATE saga_checkpoints SET cursor_txid = $1, cursor_position = $2, updated_at = $3 \
         WHERE name = $4 AND cursor_txid = $5 AND cursor_position = $6",
    )
    .bind(to.transaction_id.to_string())
    .bind(to.position)
    .bind(now())
    .bind(name)
    .bind(from.transaction_id.to_string())
    .bind(from.position)
    .execute(db.pool())
    .await?
    .rows_affected();
    if done == 1 {
        Ok(())
    } else {
        Err(SagaError::CheckpointMoved)
    }
}

/// Starts watching a payment (idempotent).
pub async fn watch(
    db: &ReadDb,
    payment_id: &str,
    order_id: &str,
    due_at: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO saga_payments (payment_id, order_id, due_at, state) VALUES ($1, $2, $3, 'open') ON CONFLICT DO NOTHING")
        .bind(payment_id)
        .bind(order_id)
        .bind(due_at)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Marks a watched payment settled or expired.
pub async fn set_state(db: &ReadDb, payment_id: &str, state: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE saga_payments SET state = $1 WHERE payment_id = $2 AND state = 'open'")
        .bind(state)
        .bind(payment_id)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Open payments due at or before `now`: (payment id, order id).
pub async fn due(db: &ReadDb, now: &str) -> Result<Vec<(String, String)>, sqlx::Error> {
    let rows = sqlx::query("SELECT payment_id, order_id FROM saga_payments WHERE state = 'open' AND due_at <= $1 ORDER BY due_at")
        .bind(now)
        .fetch_all(db.pool())
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

/// How many payments an order has had.
pub async fn attempts(db: &ReadDb, order_id: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT CAST(count(*) AS BIGINT) FROM saga_payments WHERE order_id = $1")
        .bind(order_id)
        .fetch_one(db.pool())
        .await
}

/// The payments of an order.
pub async fn payments_of(db: &ReadDb, order_id: &str) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT payment_id FROM saga_payments WHERE order_id = $1 ORDER BY payment_id",
    )
    .bind(order_id)
    .fetch_all(db.pool())
    .await
}
