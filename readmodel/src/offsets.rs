//! The Kafka source's positions in the read-model database
//! (`projection_kafka_offsets`): per projection generation and partition,
//! the next offset and the cursor of the last record seen. The Kafka source
//! writes them with its rows; status, the tail loop and rebuilds read them.

use std::collections::{BTreeMap, BTreeSet};

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

/// The live generation a Kafka batch lands in, locked against a swap (a
/// batch lands wholly before or wholly after it).
#[derive(Debug, Clone, Copy)]
pub struct LiveBatch {
    pub generation: i64,
    /// The generation is stopped on a poison event.
    pub failed: bool,
    /// Its checkpoint.
    pub cursor: Cursor,
}

/// Locks `name`'s live generation for a batch and reads its checkpoint,
/// in one statement.
///
/// # Errors
/// Database errors; [`ProjectionError::Unknown`] without a live generation.
pub async fn lock_live(
    tx: &mut Tx<'_>,
    name: &str,
    postgres: bool,
) -> Result<LiveBatch, ProjectionError> {
    let lock = if postgres { " FOR SHARE OF l" } else { "" };
    let row = sqlx::query(&format!(
        "SELECT l.generation, s.state, s.cursor_txid, s.cursor_position \
         FROM projection_live l JOIN projection_state s ON s.name = l.name AND s.generation = l.generation \
         WHERE l.name = $1{lock}"
    ))
    .bind(name)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| ProjectionError::Unknown(name.into()))?;
    let state: String = row.try_get(1)?;
    Ok(LiveBatch {
        generation: row.try_get(0)?,
        failed: state == "failed",
        cursor: parse_cursor(&row.try_get::<String, _>(2)?, row.try_get(3)?)?,
    })
}

/// One partition's stored position: the next offset to read (`None`
/// before the first record) and the cursor of the last record seen.
#[derive(Debug, Clone, Copy)]
pub struct PartitionPosition {
    pub next_offset: Option<i64>,
    pub cursor: Cursor,
}

/// One topic of one projection generation.
#[derive(Debug, Clone, Copy)]
pub struct TopicOf<'a> {
    pub name: &'a str,
    pub generation: i64,
    pub topic: &'a str,
}

/// Locks the rows of `partitions` (ascending, as every member locks them;
/// created at `base`, the generation's checkpoint, when missing: two
/// members reading a partition nobody has consumed yet must queue on the
/// same row, and a lock on a missing row locks nothing) and returns their
/// positions, in two statements whatever their number.
///
/// # Errors
/// Database errors.
pub async fn lock_partitions(
    tx: &mut Tx<'_>,
    at: TopicOf<'_>,
    partitions: &BTreeSet<i32>,
    base: Cursor,
    postgres: bool,
) -> Result<BTreeMap<i32, PartitionPosition>, ProjectionError> {
    let mut out = BTreeMap::new();
    if partitions.is_empty() {
        return Ok(out);
    }
    // The statements' text depends on how many partitions, not which:
    // a handful of prepared statements per connection. Placeholders ascend
    // by first appearance (SQLite numbers them so).
    let tuples: Vec<String> = (0..partitions.len())
        .map(|i| {
            let p = if i == 0 { 4 } else { 6 + i };
            format!("($1, $2, $3, ${p}, -1, $5, $6)")
        })
        .collect();
    let sql = format!(
        "INSERT INTO projection_kafka_offsets (name, generation, topic, partition, next_offset, cursor_txid, cursor_position) \
         VALUES {} ON CONFLICT (name, generation, topic, partition) DO NOTHING",
        tuples.join(", ")
    );
    let mut insert = sqlx::query(&sql)
        .bind(at.name)
        .bind(at.generation)
        .bind(at.topic);
    for (i, p) in partitions.iter().enumerate() {
        insert = insert.bind(*p);
        if i == 0 {
            insert = insert
                .bind(base.transaction_id.to_string())
                .bind(base.position);
        }
    }
    insert.execute(&mut **tx).await?;
    let lock = if postgres { " FOR UPDATE" } else { "" };
    let sql = format!(
        "SELECT partition, next_offset, cursor_txid, cursor_position FROM projection_kafka_offsets \
         WHERE name = $1 AND generation = $2 AND topic = $3 AND partition IN ({}) ORDER BY partition{lock}",
        crate::db::placeholders(4, partitions.len())
    );
    let mut select = sqlx::query(&sql)
        .bind(at.name)
        .bind(at.generation)
        .bind(at.topic);
    for p in partitions {
        select = select.bind(*p);
    }
    let rows = select.fetch_all(&mut **tx).await?;
    for r in &rows {
        let position = PartitionPosition {
            next_offset: Some(r.try_get::<i64, _>(1)?).filter(|n| *n >= 0),
            cursor: parse_cursor(&r.try_get::<String, _>(2)?, r.try_get(3)?)?,
        };
        out.insert(r.try_get::<i32, _>(0)?, position);
    }
    // A row gone again (a generation dropped meanwhile): everything the
    // generation already holds is a duplicate.
    for p in partitions {
        out.entry(*p).or_insert(PartitionPosition {
            next_offset: None,
            cursor: base,
        });
    }
    Ok(out)
}

/// Stores the new positions of the partitions a batch moved (partition →
/// next offset and cursor), in one statement.
///
/// # Errors
/// Database errors.
pub async fn store_partitions(
    tx: &mut Tx<'_>,
    at: TopicOf<'_>,
    moved: &BTreeMap<i32, (i64, Cursor)>,
) -> Result<(), ProjectionError> {
    if moved.is_empty() {
        return Ok(());
    }
    // Placeholders ascend by first appearance (SQLite numbers them so).
    let tuples: Vec<String> = (0..moved.len())
        .map(|i| format!("($1, $2, $3, {})", crate::db::placeholders(4 + 4 * i, 4)))
        .collect();
    let sql = format!(
        "INSERT INTO projection_kafka_offsets (name, generation, topic, partition, next_offset, cursor_txid, cursor_position) \
         VALUES {} ON CONFLICT (name, generation, topic, partition) DO UPDATE SET \
         next_offset = excluded.next_offset, cursor_txid = excluded.cursor_txid, cursor_position = excluded.cursor_position",
        tuples.join(", ")
    );
    let mut q = sqlx::query(&sql)
        .bind(at.name)
        .bind(at.generation)
        .bind(at.topic);
    for (partition, (next_offset, cursor)) in moved {
        q = q
            .bind(*partition)
            .bind(*next_offset)
            .bind(cursor.transaction_id.to_string())
            .bind(cursor.position);
    }
    q.execute(&mut **tx).await?;
    Ok(())
}

/// Generation `g`'s checkpoint (its row locked on Postgres, so the last
/// of two concurrent batches sees the other's partition rows) and the
/// lowest cursor over all `partitions`, once every partition has one.
///
/// # Errors
/// Database errors.
pub async fn watermark(
    tx: &mut Tx<'_>,
    (name, g): (&str, i64),
    topic: &str,
    partitions: i32,
    postgres: bool,
) -> Result<(Cursor, Option<Cursor>), ProjectionError> {
    let checkpoint = crate::registry::locked_checkpoint(tx, name, g, postgres).await?;
    let rows = sqlx::query(
        "SELECT partition, cursor_txid, cursor_position FROM projection_kafka_offsets \
         WHERE name = $1 AND generation = $2 AND topic = $3",
    )
    .bind(name)
    .bind(g)
    .bind(topic)
    .fetch_all(&mut **tx)
    .await?;
    let mut seen = 0;
    let mut low: Option<Cursor> = None;
    for r in &rows {
        let p: i32 = r.try_get(0)?;
        if p < partitions {
            seen += 1;
            let c = parse_cursor(&r.try_get::<String, _>(1)?, r.try_get(2)?)?;
            low = Some(low.map_or(c, |l| l.min(c)));
        }
    }
    Ok((checkpoint, if seen == partitions { low } else { None }))
}

/// The next offset per partition of `name`'s live generation on `topic`.
///
/// # Errors
/// Database errors.
pub async fn live_offsets(
    db: &ReadDb,
    name: &str,
    topic: &str,
) -> Result<std::collections::BTreeMap<i32, i64>, ProjectionError> {
    let rows = sqlx::query(
        "SELECT o.partition, o.next_offset FROM projection_kafka_offsets o \
         JOIN projection_live l ON l.name = o.name AND l.generation = o.generation \
         WHERE o.name = $1 AND o.topic = $2",
    )
    .bind(name)
    .bind(topic)
    .fetch_all(db.pool())
    .await?;
    let mut stored = std::collections::BTreeMap::new();
    for r in &rows {
        stored.insert(r.try_get(0)?, r.try_get(1)?);
    }
    Ok(stored)
}
