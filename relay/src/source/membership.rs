//! Who consumes which partitions: members of a projection lease their
//! place in the database (`projection_kafka_members`, renewed every
//! heartbeat); each takes every partition `p` with `p % members == its
//! index`, and assigns them to its consumer at the offsets the database
//! holds, so nothing depends on the broker's group coordinator. A process
//! feeds all its projections from one consumer ([`Member`]): each
//! projection is a [`Lane`] with its own lease, and the consumer reads the
//! lanes' partitions together, each from the lowest position among them.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{Offset, TopicPartitionList};
use readmodel::{offsets, registry, Projection, ProjectionError, ReadDb};
use tokio::time::Instant;

use super::{apply_records, Incoming, Outcome, HEARTBEAT};
use crate::kafka::KafkaSettings;

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

/// Assigns `partitions` to the consumer, each at the lowest offset the
/// database holds for it among the live generations of `owners[p]` (the
/// beginning where one holds none): every projection that reads a
/// partition gets what it has not applied, and skips the rest as
/// duplicates.
async fn assign(
    consumer: &StreamConsumer,
    db: &ReadDb,
    topic: &str,
    owners: &BTreeMap<i32, Vec<&str>>,
) -> Result<(), ProjectionError> {
    let mut names: Vec<&str> = owners.values().flatten().copied().collect();
    names.sort_unstable();
    names.dedup();
    let mut stored = BTreeMap::new();
    for name in names {
        stored.insert(name, offsets::live_offsets(db, name, topic).await?);
    }
    let mut list = TopicPartitionList::new();
    for (p, names) in owners {
        let lowest = names
            .iter()
            .map(|n| {
                stored
                    .get(n)
                    .and_then(|o| o.get(p))
                    .copied()
                    .filter(|n| *n >= 0)
            })
            .min()
            .flatten();
        let offset = lowest.map_or(Offset::Beginning, Offset::Offset);
        list.add_partition_offset(topic, *p, offset)
            .map_err(|e| ProjectionError::Corrupt(e.to_string()))?;
    }
    consumer
        .assign(&list)
        .map_err(|e| ProjectionError::Corrupt(format!("kafka assign: {e}")))?;
    let partitions: Vec<&i32> = owners.keys().collect();
    tracing::info!(?partitions, "consuming partitions");
    Ok(())
}

pub(super) async fn leave(db: &ReadDb, name: &str, member: &str) {
    let _ = sqlx::query("DELETE FROM projection_kafka_members WHERE name = $1 AND member_id = $2")
        .bind(name)
        .bind(member)
        .execute(db.pool())
        .await;
}

/// One projection fed by this process's consumer: its share of the
/// partitions (its own lease among the projection's members) and its pace.
pub(super) struct Lane {
    pub(super) name: &'static str,
    pub(super) apply: Applier,
    pub(super) owned: Vec<i32>,
    /// Read again from the stored positions (after a seek or a failure).
    pub(super) reread: bool,
    /// Skip batches until then (a failed batch, a stopped generation).
    pub(super) resume_at: Option<Instant>,
    /// The live generation is stopped on a poison event: its positions do
    /// not hold the consumer back.
    pub(super) stopped: bool,
}

/// A batch being applied to one projection.
type Applying<'a> =
    Pin<Box<dyn Future<Output = Result<(Outcome, i64), ProjectionError>> + Send + 'a>>;

/// [`apply_records`] for one projection, boxed so lanes of different
/// projections fit one list.
type Applier = for<'a> fn(&'a ReadDb, &'a str, Option<i32>, &'a [Incoming]) -> Applying<'a>;

fn applier<'a, P: Projection>(
    db: &'a ReadDb,
    topic: &'a str,
    partitions: Option<i32>,
    batch: &'a [Incoming],
) -> Applying<'a> {
    Box::pin(apply_records::<P>(db, topic, partitions, batch))
}

impl Lane {
    pub(super) fn of<P: Projection>() -> Self {
        Self {
            name: P::NAME,
            apply: applier::<P>,
            owned: Vec::new(),
            reread: false,
            resume_at: None,
            stopped: false,
        }
    }

    pub(super) fn paused(&self, now: Instant) -> bool {
        self.resume_at.is_some_and(|t| now < t)
    }
}

/// This process's consumer and the projections it feeds. One member id
/// for all of them, so their leases give them the same partitions.
pub(super) struct Member {
    pub(super) id: String,
    pub(super) lanes: Vec<Lane>,
    /// What the consumer is assigned (the lanes' partitions together).
    pub(super) assigned: Vec<i32>,
    pub(super) next_heartbeat: Instant,
}

impl Member {
    /// Renews the lanes' leases when due, takes their shares, and assigns
    /// the consumer again when they changed or a lane reads again.
    pub(super) async fn heartbeat(
        &mut self,
        consumer: &StreamConsumer,
        db: &ReadDb,
        (settings, partitions): (&KafkaSettings, i32),
    ) {
        let now = Instant::now();
        if now < self.next_heartbeat {
            return;
        }
        self.next_heartbeat = now + HEARTBEAT;
        let timeout = settings.session_timeout_ms;
        for lane in &mut self.lanes {
            match membership(db, lane.name, &self.id, partitions, timeout).await {
                Ok(mine) => lane.owned = mine,
                Err(e) => {
                    tracing::warn!(error = %e, projection = lane.name, "membership heartbeat failed")
                }
            }
            if lane.stopped && !lane.paused(now) {
                if still_stopped(db, lane.name).await {
                    lane.resume_at = Some(now + Duration::from_secs(1));
                } else {
                    // A new generation is live: read from its positions.
                    lane.stopped = false;
                    lane.resume_at = None;
                    lane.reread = true;
                }
            }
        }
        // Each partition from its projections' lowest position; a stopped
        // one holds nobody back unless it alone owns the partition.
        let mut owners: BTreeMap<i32, Vec<&str>> = BTreeMap::new();
        for stopped in [false, true] {
            for lane in self.lanes.iter().filter(|l| l.stopped == stopped) {
                for p in &lane.owned {
                    let names = owners.entry(*p).or_default();
                    if !stopped || names.is_empty() {
                        names.push(lane.name);
                    }
                }
            }
        }
        let wanted: Vec<i32> = owners.keys().copied().collect();
        let reread = self.lanes.iter().any(|l| l.reread && !l.paused(now));
        if wanted == self.assigned && !reread {
            return;
        }
        match assign(consumer, db, &settings.topic, &owners).await {
            Ok(()) => {
                self.assigned = wanted;
                for lane in self.lanes.iter_mut().filter(|l| !l.paused(now)) {
                    lane.reread = false;
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot assign partitions"),
        }
    }

    /// `lane` reads from its stored positions at the next heartbeat, which
    /// is now (or when its pause ends).
    pub(super) fn reread(&mut self, lane: usize) {
        self.lanes[lane].reread = true;
        let at = self.lanes[lane].resume_at.unwrap_or_else(Instant::now);
        self.next_heartbeat = self.next_heartbeat.min(at);
    }
}

/// Whether `name`'s live generation is still stopped on a poison event
/// (also when the database cannot say).
async fn still_stopped(db: &ReadDb, name: &str) -> bool {
    let Ok(Some(g)) = registry::live_generation(db, name).await else {
        return true;
    };
    match registry::generation(db, name, g).await {
        Ok(Some(state)) => state.state == "failed",
        _ => true,
    }
}
