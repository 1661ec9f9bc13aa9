//! The Kafka source: a projection consumes the events topic in a consumer
//! group (`<prefix>.<projection>`), so adding a process splits the
//! partitions and killing one hands its partitions to the others.
//!
//! Exactly-once effect (invariant 4): the read-model rows, each partition's
//! next offset, and the cursor of the last record seen in it commit in one
//! transaction (`projection_kafka_offsets`). The consumer never trusts its
//! own position: every batch is checked against what the database says for
//! its partitions, and the consumer seeks there when they differ (after a
//! rebalance, a crash, a swap). Duplicates from a re-publishing relay arrive
//! in the same partition after the original, with a cursor at or below the
//! partition's, and are skipped.
//!
//! The generation's checkpoint (what consistency tokens and status read) is
//! the lowest cursor over all partitions: the relay's watermark records make
//! every partition move even when no event lands in it.

use std::collections::BTreeMap;
use std::time::Duration;

use eventlog::kafka::{self, KafkaSettings, Record};
use eventlog::{Cursor, StoredEvent};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use sqlx::Row;
use tokio::sync::watch;

use crate::engine::{fold_into, Projection, Wake};
use crate::store::{ReadDb, Tx};
use crate::{registry, ProjectionError};

/// Records per batch (and per transaction), at most.
const BATCH: usize = 1000;

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

fn parse_cursor(txid: &str, position: i64) -> Result<Cursor, ProjectionError> {
    Ok(Cursor {
        transaction_id: txid
            .parse()
            .map_err(|_| ProjectionError::Corrupt(format!("cursor {txid}")))?,
        position,
    })
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
    let mut tx = db.begin().await?;
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
                Some(r.try_get::<i64, _>(0)?),
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
            // All already applied: the consumer is behind the database.
            if let Some(n) = next {
                outcome.seeks.push((*partition, n));
            }
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
    if let Err((i, e)) = fold_into::<P>(&mut tx, g, &relevant).await? {
        return Err(ProjectionError::Poison {
            position: relevant[i].position,
            message: e.0,
        });
    }
    let watermark = match partitions {
        Some(n) => watermark(&mut tx, P::NAME, g, topic, n).await?,
        None => None,
    };
    let last_at = fresh.iter().map(|e| e.recorded_at).max().map(|t| {
        t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
    });
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

fn take(message: &rdkafka::message::BorrowedMessage<'_>) -> Incoming {
    let record = match kafka::decode(message) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::warn!(error = %e, "skipping a record the relay did not write");
            eventlog::metrics::count(
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

/// Keeps `P`'s live generation up to date from Kafka until `shutdown`
/// flips to true. Waits (never exits) while the broker is unreachable.
/// Signals `commits` after every commit.
pub async fn run<P: Projection>(
    settings: KafkaSettings,
    db: ReadDb,
    commits: Wake,
    mut shutdown: watch::Receiver<bool>,
) {
    let labels = [("projection", P::NAME)];
    'connect: loop {
        if *shutdown.borrow() {
            return;
        }
        let consumer: StreamConsumer = match settings.consumer_config(P::NAME).create() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, projection = P::NAME, "cannot create the Kafka consumer");
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
        };
        if let Err(e) = consumer.subscribe(&[&settings.topic]) {
            tracing::warn!(error = %e, "cannot subscribe; retrying");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        tracing::info!(projection = P::NAME, topic = %settings.topic, "consuming from Kafka");
        let mut partitions: Option<i32> = None;
        loop {
            if *shutdown.borrow() {
                return;
            }
            if partitions.is_none() {
                partitions = settings.partition_count().await.ok();
            }
            let first = tokio::select! {
                m = consumer.recv() => m,
                () = tokio::time::sleep(Duration::from_secs(1)) => continue,
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
            let result = apply_records::<P>(&db, &settings.topic, partitions, &batch).await;
            match result {
                Ok((outcome, g)) => {
                    for (partition, offset) in &outcome.seeks {
                        tracing::debug!(projection = P::NAME, partition, offset, "seeking to the stored position");
                        seek(&consumer, &settings.topic, *partition, Offset::Offset(*offset));
                    }
                    if outcome.stopped {
                        // A poison event stopped the live generation; wait
                        // for an operator's rebuild to swap in a new one.
                        rewind(&consumer, &settings.topic, &batch);
                        tokio::select! {
                            () = tokio::time::sleep(Duration::from_secs(1)) => {}
                            _ = shutdown.changed() => {}
                        }
                        continue;
                    }
                    commits.notify();
                    eventlog::metrics::observe_size(
                        "projector_batch_events",
                        "Events per projector batch.",
                        &labels,
                        outcome.applied as f64,
                    );
                    eventlog::metrics::observe_seconds(
                        "projector_batch_duration_seconds",
                        "Time to fold and commit one batch.",
                        &labels,
                        started.elapsed().as_secs_f64(),
                    );
                    eventlog::metrics::count(
                        "projector_events_total",
                        "Events seen by each projection.",
                        &labels,
                        outcome.applied as f64,
                    );
                    eventlog::metrics::count(
                        "projector_duplicates_total",
                        "Redelivered events skipped.",
                        &labels,
                        outcome.duplicates as f64,
                    );
                    tracing::debug!(projection = P::NAME, generation = g, records = batch.len(), applied = outcome.applied, "kafka batch applied");
                }
                Err(ProjectionError::Poison { position, message }) => {
                    tracing::error!(projection = P::NAME, position, error = %message, "poison event: projection stopped");
                    if let Ok(Some(g)) = registry::live_generation(&db, P::NAME).await {
                        if let Err(e) = registry::fail(&db, P::NAME, g, position, &message).await {
                            tracing::error!(error = %e, "could not record the failure");
                        }
                    }
                    rewind(&consumer, &settings.topic, &batch);
                }
                Err(e) => {
                    tracing::warn!(projection = P::NAME, error = %e, "kafka batch failed; retrying");
                    // Read the batch again: the database decides what of it
                    // is new.
                    rewind(&consumer, &settings.topic, &batch);
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(500)) => {}
                        _ = shutdown.changed() => {}
                    }
                    if matches!(e, ProjectionError::Unknown(_)) {
                        continue 'connect;
                    }
                }
            }
        }
    }
}

fn seek(consumer: &StreamConsumer, topic: &str, partition: i32, offset: Offset) {
    let mut list = TopicPartitionList::new();
    if list
        .add_partition_offset(topic, partition, offset)
        .is_err()
    {
        return;
    }
    // `seek_partitions` fails for a partition this consumer no longer owns;
    // its new owner reads the database.
    if let Err(e) = consumer.seek_partitions(list, Duration::from_secs(2)) {
        tracing::debug!(error = %e, partition, "seek failed");
    }
}

fn rewind(consumer: &StreamConsumer, topic: &str, batch: &[Incoming]) {
    let mut firsts: BTreeMap<i32, i64> = BTreeMap::new();
    for r in batch {
        firsts.entry(r.partition).or_insert(r.offset);
    }
    for (partition, offset) in firsts {
        seek(consumer, topic, partition, Offset::Offset(offset));
    }
}
