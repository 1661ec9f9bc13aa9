//! The bulk fill: one reader streams the log in large batches to one fold
//! task per projection (in parallel with each other and with the reading);
//! each keeps its working set in memory across batches, keyed by row, and
//! writes it out once at the end (PostgreSQL: binary `COPY` into the fresh
//! tables, secondary indexes built after the load). When the working sets
//! together reach the memory bound, the largest is written out (a spill)
//! with its checkpoint and starts again from the table.

use std::sync::Arc;
use std::time::Instant;

use eventlog::{Cursor, EventLog, StoredEvent};
use readmodel::db::bulk::upsert_all;
use readmodel::db::copy::copy_table;
use readmodel::registry::{self, Advance};
use readmodel::{Projection, ProjectionError, ReadDb, WorkingSet};
use sqlx::{Connection, PgConnection};
use tokio::sync::mpsc;

use super::budget::{Budget, Step};
use super::tail::Filled;
use super::{Options, RebuildError};

/// Events per read of the log.
pub(super) const READ_BATCH: u32 = 4096;
/// Read batches alive at once (being read, decoded, queued, folded), per
/// estimate.
const IN_FLIGHT: usize = super::read::DECODING + 4;
/// What one read event takes in memory, roughly (envelope, payload, typed).
const EVENT_BYTES: usize = 2048;
/// How long a task over the bound waits before it asks again.
const WAIT: std::time::Duration = std::time::Duration::from_millis(5);

/// Memory the batches in flight take, reserved out of the bound.
pub(super) const fn reserve(read_batch: u32) -> usize {
    IN_FLIGHT * read_batch as usize * EVENT_BYTES
}

/// The fewest events per read a bound makes the fill take.
const LEAST_READ_BATCH: u32 = 256;

/// Events per read under a bound of `memory` bytes: `asked`, or fewer so
/// that the batches in flight take at most a quarter of the bound (at
/// the default 256 MiB, the full 4,096; at 64 MiB, 1,365).
pub(super) fn read_batch_for(memory: usize, asked: u32) -> u32 {
    let fits = memory / 4 / (IN_FLIGHT * EVENT_BYTES);
    u32::try_from(fits)
        .unwrap_or(u32::MAX)
        .clamp(LEAST_READ_BATCH, asked.max(LEAST_READ_BATCH))
        .min(asked)
}

/// A projection the fill folds.
#[derive(Debug, Clone)]
pub(super) struct Target {
    pub name: &'static str,
    pub schema: &'static str,
    pub g: i64,
    /// The shadow's checkpoint.
    pub cursor: Cursor,
}

/// Fills every target's shadow from its checkpoint up to what the log
/// holds now, with at most `memory` bytes of working sets and batches;
/// each target's outcome.
///
/// # Errors
/// Reading the log failed.
pub(super) async fn fill(
    log: &EventLog,
    db: &ReadDb,
    targets: &[(Target, Spawn)],
    options: &mut Options<'_>,
) -> Result<Vec<Result<Filled, RebuildError>>, RebuildError> {
    let started = Instant::now();
    options.read_batch = read_batch_for(options.memory, options.read_batch);
    let budget = Budget::new(options.memory, targets.len(), options.read_batch);
    let budget = Arc::new(budget.short_always(options.freeze_always));
    let mut senders = Vec::new();
    let mut tasks = Vec::new();
    for (slot, (target, spawn)) in targets.iter().enumerate() {
        let (tx, rx) = mpsc::channel(2);
        senders.push(tx);
        let work = Work {
            db: db.clone(),
            target: target.clone(),
            budget: budget.clone(),
            slot,
        };
        tasks.push(spawn(work, rx));
    }
    let from = targets
        .iter()
        .map(|(t, _)| t.cursor)
        .min()
        .unwrap_or(Cursor::START);
    let read = super::read::stream(log, from, &senders, started, options).await;
    drop(senders);
    let mut out = Vec::new();
    for task in tasks {
        out.push(match task.await {
            Ok(filled) => filled,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        });
    }
    read?;
    Ok(out)
}

/// What a fold task is given.
pub(super) struct Work {
    db: ReadDb,
    target: Target,
    budget: Arc<Budget>,
    slot: usize,
}

/// Starts a projection's fold task.
pub(super) type Spawn = fn(
    Work,
    mpsc::Receiver<Arc<Vec<StoredEvent>>>,
) -> tokio::task::JoinHandle<Result<Filled, RebuildError>>;

/// [`Spawn`] for `P`.
pub(super) fn spawn<P: Projection>(
    work: Work,
    rx: mpsc::Receiver<Arc<Vec<StoredEvent>>>,
) -> tokio::task::JoinHandle<Result<Filled, RebuildError>> {
    tokio::spawn(fold::<P>(work, rx))
}

/// Where a fold task's working set goes.
enum Writer {
    /// PostgreSQL: a connection of its own, for `COPY`.
    Direct(PgConnection),
    /// SQLite: upserts through the pool.
    Pool,
}

/// A fold task: folds every batch into a working set kept in memory and
/// writes it out at the end or when the budget says so. On a poison event
/// it stops at its last write-out: the live path folds up to the event
/// again and reports it as usual.
async fn fold<P: Projection>(
    work: Work,
    mut rx: mpsc::Receiver<Arc<Vec<StoredEvent>>>,
) -> Result<Filled, RebuildError> {
    let Work {
        db,
        target,
        budget,
        slot,
    } = work;
    let mut out = Output::<P::State>::open(&db, P::NAME, &target).await?;
    let mut written = Filled {
        cursor: target.cursor,
        events: 0,
        spills: 0,
    };
    let (mut cursor, mut events, mut applied) = (target.cursor, 0u64, 0i64);
    let mut last_at = String::new();
    let mut reads = super::read::Reads::open(&db).await?;
    while let Some(batch) = rx.recv().await {
        let fresh: Vec<&StoredEvent> = batch.iter().filter(|e| e.cursor() > cursor).collect();
        let Some(last) = fresh.last() else { continue };
        let relevant: Vec<&StoredEvent> = fresh
            .iter()
            .copied()
            .filter(|e| P::handles(&e.event_type))
            .collect();
        if !relevant.is_empty() {
            let folded = reads.fold::<P>(target.g, &relevant, &mut out.state).await?;
            if folded.is_err() {
                budget.spilled(slot);
                return Ok(written);
            }
        }
        (cursor, events) = (last.cursor(), events + fresh.len() as u64);
        applied += relevant.len() as i64;
        let short = budget.short();
        for table in out.state.tables() {
            table.tick(short);
        }
        last_at = last
            .recorded_at
            .format("%Y-%m-%dT%H:%M:%S%.6fZ")
            .to_string();
        let bytes = out
            .state
            .tables()
            .iter_mut()
            .map(|t| t.estimated_bytes())
            .sum();
        let mut step = budget.update(slot, bytes);
        while step == Step::Wait {
            // Over the bound: the others' write-outs free memory first.
            tokio::time::sleep(WAIT).await;
            step = budget.update(slot, bytes);
        }
        if step == Step::Spill {
            let spilling = Instant::now();
            let wrote = out
                .write(written.cursor, cursor, applied, &last_at, budget.retained())
                .await;
            budget.spilled(slot);
            wrote?;
            tracing::info!(
                projection = P::NAME,
                mib = bytes >> 20,
                seconds = spilling.elapsed().as_secs_f64(),
                "rebuild: working set written out early (--rebuild-memory)"
            );
            applied = 0;
            let spills = written.spills + 1;
            written = Filled {
                cursor,
                events,
                spills,
            };
        }
    }
    drop(reads);
    tracing::info!(projection = P::NAME, "rebuild: folded; writing out");
    if cursor != written.cursor {
        out.write(written.cursor, cursor, applied, &last_at, 0)
            .await?;
    }
    budget.spilled(slot);
    tracing::info!(projection = P::NAME, "rebuild: written out");
    if let Writer::Direct(conn) = out.writer {
        let _ = conn.close().await;
    }
    Ok(Filled {
        cursor,
        events,
        spills: written.spills,
    })
}

/// A fold task's working set and where it is written.
struct Output<S> {
    writer: Writer,
    db: ReadDb,
    state: S,
    name: &'static str,
    g: i64,
}

impl<S: WorkingSet> Output<S> {
    /// An empty working set kept across batches, for `target`'s tables.
    async fn open(
        db: &ReadDb,
        name: &'static str,
        target: &Target,
    ) -> Result<Self, ProjectionError> {
        let writer = match db.connect_direct().await? {
            Some(conn) => Writer::Direct(conn),
            None => Writer::Pool,
        };
        let stored = target.cursor != Cursor::START;
        let mut state = S::default();
        keep(&mut state, stored);
        Ok(Self {
            writer,
            db: db.clone(),
            state,
            name,
            g: target.g,
        })
    }

    /// Writes the working set out with the checkpoint's move from `from`
    /// to `to` (`applied` events, the last recorded at `last_at`);
    /// `retain`: the bytes of the most recently changed rows a spill keeps.
    async fn write(
        &mut self,
        from: Cursor,
        to: Cursor,
        applied: i64,
        last_at: &str,
        retain: usize,
    ) -> Result<(), ProjectionError> {
        let advance = Advance {
            name: self.name,
            g: self.g,
            from,
            to,
            applied,
            last_event_at: last_at,
        };
        write_out(&mut self.writer, &self.db, &mut self.state, advance, retain).await?;
        for table in self.state.tables() {
            table.written();
        }
        Ok(())
    }
}

/// Keeps `state`'s rows across batches from now on.
fn keep<S: WorkingSet>(state: &mut S, stored: bool) {
    for table in state.tables() {
        table.keep(stored);
    }
}

/// Writes every changed row of `state` and moves the checkpoint, in one
/// transaction.
async fn write_out<S: WorkingSet>(
    writer: &mut Writer,
    db: &ReadDb,
    state: &mut S,
    advance: Advance<'_>,
    retain: usize,
) -> Result<(), ProjectionError> {
    let g = advance.g;
    match writer {
        Writer::Direct(conn) => {
            let mut tx = conn.begin().await?;
            // Atomic as every batch; see `ReadDb::begin_batch`.
            sqlx::query("SET LOCAL synchronous_commit = off")
                .execute(&mut *tx)
                .await?;
            for table in state.tables() {
                if table.is_dirty() {
                    copy_table(&mut tx, g, table, retain).await?;
                }
            }
            registry::advance_direct(&mut tx, advance).await?;
            tx.commit().await?;
        }
        Writer::Pool => {
            let mut tx = db.begin_batch().await?;
            for table in state.tables() {
                if table.is_dirty() {
                    upsert_all(&mut tx, g, table, retain).await?;
                }
            }
            let a = advance;
            registry::advance(&mut tx, a.name, g, a.from, a.to, a.applied, a.last_event_at).await?;
            tx.commit().await?;
        }
    }
    Ok(())
}

/// Drops `target`'s secondary indexes before the load.
pub(super) async fn drop_indexes(db: &ReadDb, target: &Target) -> Result<(), ProjectionError> {
    for (name, _) in registry::indexes(target.schema, target.g) {
        sqlx::query(&format!("DROP INDEX IF EXISTS {name}"))
            .execute(db.pool())
            .await?;
    }
    Ok(())
}

/// Builds `target`'s secondary indexes after the load: on PostgreSQL side
/// by side (each on a connection of its own, as the pool allows), on
/// SQLite (one writer) one after another.
pub(super) async fn build_indexes(db: &ReadDb, target: &Target) -> Result<(), ProjectionError> {
    use futures::{StreamExt, TryStreamExt};
    let creates = registry::indexes(target.schema, target.g);
    let side_by_side = if db.is_postgres() { creates.len() } else { 1 };
    futures::stream::iter(creates)
        .map(|(_, create)| async move {
            sqlx::query(&create).execute(db.pool()).await?;
            Ok::<_, ProjectionError>(())
        })
        .buffer_unordered(side_by_side.max(1))
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smaller_bounds_read_smaller_batches() {
        const MIB: usize = 1 << 20;
        assert_eq!(read_batch_for(256 * MIB, READ_BATCH), READ_BATCH);
        assert_eq!(read_batch_for(64 * MIB, READ_BATCH), 1365);
        assert!(reserve(read_batch_for(64 * MIB, READ_BATCH)) <= 16 * MIB);
        assert_eq!(read_batch_for(super::super::MIN_MEMORY, READ_BATCH), 1024);
        // Never below the least, never above what was asked.
        assert_eq!(read_batch_for(MIB, READ_BATCH), LEAST_READ_BATCH);
        assert_eq!(read_batch_for(MIB, 16), 16);
    }
}
