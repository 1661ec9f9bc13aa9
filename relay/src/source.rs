//! The Kafka source: the processes running a projection share the events
//! topic's partitions as a group — adding a process splits the partitions,
//! killing one hands its partitions to the others after the session timeout.
//! Membership lives in the database beside the positions
//! (`projection_kafka_members`, a lease renewed every second), and each
//! member assigns its partitions to its Kafka consumer at the offsets the
//! database holds, so nothing depends on the broker's group coordinator.
//!
//! Exactly-once effect (invariant 4): the read-model rows, each partition's
//! next offset, and the cursor of the last record seen in it commit in one
//! transaction (`projection_kafka_offsets`). Every batch is checked against
//! what the database says for its partitions (row locks), so two members
//! that briefly both read a partition while it changes hands never apply
//! a record twice; the consumer re-reads from the database's position when
//! they differ. Duplicates from a re-publishing relay arrive in the same
//! partition after the original, with a cursor at or below the partition's,
//! and are skipped.
//!
//! The generation's checkpoint (what consistency tokens and status read) is
//! the lowest cursor over all partitions: the relay's watermark records make
//! every partition move even when no event lands in it.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::kafka::{self, KafkaSettings, Record};
use eventlog::{Cursor, StoredEvent};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use sqlx::Row;
use tokio::sync::watch;

use projectors::engine::fold_into;
use readmodel::offsets::parse_cursor;
use readmodel::{registry, Projection, ProjectionError, ReadDb, Tx, Wake};

/// Records per batch (and per transaction), at most.
const BATCH: usize = 1000;

/// How often a member renews its lease (and notices others come and go).
const HEARTBEAT: Duration = Duration::from_secs(1);

/// One record taken off the consumer.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub partition: i32,
    pub offset: i64,
    /// `None`: not a record the relay wrote (skipped, counted).
    pub record: Option<Record>,
}

/// What one batch did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Events folded.
    pub applied: usize,
    /// Records skipped as already applied.
    pub duplicates: usize,
    /// Partitions whose position the database corrects.
    pub seeks: Vec<(i32, i64)>,
    /// The live generation is stopped on a poison event.
    pub stopped: bool,
}

/// Applies one batch of records to `P`'s live generation; see the module
/// docs.
///
/// # Errors
/// Database errors; [`ProjectionError::Poison`] (nothing of the batch is
/// committed; the caller records the failure).
pub async fn apply_records<P: Projection>(
    db: &ReadDb,
    topic: &str,
    partitions: Option<i32>,
    batch: &[Incoming],
) -> Result<(Outcome, i64), ProjectionError> {
    let mut tx = db.begin_batch().await?;
    // A swap takes this row exclusively: a batch lands wholly before or
    // wholly after it.
    let lock = if db.is_postgres() { " FOR SHARE" } else { "" };
    let g: Option<i64> = sqlx::query_scalar(&format!(
        "SELECT generation FROM projection_live WHERE name = $1{lock}"
    ))
    .bind(P::NAME)
    .fetch_optional(&mut *tx)
    .await?;
    let g = g.ok_or_else(|| ProjectionError::Unknown(P::NAME.into()))?;
    let row = sqlx::query(
        "SELECT state, cursor_txid, cursor_position FROM projection_state WHERE name = $1 AND generation = $2",
    )
    .bind(P::NAME)
    .bind(g)
    .fetch_one(&mut *tx)
    .await?;
    let state: String = row.try_get(0)?;
    let base = parse_cursor(&row.try_get::<String, _>(1)?, row.try_get(2)?)?;
    let mut outcome = Outcome::default();
    if state == "failed" {
        outcome.stopped = true;
        return Ok((outcome, g));
    }
    let mut by_partition: BTreeMap<i32, Vec<&Incoming>> = BTreeMap::new();
    for r in batch {
        by_partition.entry(r.partition).or_default().push(r);
    }
    let row_lock = if db.is_postgres() { " FOR UPDATE" } else { "" };
    let mut fresh: Vec<&StoredEvent> = Vec::new();
    for (partition, records) in &by_partition {
        // Make sure the row exists before locking it: two members reading
        // a partition nobody has consumed yet must queue on the same row
        // (a lock on a missing row locks nothing). `-1`: no offset yet.
        sqlx::query(
            "INSERT INTO projection_kafka_offsets (name, generation, topic, partition, next_offset, cursor_txid, cursor_position) \
             VALUES ($1, $2, $3, $4, -1, $5, $6) ON CONFLICT (name, generation, topic, partition) DO NOTHING",
        )
        .bind(P::NAME)
        .bind(g)
        .bind(topic)
        .bind(*partition)
        .bind(base.transaction_id.to_string())
        .bind(base.position)
        .execute(&mut *tx)
        .await?;
        let stored = sqlx::query(&format!(
            "SELECT next_offset, cursor_txid, cursor_position FROM projection_kafka_offsets \
             WHERE name = $1 AND generation = $2 AND topic = $3 AND partition = $4{row_lock}"
        ))
        .bind(P::NAME)
        .bind(g)
        .bind(topic)
        .bind(*partition)
        .fetch_optional(&mut *tx)
        .await?;
        let (next, floor) = match stored {
            Some(r) => (
                Some(r.try_get::<i64, _>(0)?).filter(|n| *n >= 0),
                parse_cursor(&r.try_get::<String, _>(1)?, r.try_get(2)?)?,
            ),
            // A partition this generation has not consumed yet: everything
            // the generation already holds is a duplicate.
            None => (None, base),
        };
        let records: Vec<&&Incoming> = records
            .iter()
            .filter(|r| next.is_none_or(|n| r.offset >= n))
            .collect();
        let Some(first) = records.first() else {
            // All already applied (a redelivery after a rebalance or a
            // crash between the database commit and the offset commit).
            outcome.duplicates += records.len();
            continue;
        };
        if let Some(n) = next {
            if first.offset != n {
                // A gap between the database and the consumer: read from
                // where the database says.
                outcome.seeks.push((*partition, n));
                continue;
            }
        }
        let mut top = floor;
        let mut last_offset = first.offset;
        for r in &records {
            if r.offset != last_offset && r.offset != last_offset + 1 {
                // Offsets are dense within a batch unless the broker
                // compacted; never skip silently.
                tracing::debug!(partition, offset = r.offset, "offset jump inside a batch");
            }
            last_offset = r.offset;
            match &r.record {
                Some(Record::Event(e)) if e.cursor() > top => {
                    top = e.cursor();
                    fresh.push(e);
                }
                Some(Record::Event(_)) => outcome.duplicates += 1,
                Some(Record::Watermark(c)) => top = top.max(*c),
                None => {}
            }
        }
        sqlx::query(
            "INSERT INTO projection_kafka_offsets (name, generation, topic, partition, next_offset, cursor_txid, cursor_position) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (name, generation, topic, partition) DO UPDATE SET \
             next_offset = excluded.next_offset, cursor_txid = excluded.cursor_txid, cursor_position = excluded.cursor_position",
        )
        .bind(P::NAME)
        .bind(g)
        .bind(topic)
        .bind(*partition)
        .bind(last_offset + 1)
        .bind(top.transaction_id.to_string())
        .bind(top.position)
        .execute(&mut *tx)
        .await?;
    }
    // Partitions are independent streams; across them the log order is the
    // natural one (within each, it is already the commit order).
    fresh.sort_by_key(|e| e.cursor());
    let relevant: Vec<&StoredEvent> = fresh
        .iter()
        .copied()
        .filter(|e| P::handles(&e.event_type))
        .collect();
    let spans = projectors::engine::event_spans::<P>(relevant.iter().copied());
    if let Err((i, e)) = fold_into::<P>(&mut tx, g, &relevant).await? {
        return Err(ProjectionError::Poison {
            position: relevant[i].position,
            message: e.0,
        });
    }
    // Serialise the watermark: with the generation's row locked first, the
    // last of two concurrent batches sees the other's partition rows.
    if db.is_postgres() {
        sqlx::query(
            "SELECT 1 FROM projection_state WHERE name = $1 AND generation = $2 FOR UPDATE",
        )
        .bind(P::NAME)
        .bind(g)
        .execute(&mut *tx)
        .await?;
    }
    let watermark = match partitions {
        Some(n) => watermark(&mut tx, P::NAME, g, topic, n).await?,
        None => None,
    };
    let last_at = fresh
        .iter()
        .map(|e| e.recorded_at)
        .max()
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string());
    registry::progress(
        &mut tx,
        P::NAME,
        g,
        watermark,
        relevant.len() as i64,
        last_at.as_deref(),
        db.is_postgres(),
    )
    .await?;
    tx.commit().await?;
    drop(spans);
    outcome.applied = fresh.len();
    Ok((outcome, g))
}

/// The lowest cursor over all `partitions` of generation `g`, once every
/// partition has one.
async fn watermark(
    tx: &mut Tx<'_>,
    name: &str,
    g: i64,
    topic: &str,
    partitions: i32,
) -> Result<Option<Cursor>, ProjectionError> {
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
    Ok(if seen == partitions { low } else { None })
}

fn take(message: &rdkafka::message::BorrowedMessage<'_>) -> Incoming {
    let record = match kafka::decode(message) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::warn!(error = %e, "skipping a record the relay did not write");
            telemetry::metrics::count(
                "projector_kafka_foreign_records_total",
                "Records on the events topic that are not shopstream events.",
                &[],
                1.0,
            );
            None
        }
    };
    Incoming {
        partition: message.partition(),
        offset: message.offset(),
        record,
    }
}

/// This member's share of `partitions`: renews its lease, expires dead
/// members, and takes every partition `p` with `p % members == its index`.
async fn membership(
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
async fn assign(
    consumer: &StreamConsumer,
    db: &ReadDb,
    name: &str,
    topic: &str,
    partitions: &[i32],
) -> Result<(), ProjectionError> {
    let rows = sqlx::query(
        "SELECT o.partition, o.next_offset FROM projection_kafka_offsets o \
         JOIN projection_live l ON l.name = o.name AND l.generation = o.generation \
         WHERE o.name = $1 AND o.topic = $2",
    )
    .bind(name)
    .bind(topic)
    .fetch_all(db.pool())
    .await?;
    let mut stored: BTreeMap<i32, i64> = BTreeMap::new();
    for r in &rows {
        stored.insert(r.try_get(0)?, r.try_get(1)?);
    }
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

async fn leave(db: &ReadDb, name: &str, member: &str) {
    let _ = sqlx::query("DELETE FROM projection_kafka_members WHERE name = $1 AND member_id = $2")
        .bind(name)
        .bind(member)
        .execute(db.pool())
        .await;
}

/// Keeps `P`'s live generation up to date from Kafka until `shutdown`
/// flips to true. Waits (never exits) while the broker is unreachable.
/// Signals `commits` after every commit.
///
/// The processes running `P` share its partitions through leases in the
/// database (`projection_kafka_members`): a new process takes its share
/// within a second, a dead one's partitions move after the session timeout.
pub async fn run<P: Projection>(
    settings: KafkaSettings,
    db: ReadDb,
    commits: Wake,
    mut shutdown: watch::Receiver<bool>,
) {
    let labels = [("projection", P::NAME)];
    let member = uuid::Uuid::new_v4().to_string();
    let consumer: StreamConsumer = loop {
        match settings.consumer_config(P::NAME).create() {
            Ok(c) => break c,
            Err(e) => {
                tracing::error!(error = %e, projection = P::NAME, "cannot create the Kafka consumer");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(2)) => {}
                    _ = shutdown.changed() => {}
                }
                if *shutdown.borrow() {
                    return;
                }
            }
        }
    };
    // The partition count comes from the broker: wait for it.
    let partitions = loop {
        match settings.partition_count().await {
            Ok(n) => break n,
            Err(e) => {
                tracing::debug!(error = %e, projection = P::NAME, "waiting for the events topic");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = shutdown.changed() => {}
                }
                if *shutdown.borrow() {
                    return;
                }
            }
        }
    };
    tracing::info!(projection = P::NAME, topic = %settings.topic, partitions, member = %member, "consuming from Kafka");
    let mut owned: Vec<i32> = Vec::new();
    let mut reassign = false;
    let mut next_heartbeat = tokio::time::Instant::now();
    loop {
        if *shutdown.borrow() {
            leave(&db, P::NAME, &member).await;
            return;
        }
        if tokio::time::Instant::now() >= next_heartbeat {
            next_heartbeat = tokio::time::Instant::now() + HEARTBEAT;
            match membership(
                &db,
                P::NAME,
                &member,
                partitions,
                settings.session_timeout_ms,
            )
            .await
            {
                Ok(mine) if mine != owned || reassign => {
                    match assign(&consumer, &db, P::NAME, &settings.topic, &mine).await {
                        Ok(()) => {
                            owned = mine;
                            reassign = false;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, projection = P::NAME, "cannot assign partitions")
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, projection = P::NAME, "membership heartbeat failed")
                }
            }
        }
        let wait = next_heartbeat.saturating_duration_since(tokio::time::Instant::now());
        if owned.is_empty() {
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => {}
            }
            continue;
        }
        let first = tokio::select! {
            m = consumer.recv() => m,
            () = tokio::time::sleep(wait) => continue,
            _ = shutdown.changed() => continue,
        };
        let mut batch = Vec::new();
        match first {
            Ok(m) => batch.push(take(&m)),
            Err(e) => {
                tracing::debug!(error = %e, "kafka consumer");
                continue;
            }
        }
        while batch.len() < BATCH {
            match tokio::time::timeout(Duration::from_millis(2), consumer.recv()).await {
                Ok(Ok(m)) => batch.push(take(&m)),
                _ => break,
            }
        }
        let started = std::time::Instant::now();
        match apply_records::<P>(&db, &settings.topic, Some(partitions), &batch).await {
            Ok((outcome, g)) => {
                if !outcome.seeks.is_empty() {
                    // Another member moved a partition on (an overlap while
                    // ownership changed hands): read from the database's place.
                    tracing::debug!(projection = P::NAME, seeks = ?outcome.seeks, "re-assigning at the stored positions");
                    reassign = true;
                    next_heartbeat = tokio::time::Instant::now();
                }
                if outcome.stopped {
                    // A poison event stopped the live generation; wait for
                    // an operator's rebuild to swap in a new one.
                    reassign = true;
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = shutdown.changed() => {}
                    }
                    continue;
                }
                commits.notify();
                projectors::engine::record_batch(P::NAME, outcome.applied, started.elapsed());
                telemetry::metrics::count(
                    "projector_duplicates_total",
                    "Redelivered events skipped.",
                    &labels,
                    outcome.duplicates as f64,
                );
                tracing::debug!(
                    projection = P::NAME,
                    generation = g,
                    records = batch.len(),
                    applied = outcome.applied,
                    "kafka batch applied"
                );
            }
            Err(e) => {
                if let ProjectionError::Poison { position, message } = &e {
                    tracing::error!(projection = P::NAME, position, error = %message, "poison event: projection stopped");
                    if let Ok(Some(g)) = registry::live_generation(&db, P::NAME).await {
                        if let Err(e) = registry::fail(&db, P::NAME, g, *position, message).await {
                            tracing::error!(error = %e, "could not record the failure");
                        }
                    }
                } else {
                    tracing::warn!(projection = P::NAME, error = %e, "kafka batch failed; retrying");
                }
                // Read the batch again from where the database says.
                reassign = true;
                next_heartbeat = tokio::time::Instant::now();
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
    }
}
