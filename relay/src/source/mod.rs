//! The Kafka source: the processes running a projection share the events
//! topic's partitions as a group — adding a process splits the partitions,
//! killing one hands its partitions to the others after the session timeout.
//! Membership lives in the database beside the positions
//! (`projection_kafka_members`, a lease renewed every second), and each
//! member assigns its partitions to its Kafka consumer at the offsets the
//! database holds, so nothing depends on the broker's group coordinator.
//! One consumer per process feeds all its projections: each record is
//! fetched and decoded once, and each projection applies a batch in its
//! own transaction, side by side with the others.
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
//!
//! # Layout
//! - `mod.rs`: [`run`], the consumer loop; the record types.
//! - `apply`: [`apply_records`], one batch in one transaction.
//! - `membership`: leases, partition shares, the lanes (one per
//!   projection), assignment at the lowest stored offsets.
//! - The partitions' positions are SQL of `readmodel::offsets`.

mod apply;
mod membership;

use membership::{Lane, Member};

use std::time::Duration;

use rdkafka::consumer::StreamConsumer;
use rdkafka::message::Message;
use readmodel::{
    registry, Analytics, CustomerView, OrderViewProjection, ProjectionError, ReadDb, Wake,
};
use tokio::sync::watch;
use tokio::time::Instant;

pub use apply::apply_records;

use crate::kafka::{self, KafkaSettings, Record};

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
    /// When the oldest event applied was appended.
    pub oldest: Option<chrono::DateTime<chrono::Utc>>,
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

/// Sleeps `wait`, or less when `shutdown` changes; true when it is time to stop.
async fn pause(wait: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        () = tokio::time::sleep(wait) => {}
        _ = shutdown.changed() => {}
    }
    *shutdown.borrow()
}

/// The consumer and the topic's partition count, once the broker answers
/// (`None`: shut down while waiting).
async fn connect(
    settings: &KafkaSettings,
    name: &str,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<(StreamConsumer, i32)> {
    let consumer: StreamConsumer = loop {
        match settings.consumer_config(name).create() {
            Ok(c) => break c,
            Err(e) => {
                tracing::error!(error = %e, projection = name, "cannot create the Kafka consumer");
                if pause(Duration::from_secs(2), shutdown).await {
                    return None;
                }
            }
        }
    };
    // The partition count comes from the broker: wait for it.
    loop {
        match settings.partition_count().await {
            Ok(n) => return Some((consumer, n)),
            Err(e) => {
                tracing::debug!(error = %e, projection = name, "waiting for the events topic");
                if pause(Duration::from_secs(1), shutdown).await {
                    return None;
                }
            }
        }
    }
}

/// The next batch: the first record within `wait`, then whatever follows
/// within 2 ms each, up to [`BATCH`] (`None`: nothing arrived).
async fn next_batch(
    consumer: &StreamConsumer,
    wait: Duration,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<Vec<Incoming>> {
    let first = tokio::select! {
        m = consumer.recv() => m,
        () = tokio::time::sleep(wait) => return None,
        _ = shutdown.changed() => return None,
    };
    let mut batch = match first {
        Ok(m) => vec![take(&m)],
        Err(e) => {
            tracing::debug!(error = %e, "kafka consumer");
            return None;
        }
    };
    while batch.len() < BATCH {
        match tokio::time::timeout(Duration::from_millis(2), consumer.recv()).await {
            Ok(Ok(m)) => batch.push(take(&m)),
            _ => break,
        }
    }
    Some(batch)
}

/// Keeps the live generations of every projection up to date from Kafka
/// until `shutdown` flips to true, through one consumer for all of them
/// (one fetch and one decode of each record per process). Waits (never
/// exits) while the broker is unreachable. Signals `commits` after commits.
///
/// The processes running the projections share each projection's
/// partitions through leases in the database (`projection_kafka_members`):
/// a new process takes its share within a second, a dead one's partitions
/// move after the session timeout.
pub async fn run(
    settings: KafkaSettings,
    db: ReadDb,
    commits: Wake,
    mut shutdown: watch::Receiver<bool>,
) {
    let Some((consumer, partitions)) = connect(&settings, "projectors", &mut shutdown).await else {
        return;
    };
    let mut member = Member {
        id: uuid::Uuid::new_v4().to_string(),
        lanes: vec![
            Lane::of::<CustomerView>(),
            Lane::of::<OrderViewProjection>(),
            Lane::of::<Analytics>(),
        ],
        assigned: Vec::new(),
        next_heartbeat: Instant::now(),
    };
    tracing::info!(projections = ?readmodel::NAMES, topic = %settings.topic, partitions, member = %member.id, "consuming from Kafka");
    while !*shutdown.borrow() {
        member
            .heartbeat(&consumer, &db, (&settings, partitions))
            .await;
        let wait = member
            .next_heartbeat
            .saturating_duration_since(Instant::now());
        if member.assigned.is_empty() {
            pause(wait, &mut shutdown).await;
            continue;
        }
        let Some(batch) = next_batch(&consumer, wait, &mut shutdown).await else {
            continue;
        };
        if apply_lanes(&db, &mut member, (&settings.topic, partitions), &batch).await {
            commits.notify();
        }
    }
    for lane in &member.lanes {
        membership::leave(&db, lane.name, &member.id).await;
    }
}

/// Applies `batch` to every lane not paused, side by side (each its own
/// transaction), each with the records of the partitions it owns. True
/// when one committed.
async fn apply_lanes(
    db: &ReadDb,
    member: &mut Member,
    (topic, partitions): (&str, i32),
    batch: &[Incoming],
) -> bool {
    let now = Instant::now();
    let assigned = &member.assigned;
    // A lane waiting to read again from its positions skips what the
    // consumer reads until it is assigned there.
    let ready = |l: &Lane| !l.paused(now) && !l.stopped && !l.reread && !l.owned.is_empty();
    let work: Vec<(usize, Vec<Incoming>)> = member
        .lanes
        .iter()
        .enumerate()
        .filter(|(_, l)| ready(l))
        .map(|(i, l)| {
            // Usually a lane owns all the consumer reads: no copy then.
            let own = if &l.owned == assigned {
                Vec::new()
            } else {
                batch
                    .iter()
                    .filter(|r| l.owned.contains(&r.partition))
                    .cloned()
                    .collect()
            };
            (i, own)
        })
        .filter(|(i, own)| member.lanes[*i].owned == *assigned || !own.is_empty())
        .collect();
    let started = std::time::Instant::now();
    let results = futures::future::join_all(work.iter().map(|(i, own)| {
        let lane = &member.lanes[*i];
        let records = if &lane.owned == assigned { batch } else { own };
        received(lane.name, records);
        (lane.apply)(db, topic, Some(partitions), records)
    }))
    .await;
    let mut committed = false;
    for ((i, own), applied) in work.iter().zip(results) {
        let records = if own.is_empty() {
            batch.len()
        } else {
            own.len()
        };
        committed |= after_batch(db, member, *i, applied, (records, started)).await;
    }
    committed
}

/// Records how long the oldest event of a batch took from its append to
/// this consumer (relay, broker and fetch).
fn received(name: &str, batch: &[Incoming]) {
    let oldest = batch
        .iter()
        .filter_map(|r| match &r.record {
            Some(Record::Event(e)) => Some(e.recorded_at),
            _ => None,
        })
        .min();
    if let Some(at) = oldest {
        telemetry::metrics::observe_since(
            "projector_kafka_receive_delay_seconds",
            "From an event's append to its arrival at a projector (the oldest event of each batch).",
            &[("projection", name)],
            at.into(),
        );
    }
}

/// Records what a batch did to lane `i`; pauses the lane after a failure
/// or on a stopped generation. True after a commit.
async fn after_batch(
    db: &ReadDb,
    member: &mut Member,
    i: usize,
    applied: Result<(Outcome, i64), ProjectionError>,
    (records, started): (usize, std::time::Instant),
) -> bool {
    let name = member.lanes[i].name;
    match applied {
        Ok((outcome, g)) => {
            if !outcome.seeks.is_empty() {
                // Another member moved a partition on (an overlap while
                // ownership changed hands), or this lane skipped records
                // while paused: read from the database's place.
                tracing::debug!(projection = name, seeks = ?outcome.seeks, "re-assigning at the stored positions");
                member.reread(i);
            }
            let lane = &mut member.lanes[i];
            if outcome.stopped {
                // A poison event stopped the live generation; the heartbeat
                // looks again every second (an operator's rebuild may swap
                // in a new one).
                lane.stopped = true;
                lane.resume_at = Some(Instant::now() + Duration::from_secs(1));
                return false;
            }
            lane.resume_at = None;
            projectors::engine::record_batch(
                name,
                outcome.applied,
                started.elapsed(),
                outcome.oldest,
            );
            telemetry::metrics::count(
                "projector_duplicates_total",
                "Redelivered events skipped.",
                &[("projection", name)],
                outcome.duplicates as f64,
            );
            tracing::debug!(
                projection = name,
                generation = g,
                records,
                applied = outcome.applied,
                "kafka batch applied"
            );
            true
        }
        Err(e) => {
            if let ProjectionError::Poison { position, message } = &e {
                tracing::error!(projection = name, position, error = %message, "poison event: projection stopped");
                if let Ok(Some(g)) = registry::live_generation(db, name).await {
                    if let Err(e) = registry::fail(db, name, g, *position, message).await {
                        tracing::error!(error = %e, "could not record the failure");
                    }
                }
            } else {
                tracing::warn!(projection = name, error = %e, "kafka batch failed; retrying");
            }
            // Read the batch again from where the database says, shortly.
            member.lanes[i].resume_at = Some(Instant::now() + Duration::from_millis(500));
            member.reread(i);
            false
        }
    }
}
