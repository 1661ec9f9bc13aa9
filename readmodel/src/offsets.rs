//! The Kafka source's positions in the read-model database
//! (`projection_kafka_offsets`): per projection generation and partition,
//! the next offset and the cursor of the last record seen. The Kafka source
//! writes them with its rows; status, the tail loop and rebuilds read them.

use eventlog::Cursor;
use sqlx::Row;

use crate::db::{ReadDb, Tx};
use crate::ProjectionError;

/// A cursor as stored (transaction id as text, position).
///
/// # Errors
/// [`ProjectionError::Corrupt`] for a transaction id that is not a number.
pub fn parse_cursor(txid: &str, position: i64) -> Result<Cursor, ProjectionError> {
    Ok(Cursor {
        transaction_id: txid
            .parse()
            .map_err(|_| ProjectionError::Corrupt(format!("cursor {txid}")))?,
        position,
    })
}

/// Whether generation `g` consumes Kafka (it has partition positions).
///
/// # Errors
/// Database errors.
pub async fn consumes_kafka(db: &ReadDb, name: &str, g: i64) -> Result<bool, ProjectionError> {
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM projection_kafka_offsets WHERE name = $1 AND generation = $2",
    )
    .bind(name)
    .bind(g)
    .fetch_one(db.pool())
    .await?;
    Ok(n > 0)
}

/// The lowest and highest per-partition cursor of generation `g` (a
/// rebuilt generation must have seen at least the highest before it takes
/// over; when both are equal, every partition is at the same place).
///
/// # Errors
/// Database errors.
pub async fn cursor_range(
    tx: &mut Tx<'_>,
    name: &str,
    g: i64,
) -> Result<Option<(Cursor, Cursor)>, ProjectionError> {
    let rows = sqlx::query(
        "SELECT cursor_txid, cursor_position FROM projection_kafka_offsets WHERE name = $1 AND generation = $2",
    )
    .bind(name)
    .bind(g)
    .fetch_all(&mut **tx)
    .await?;
    let mut range: Option<(Cursor, Cursor)> = None;
    for r in &rows {
        let c = parse_cursor(&r.try_get::<String, _>(0)?, r.try_get(1)?)?;
        range = Some(range.map_or((c, c), |(l, h)| (l.min(c), h.max(c))));
    }
    Ok(range)
}

/// Gives a rebuilt generation `to` (complete up to `cursor`) the live
/// generation's Kafka positions: it continues where the live one was, and
/// skips what the rebuild already folded.
///
/// # Errors
/// Database errors.
pub async fn hand_over_offsets(
    tx: &mut Tx<'_>,
    name: &str,
    from: i64,
    to: i64,
    cursor: Cursor,
) -> Result<(), ProjectionError> {
    sqlx::query(
        "INSERT INTO projection_kafka_offsets (name, generation, topic, partition, next_offset, cursor_txid, cursor_position) \
         SELECT name, $1, topic, partition, next_offset, $2, $3 FROM projection_kafka_offsets \
         WHERE name = $4 AND generation = $5",
    )
    .bind(to)
    .bind(cursor.transaction_id.to_string())
    .bind(cursor.position)
    .bind(name)
    .bind(from)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
