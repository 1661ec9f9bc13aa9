//! Who consumes which partitions: members of a projection lease their
//! place in the database (`projection_kafka_members`, renewed every
//! heartbeat); each takes every partition `p` with `p % members == its
//! index`, and assigns them to its consumer at the offsets the database
//! holds, so nothing depends on the broker's group coordinator.

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{Offset, TopicPartitionList};
use readmodel::{offsets, ProjectionError, ReadDb};

/// This member's share of `partitions`: renews its lease, expires dead
/// members, and takes every partition `p` with `p % members == its index`.
pub(super) async fn membership(
    db: &ReadDb,
    name: &str,
    member: &str,
    partitions: i32,
    session_timeout_ms: u32,
) -> Result<Vec<i32>, ProjectionError> {
    sqlx::query(
        "INSERT INTO projection_kafka_members (name, member_id) VALUES ($1, $2) \
         ON CONFLICT (name, member_id) DO UPDATE SET heartbeat_at = now()",
    )
    .bind(name)
    .bind(member)
    .execute(db.pool())
    .await?;
    sqlx::query(
        "DELETE FROM projection_kafka_members WHERE name = $1 \
         AND heartbeat_at < now() - make_interval(secs => $2::float8 / 1000)",
    )
    .bind(name)
    .bind(f64::from(session_timeout_ms))
    .execute(db.pool())
    .await?;
    let members: Vec<String> = sqlx::query_scalar(
        "SELECT member_id FROM projection_kafka_members WHERE name = $1 ORDER BY member_id",
    )
    .bind(name)
    .fetch_all(db.pool())
    .await?;
    let Some(index) = members.iter().position(|m| m == member) else {
        return Ok(Vec::new());
    };
    let n = members.len() as i32;
    Ok((0..partitions).filter(|p| p % n == index as i32).collect())
}

/// Assigns `partitions` to the consumer at the offsets the database holds
/// for the live generation (the beginning where it holds none).
pub(super) async fn assign(
    consumer: &StreamConsumer,
    db: &ReadDb,
    name: &str,
    topic: &str,
    partitions: &[i32],
) -> Result<(), ProjectionError> {
    let stored = offsets::live_offsets(db, name, topic).await?;
    let mut list = TopicPartitionList::new();
    for p in partitions {
        let offset = stored
            .get(p)
            .filter(|n| **n >= 0)
            .map_or(Offset::Beginning, |n| Offset::Offset(*n));
        list.add_partition_offset(topic, *p, offset)
            .map_err(|e| ProjectionError::Corrupt(e.to_string()))?;
    }
    consumer
        .assign(&list)
        .map_err(|e| ProjectionError::Corrupt(format!("kafka assign: {e}")))?;
    tracing::info!(projection = name, ?partitions, "consuming partitions");
    Ok(())
}

pub(super) async fn leave(db: &ReadDb, name: &str, member: &str) {
    let _ = sqlx::query("DELETE FROM projection_kafka_members WHERE name = $1 AND member_id = $2")
        .bind(name)
        .bind(member)
        .execute(db.pool())
        .await;
}
