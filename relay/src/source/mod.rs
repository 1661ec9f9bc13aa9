//! The Kafka source: the processes running a projection share the events
//! topic's partitions as a group — adding a process splits the partitions,
//! killing one hands its partitions to the others after the session timeout.
//! Membership lives in the database beside the positions
//! (`projection_kafka_members`, a lease renewed every second, one member
//! id per process for all its projections, so they take the same share
//! and the process's one consumer reads only that), and each
//! member has its partitions read from the offsets the database holds, so
//! nothing depends on the broker's group coordinator. A process has one
//! consumer for all its projections (`feed`).
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
//! - `feed`: the process's one consumer, handing records to its projections.
//! - `membership`: leases, partition shares, the stored offsets to read from.
//! - The partitions' positions are SQL of `readmodel::offsets`.

mod apply;
mod feed;
mod membership;

use std::time::Duration;

use rdkafka::message::Message;
use readmodel::{registry, Projection, ProjectionError, ReadDb, Wake};
use tokio::sync::watch;
use tokio::time::Instant;

pub use apply::apply_records;
pub use feed::{spawn as spawn_feed, Subscription};

use crate::kafka::{self, KafkaSettings, Record};

/// Records per batch (and per transaction), at most. A projector catching
/// up holds a batch per projection, decoded, with the rows it loads and
/// writes: at 1,000 its heap peaked ~10 MiB higher for the same CPU
/// (`--only scaleout`).
const BATCH: usize = 500;

/// How often a member renews its lease (and notices others come and go).
const HEARTBEAT: Duration = Duration::from_secs(1);

/// One record taken off the consumer.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub partition: i32,
    pub offset: i64,
    /// `None`: not a record the relay wrote (skipped, counted). Shared:
    /// the one consumer hands the same record to every projection that
    /// takes it, without copying the event.
    pub record: Option<std::sync::Arc<Record>>,
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
        Ok(r) => Some(std::sync::Arc::new(r)),
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

/// The topic's partition count, once the broker answers (`None`: shut
/// down while waiting).
async fn partition_count(
    settings: &KafkaSettings,
    name: &str,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<i32> {
    loop {
        match settings.partition_count().await {
            Ok(n) => return Some(n),
            Err(e) => {
                tracing::debug!(error = %e, projection = name, "waiting for the events topic");
                if pause(Duration::from_secs(1), shutdown).await {
                    return None;
                }
            }
        }
    }
}

/// This process's place among a projection's consumers.
struct Member {
    id: String,
    owned: Vec<i32>,
    /// Assign again at the stored positions (after a seek or a failure).
    reassign: bool,
    next_heartbeat: Instant,
}

impl Member {
    /// Renews the lease when due and takes this member's share.
    async fn heartbeat(
        &mut self,
        feed: &mut Subscription,
        db: &ReadDb,
        name: &str,
        (settings, partitions): (&KafkaSettings, i32),
    ) {
        if Instant::now() < self.next_heartbeat {
            return;
        }
        self.next_heartbeat = Instant::now() + HEARTBEAT;
        let timeout = settings.session_timeout_ms;
        match membership::membership(db, name, &self.id, partitions, timeout).await {
            Ok(mine) if mine != self.owned || self.reassign => {
                match membership::stored(db, name, &settings.topic, &mine).await {
                    Ok(at) => {
                        feed.own(at);
                        tracing::info!(projection = name, partitions = ?mine, "consuming partitions");
                        self.owned = mine;
                        self.reassign = false;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, projection = name, "cannot assign partitions")
                    }
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, projection = name, "membership heartbeat failed"),
        }
    }

    /// Reads from the stored positions at the next heartbeat, which is now.
    fn reread(&mut self) {
        self.reassign = true;
        self.next_heartbeat = Instant::now();
    }
}

/// The next batch: the first record within `wait`, then whatever follows
/// within 2 ms each, up to [`BATCH`] (`None`: nothing arrived).
async fn next_batch(
    feed: &mut Subscription,
    wait: Duration,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<Vec<Incoming>> {
    let first = tokio::select! {
        m = feed.recv() => m,
        () = tokio::time::sleep(wait) => return None,
        _ = shutdown.changed() => return None,
    };
    let Some(first) = first else {
        // The feed has stopped: the process is shutting down.
        pause(wait, shutdown).await;
        return None;
    };
    let mut batch = vec![first];
    while batch.len() < BATCH {
        match tokio::time::timeout(Duration::from_millis(2), feed.recv()).await {
            Ok(Some(m)) => batch.push(m),
            _ => break,
        }
    }
    Some(batch)
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
    (commits, mut feed): (Wake, Subscription),
    mut shutdown: watch::Receiver<bool>,
) {
    let Some(partitions) = partition_count(&settings, P::NAME, &mut shutdown).await else {
        return;
    };
    let mut member = Member {
        id: feed.member().to_string(),
        owned: Vec::new(),
        reassign: false,
        next_heartbeat: Instant::now(),
    };
    tracing::info!(projection = P::NAME, topic = %settings.topic, partitions, member = %member.id, "consuming from Kafka");
    while !*shutdown.borrow() {
        member
            .heartbeat(&mut feed, &db, P::NAME, (&settings, partitions))
            .await;
        let wait = member
            .next_heartbeat
            .saturating_duration_since(Instant::now());
        if member.owned.is_empty() {
            pause(wait, &mut shutdown).await;
            continue;
        }
        let Some(batch) = next_batch(&mut feed, wait, &mut shutdown).await else {
            continue;
        };
        received::<P>(&batch);
        let started = std::time::Instant::now();
        let applied = apply_records::<P>(&db, &settings.topic, Some(partitions), &batch).await;
        let delay = after_batch::<P>(&db, &mut member, applied, batch.len(), started).await;
        if member.owned.is_empty() {
            // Stopped on a poison event: hold none of the feed's records back.
            feed.own(std::collections::BTreeMap::new());
        }
        if let Some(delay) = delay {
            pause(delay, &mut shutdown).await;
        } else {
            commits.notify();
        }
    }
    membership::leave(&db, P::NAME, &member.id).await;
}

/// Records how long the oldest event of a batch took from its append to
/// this consumer (relay, broker and fetch).
fn received<P: Projection>(batch: &[Incoming]) {
    let oldest = batch
        .iter()
        .filter_map(|r| match r.record.as_deref() {
            Some(Record::Event(e)) => Some(e.recorded_at),
            _ => None,
        })
        .min();
    if let Some(at) = oldest {
        telemetry::metrics::observe_since(
            "projector_kafka_receive_delay_seconds",
            "From an event's append to its arrival at a projector (the oldest event of each batch).",
            &[("projection", P::NAME)],
            at.into(),
        );
    }
}

/// Records what a batch did; `Some(delay)` when the loop should wait
/// before reading again (a stopped generation, a failed batch), `None`
/// after a commit.
async fn after_batch<P: Projection>(
    db: &ReadDb,
    member: &mut Member,
    applied: Result<(Outcome, i64), ProjectionError>,
    records: usize,
    started: std::time::Instant,
) -> Option<Duration> {
    match applied {
        Ok((outcome, g)) => {
            if !outcome.seeks.is_empty() {
                // Another member moved a partition on (an overlap while
                // ownership changed hands): read from the database's place.
                tracing::debug!(projection = P::NAME, seeks = ?outcome.seeks, "re-assigning at the stored positions");
                member.reread();
            }
            if outcome.stopped {
                // A poison event stopped the live generation; wait for
                // an operator's rebuild to swap in a new one, owning
                // nothing meanwhile (the next heartbeat takes them again).
                member.owned.clear();
                member.reassign = true;
                return Some(Duration::from_secs(1));
            }
            projectors::observe::record_batch(
                P::NAME,
                outcome.applied,
                started.elapsed(),
                outcome.oldest,
            );
            telemetry::metrics::count(
                "projector_duplicates_total",
                "Redelivered events skipped.",
                &[("projection", P::NAME)],
                outcome.duplicates as f64,
            );
            tracing::debug!(
                projection = P::NAME,
                generation = g,
                records,
                applied = outcome.applied,
                "kafka batch applied"
            );
            None
        }
        Err(e) => {
            if let ProjectionError::Poison { position, message } = &e {
                tracing::error!(projection = P::NAME, position, error = %message, "poison event: projection stopped");
                if let Ok(Some(g)) = registry::live_generation(db, P::NAME).await {
                    if let Err(e) = registry::fail(db, P::NAME, g, *position, message).await {
                        tracing::error!(error = %e, "could not record the failure");
                    }
                }
            } else {
                tracing::warn!(projection = P::NAME, error = %e, "kafka batch failed; retrying");
            }
            // Read the batch again from where the database says.
            member.reread();
            Some(Duration::from_millis(500))
        }
    }
}
