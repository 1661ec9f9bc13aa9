//! Who consumes which partitions: members of a projection lease their
//! place in the database (`projection_kafka_members`, renewed every
//! heartbeat); each takes every partition `p` with `p % members == its
//! index`, and has the process's feed read them from the offsets the
//! database holds, so nothing depends on the broker's group coordinator.

use std::collections::BTreeMap;

use readmodel::{offsets, ProjectionError, ReadDb};

use super::feed::Start;

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

/// Where each of `partitions` is to be read from: the offsets the database
/// holds for the live generation (`None`: from the beginning).
pub(super) async fn stored(
    db: &ReadDb,
    name: &str,
    topic: &str,
    partitions: &[i32],
) -> Result<BTreeMap<i32, Start>, ProjectionError> {
    let stored = offsets::live_offsets(db, name, topic).await?;
    Ok(partitions
        .iter()
        .map(|p| (*p, stored.get(p).copied().filter(|n| *n >= 0)))
        .collect())
}

pub(super) async fn leave(db: &ReadDb, name: &str, member: &str) {
    let _ = sqlx::query("DELETE FROM projection_kafka_members WHERE name = $1 AND member_id = $2")
        .bind(name)
        .bind(member)
        .execute(db.pool())
        .await;
}
