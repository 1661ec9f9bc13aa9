//! One batch of records applied to a projection's live generation: rows,
//! each partition's next offset and cursor, and the generation's
//! checkpoint in one transaction (see the module docs of `source`).

use std::collections::BTreeMap;

use eventlog::{Cursor, StoredEvent};
use projectors::engine::fold_into;
use readmodel::offsets::{self, TopicOf};
use readmodel::{registry, Projection, ProjectionError, ReadDb, Tx};

use super::{Incoming, Outcome};
use crate::kafka::Record;

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
    let postgres = db.is_postgres();
    let mut tx = db.begin_batch().await?;
    let live = offsets::lock_live(&mut tx, P::NAME, postgres).await?;
    let g = live.generation;
    let mut outcome = Outcome::default();
    if live.failed {
        outcome.stopped = true;
        return Ok((outcome, g));
    }
    let mut by_partition: BTreeMap<i32, Vec<&Incoming>> = BTreeMap::new();
    for r in batch {
        by_partition.entry(r.partition).or_default().push(r);
    }
    let at = TopicOf {
        name: P::NAME,
        generation: g,
        topic,
    };
    let touched = by_partition.keys().copied().collect();
    let positions = offsets::lock_partitions(&mut tx, at, &touched, live.cursor, postgres).await?;
    let mut fresh: Vec<&StoredEvent> = Vec::new();
    let mut moved = BTreeMap::new();
    for (partition, records) in &by_partition {
        let Some(position) = positions.get(partition) else {
            continue;
        };
        if let Some(to) = take_new(records, *position, &mut outcome, &mut fresh) {
            moved.insert(*partition, (to.0 + 1, to.1));
        }
    }
    offsets::store_partitions(&mut tx, at, &moved).await?;
    // Partitions are independent streams; across them the log order is the
    // natural one (within each, it is already the commit order).
    fresh.sort_by_key(|e| e.cursor());
    commit::<P>(db, tx, (g, topic, partitions), &fresh).await?;
    outcome.applied = fresh.len();
    outcome.oldest = fresh.iter().map(|e| e.recorded_at).min();
    Ok((outcome, g))
}

/// Sorts one partition's records against its stored position: new events
/// go to `fresh`, what was applied before counts as duplicates, a gap asks
/// for a seek. Returns the partition's last offset and cursor when it moved.
fn take_new<'a>(
    records: &[&'a Incoming],
    position: offsets::PartitionPosition,
    outcome: &mut Outcome,
    fresh: &mut Vec<&'a StoredEvent>,
) -> Option<(i64, Cursor)> {
    let next = position.next_offset;
    let records: Vec<&&Incoming> = records
        .iter()
        .filter(|r| next.is_none_or(|n| r.offset >= n))
        .collect();
    let Some(first) = records.first() else {
        // All already applied (a redelivery after a rebalance or a
        // crash between the database commit and the offset commit).
        outcome.duplicates += records.len();
        return None;
    };
    if let Some(n) = next.filter(|n| first.offset != *n) {
        // A gap between the database and the consumer: read from where
        // the database says.
        outcome.seeks.push((first.partition, n));
        return None;
    }
    let mut top = position.cursor;
    let mut last_offset = first.offset;
    for r in &records {
        if r.offset != last_offset && r.offset != last_offset + 1 {
            // Offsets are dense within a batch unless the broker
            // compacted; never skip silently.
            tracing::debug!(
                partition = r.partition,
                offset = r.offset,
                "offset jump inside a batch"
            );
        }
        last_offset = r.offset;
        match r.record.as_deref() {
            Some(Record::Event(e)) if e.cursor() > top => {
                top = e.cursor();
                fresh.push(e);
            }
            Some(Record::Event(_)) => outcome.duplicates += 1,
            Some(Record::Watermark(c)) => top = top.max(*c),
            None => {}
        }
    }
    Some((last_offset, top))
}

/// Folds `fresh` into generation `g`, advances the generation's checkpoint
/// to the partitions' watermark, and commits.
async fn commit<P: Projection>(
    db: &ReadDb,
    mut tx: Tx<'static>,
    (g, topic, partitions): (i64, &str, Option<i32>),
    fresh: &[&StoredEvent],
) -> Result<(), ProjectionError> {
    let relevant: Vec<&StoredEvent> = fresh
        .iter()
        .copied()
        .filter(|e| P::handles(&e.event_type))
        .collect();
    let spans = projectors::observe::event_spans::<P>(relevant.iter().copied());
    if let Err((i, e)) = fold_into::<P>(db, &mut tx, g, &relevant).await? {
        return Err(ProjectionError::Poison {
            position: relevant[i].position,
            message: e.0,
        });
    }
    let postgres = db.is_postgres();
    let last_at = fresh
        .iter()
        .map(|e| e.recorded_at)
        .max()
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string());
    let applied = relevant.len() as i64;
    match partitions {
        Some(n) => {
            // The checkpoint comes with the watermark's lock: one
            // statement fewer per batch.
            let (current, watermark) =
                offsets::watermark(&mut tx, (P::NAME, g), topic, n, postgres).await?;
            registry::advance_kafka(
                &mut tx,
                (P::NAME, g, current),
                watermark,
                applied,
                last_at.as_deref(),
            )
            .await?;
        }
        None => {
            registry::progress(
                &mut tx,
                P::NAME,
                g,
                None,
                applied,
                last_at.as_deref(),
                postgres,
            )
            .await?;
        }
    }
    tx.commit().await?;
    drop(spans);
    Ok(())
}
