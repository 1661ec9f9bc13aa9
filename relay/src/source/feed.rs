//! One Kafka consumer per process, shared by the projections it runs.
//!
//! A consumer costs the broker a fetch every `fetch.wait.max.ms`, records
//! or not, and holds a prefetch queue of its own: one consumer per
//! projection tripled both. The feed assigns its consumer the union of the
//! partitions its projections own, each from the lowest offset any of them
//! still needs, and hands every record to each projection that owns the
//! partition and has not had the record yet, through a bounded channel per
//! projection. Which records a projection applies is still decided by its
//! own positions in the database ([`super::apply_records`]): the feed only
//! delivers, and a projection that finds a gap asks to own its partitions
//! again at the stored offsets, which moves the consumer back when needed.
//!
//! A full channel (one projection's transaction is slow) holds the feed
//! until it drains; a projection that gives its partitions up (stopped on
//! a poison event, shutting down) never holds it.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::{mpsc, watch};

use super::{take, Incoming, BATCH};
use crate::kafka::KafkaSettings;

/// Where a projection wants a partition read from: the next offset it has
/// to apply (`None`: from the beginning, it holds no position yet).
pub type Start = Option<i64>;

/// A projection's end of the feed.
pub struct Subscription {
    /// The process's member id, the same for every projection it runs.
    member: std::sync::Arc<str>,
    slot: usize,
    /// Counts this projection's ownership changes: a record handed over
    /// before the latest one is stale.
    epoch: u64,
    records: mpsc::Receiver<(u64, Incoming)>,
    control: mpsc::UnboundedSender<Own>,
}

impl Subscription {
    /// The member id this process leases partitions under: one per feed,
    /// so every projection of a process takes the same share and the
    /// process's one consumer reads only that share.
    pub fn member(&self) -> &str {
        &self.member
    }

    /// This projection owns `at`'s partitions from now on (and only those),
    /// each to be read from its offset.
    /// Records handed over before this call are never returned.
    pub fn own(&mut self, at: BTreeMap<i32, Start>) {
        self.epoch += 1;
        // The feed is gone only when the process shuts down.
        let _ = self.control.send(Own {
            slot: self.slot,
            epoch: self.epoch,
            at,
        });
    }

    /// The next record (`None`: the feed has stopped).
    pub async fn recv(&mut self) -> Option<Incoming> {
        loop {
            let (epoch, record) = self.records.recv().await?;
            if epoch == self.epoch {
                return Some(record);
            }
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.own(BTreeMap::new());
    }
}

/// "Slot `slot` owns exactly `at`" (its `epoch`-th change).
struct Own {
    slot: usize,
    epoch: u64,
    at: BTreeMap<i32, Start>,
}

/// Starts the feed for `N` projections; it runs until `shutdown` flips or
/// every subscription is dropped.
pub fn spawn<const N: usize>(
    settings: &KafkaSettings,
    shutdown: &watch::Receiver<bool>,
) -> ([Subscription; N], tokio::task::JoinHandle<()>) {
    let (control, control_rx) = mpsc::unbounded_channel();
    let member: std::sync::Arc<str> = uuid::Uuid::new_v4().to_string().into();
    let mut slots = Vec::with_capacity(N);
    let subscriptions = std::array::from_fn(|slot| {
        let (sender, records) = mpsc::channel(BATCH);
        slots.push(Slot {
            sender,
            epoch: 0,
            next: BTreeMap::new(),
        });
        Subscription {
            member: member.clone(),
            slot,
            epoch: 0,
            records,
            control: control.clone(),
        }
    });
    let state = State {
        slots,
        assigned: BTreeMap::new(),
        pending: None,
    };
    let task = tokio::spawn(run(settings.clone(), state, control_rx, shutdown.clone()));
    (subscriptions, task)
}

struct Slot {
    sender: mpsc::Sender<(u64, Incoming)>,
    /// The latest ownership change taken.
    epoch: u64,
    /// The partitions this projection owns, each with the next offset it
    /// takes (`None`: any).
    next: BTreeMap<i32, Start>,
}

/// What the feed knows: who wants what, and where the consumer reads.
struct State {
    slots: Vec<Slot>,
    /// The consumer's assignment, each partition with the offset of the
    /// next record it will deliver (`None`: from the beginning).
    assigned: BTreeMap<i32, Start>,
    /// An assignment that failed, to try again.
    pending: Option<BTreeMap<i32, Start>>,
}

/// True when a reader at `want` needs records before `at`.
fn earlier(want: Start, at: Start) -> bool {
    match (want, at) {
        (None, Some(_)) => true,
        (Some(w), Some(a)) => w < a,
        (_, None) => false,
    }
}

impl State {
    /// Takes slot `own.slot`'s new ownership; returns the assignment the
    /// consumer needs when it differs from the present one.
    fn own(&mut self, own: Own) -> Option<BTreeMap<i32, Start>> {
        let slot = self.slots.get_mut(own.slot)?;
        slot.next = own.at;
        slot.epoch = own.epoch;
        let mut wanted: BTreeMap<i32, Start> = BTreeMap::new();
        for (p, from) in self.slots.iter().flat_map(|s| s.next.iter()) {
            wanted
                .entry(*p)
                .and_modify(|w| {
                    if earlier(*from, *w) {
                        *w = *from;
                    }
                })
                .or_insert(*from);
        }
        let mut changed = !wanted.keys().eq(self.assigned.keys());
        let mut target = BTreeMap::new();
        for (p, want) in wanted {
            let start = match self.assigned.get(&p) {
                Some(at) if !earlier(want, *at) => *at,
                _ => {
                    changed = true;
                    want
                }
            };
            target.insert(p, start);
        }
        changed.then_some(target)
    }

    /// The slots that take `record` (their position moves past it).
    fn takers(&mut self, record: &Incoming) -> Vec<usize> {
        match self.assigned.get_mut(&record.partition) {
            Some(at) => *at = Some(record.offset + 1),
            // From before the present assignment.
            None => return Vec::new(),
        }
        let mut takers = Vec::new();
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if let Some(next) = slot.next.get_mut(&record.partition) {
                if next.is_none_or(|n| record.offset >= n) {
                    *next = Some(record.offset + 1);
                    takers.push(i);
                }
            }
        }
        takers
    }

    fn assign(&mut self, consumer: &StreamConsumer, topic: &str, target: BTreeMap<i32, Start>) {
        let mut list = TopicPartitionList::new();
        for (p, from) in &target {
            let offset = from.map_or(Offset::Beginning, Offset::Offset);
            if let Err(e) = list.add_partition_offset(topic, *p, offset) {
                tracing::warn!(error = %e, partition = p, "kafka feed: bad partition");
            }
        }
        match consumer.assign(&list) {
            Ok(()) => {
                tracing::info!(partitions = ?target.keys().collect::<Vec<_>>(), "kafka feed: consuming partitions");
                self.assigned = target;
                self.pending = None;
            }
            Err(e) => {
                tracing::warn!(error = %e, "kafka feed: cannot assign partitions; retrying");
                self.pending = Some(target);
            }
        }
    }
}

/// The consumer, once it can be created (`None`: shut down while waiting).
async fn connect(
    settings: &KafkaSettings,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<StreamConsumer> {
    loop {
        match settings.consumer_config("projectors").create() {
            Ok(c) => return Some(c),
            Err(e) => tracing::error!(error = %e, "cannot create the Kafka consumer"),
        }
        if super::pause(Duration::from_secs(2), shutdown).await {
            return None;
        }
    }
}

async fn run(
    settings: KafkaSettings,
    mut state: State,
    mut control: mpsc::UnboundedReceiver<Own>,
    mut shutdown: watch::Receiver<bool>,
) {
    let Some(consumer) = connect(&settings, &mut shutdown).await else {
        return;
    };
    let topic = settings.topic.as_str();
    loop {
        tokio::select! {
            _ = shutdown.changed() => if *shutdown.borrow() { return },
            own = control.recv() => {
                let Some(own) = own else { return };
                if let Some(target) = state.own(own) {
                    state.assign(&consumer, topic, target);
                }
            }
            () = tokio::time::sleep(Duration::from_secs(1)), if state.pending.is_some() => {
                if let Some(target) = state.pending.take() {
                    state.assign(&consumer, topic, target);
                }
            }
            m = consumer.recv(), if !state.assigned.is_empty() => match m {
                Ok(m) => {
                    let record = take(&m);
                    drop(m);
                    let takers = state.takers(&record);
                    deliver(&mut state, (&consumer, topic), &mut control, record, takers).await;
                }
                Err(e) => tracing::debug!(error = %e, "kafka consumer"),
            },
        }
    }
}

/// Hands `record` to each of `takers`. While a taker's channel is full,
/// ownership changes are still taken; one from the taker itself drops the
/// record for it (what it owns now says what it still needs, and the
/// consumer moves back when that is behind).
async fn deliver(
    state: &mut State,
    (consumer, topic): (&StreamConsumer, &str),
    control: &mut mpsc::UnboundedReceiver<Own>,
    record: Incoming,
    takers: Vec<usize>,
) {
    for slot in takers {
        let Some((sender, epoch)) = state.slots.get(slot).map(|s| (s.sender.clone(), s.epoch))
        else {
            continue;
        };
        loop {
            tokio::select! {
                permit = sender.reserve() => {
                    match permit {
                        Ok(permit) => permit.send((epoch, record.clone())),
                        // The projection has stopped: it owns nothing.
                        Err(_) => state.slots[slot].next.clear(),
                    }
                    break;
                }
                own = control.recv() => {
                    let Some(own) = own else { return };
                    let mine = own.slot == slot;
                    if let Some(target) = state.own(own) {
                        state.assign(consumer, topic, target);
                    }
                    if mine {
                        break;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(slots: usize) -> State {
        State {
            slots: (0..slots)
                .map(|_| Slot {
                    sender: mpsc::channel(1).0,
                    epoch: 0,
                    next: BTreeMap::new(),
                })
                .collect(),
            assigned: BTreeMap::new(),
            pending: None,
        }
    }

    fn own(slot: usize, at: &[(i32, Start)]) -> Own {
        Own {
            slot,
            epoch: 1,
            at: at.iter().copied().collect(),
        }
    }

    fn record(partition: i32, offset: i64) -> Incoming {
        Incoming {
            partition,
            offset,
            record: None,
        }
    }

    #[test]
    fn the_union_is_read_from_the_lowest_offset_needed() {
        let mut s = state(2);
        let target = s
            .own(own(0, &[(0, Some(10)), (1, Some(4))]))
            .expect("assign");
        assert_eq!(target, [(0, Some(10)), (1, Some(4))].into());
        s.assigned = target;
        let target = s.own(own(1, &[(0, Some(3)), (2, None)])).expect("assign");
        assert_eq!(target, [(0, Some(3)), (1, Some(4)), (2, None)].into());
        s.assigned = target;
        // Ahead of where the consumer reads: no seek.
        assert!(s.own(own(1, &[(0, Some(8)), (2, Some(0))])).is_none());
    }

    #[test]
    fn each_slot_takes_a_record_once_and_only_from_its_own_offset() {
        let mut s = state(2);
        let target = s.own(own(0, &[(0, Some(5))])).expect("assign");
        s.assigned = target;
        let target = s.own(own(1, &[(0, Some(3))])).expect("assign");
        s.assigned = target;
        assert_eq!(s.takers(&record(0, 3)), vec![1]);
        assert_eq!(s.takers(&record(0, 4)), vec![1]);
        assert_eq!(s.takers(&record(0, 5)), vec![0, 1]);
        // Not assigned: stale, nobody takes it.
        assert!(s.takers(&record(7, 0)).is_empty());
        // A slot asking for an offset behind the consumer moves it back;
        // the other slot does not take the records again.
        let target = s.own(own(0, &[(0, Some(2))])).expect("seek");
        assert_eq!(target, [(0, Some(2))].into());
        s.assigned = target;
        assert_eq!(s.takers(&record(0, 2)), vec![0]);
        assert_eq!(s.takers(&record(0, 6)), vec![0, 1]);
    }

    #[test]
    fn giving_partitions_up_shrinks_the_assignment() {
        let mut s = state(2);
        s.assigned = s
            .own(own(0, &[(0, Some(1)), (1, Some(1))]))
            .expect("assign");
        // Already read from there: nothing to change.
        assert!(s.own(own(1, &[(1, Some(1))])).is_none());
        let target = s.own(own(0, &[])).expect("shrink");
        assert_eq!(target, [(1, Some(1))].into());
    }
}
