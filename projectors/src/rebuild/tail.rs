//! A rebuild's two ends around the bulk fill: the shadow generation it
//! fills (the one a killed rebuild left behind, or a new one), and the
//! finish: catch up to the head on the live path, verify, swap.

use std::time::{Duration, Instant};

use eventlog::{Cursor, EventLog, StoredEvent};

use readmodel::db::table_checksum;
use readmodel::registry::{self, GenerationState};
use readmodel::{offsets, Projection, ProjectionError, ReadDb};

use super::{Progress, RebuildError, Report, TableDiff};
use crate::engine::{self, BATCH};

/// A projection's live generation and the shadow a rebuild fills.
#[derive(Debug, Clone)]
pub(super) struct Prepared {
    pub live: GenerationState,
    pub shadow: GenerationState,
}

/// Where the fill left the shadow.
#[derive(Debug, Clone, Copy)]
pub(super) struct Filled {
    pub cursor: Cursor,
    /// Events folded (those after the shadow's checkpoint).
    pub events: u64,
    /// Times the working set was written out before the end (memory bound).
    pub spills: u32,
}

/// `P`'s live generation (created if it has none) and its shadow.
pub(super) async fn prepare<P: Projection>(db: &ReadDb) -> Result<Prepared, RebuildError> {
    let live = engine::ensure_live::<P>(db).await?;
    let generations = registry::generations(db, P::NAME).await?;
    if let Some(g) = generations.iter().find(|g| g.state == "rebuilding") {
        return Ok(Prepared {
            live,
            shadow: g.clone(),
        });
    }
    let g = generations.iter().map(|g| g.generation).max().unwrap_or(0) + 1;
    let mut tx = db.begin().await?;
    registry::create_generation(&mut tx, P::NAME, P::VERSION, P::SCHEMA, g, "rebuilding").await?;
    tx.commit().await?;
    let shadow = registry::generation(db, P::NAME, g)
        .await?
        .ok_or_else(|| ProjectionError::Unknown(P::NAME.into()))?;
    Ok(Prepared { live, shadow })
}

/// Brings the filled shadow to the head on the live path, compares it with
/// the live generation, and swaps the views to it.
pub(super) async fn finish<P: Projection>(
    log: &EventLog,
    db: &ReadDb,
    prepared: Prepared,
    filled: Filled,
    verify: bool,
    started: Instant,
) -> Result<Report, RebuildError> {
    let Prepared { live, shadow } = prepared;
    let g = shadow.generation;
    let head = log.head().await?;
    let mut quiet = |_p: Progress| {};
    let (mut cursor, mut events) = (filled.cursor, filled.events);
    (cursor, events) = catch_up::<P>(log, db, g, cursor, events, head, started, &mut quiet).await?;
    // Verifying compares like with like: a live generation that fell behind
    // (no runner) is brought up to the shadow's position first.
    // (A Kafka-fed live generation is never folded from the store here.)
    if verify && !offsets::consumes_kafka(db, P::NAME, live.generation).await? {
        catch_up_live::<P>(log, db, live.generation, cursor).await?;
    }
    // Swap only when the shadow has seen at least what the live generation
    // has, so readers never step back in time. Holding the live row while
    // comparing and swapping keeps the live runner from advancing meanwhile.
    let mut attempts = 0;
    let (previous, diff) = loop {
        attempts += 1;
        let mut tx = db.begin().await?;
        // Kafka consumers hold this row shared for each batch.
        registry::lock_live_row(&mut tx, P::NAME, db.is_postgres()).await?;
        let live_cursor = registry::lock_cursor(&mut tx, P::NAME, live.generation).await?;
        // Over Kafka, some partitions are ahead of the generation's
        // checkpoint (the lowest of them): the shadow must reach the highest.
        let kafka = offsets::cursor_range(&mut tx, P::NAME, live.generation).await?;
        let needed = live_cursor.max(kafka.map(|(_, high)| high));
        // Verifying against a Kafka-fed generation compares like with like
        // only when every partition stands where the shadow does.
        let unsettled = verify && kafka.is_some_and(|(low, high)| low != high || high != cursor);
        if (needed.is_some_and(|c| c > cursor) || unsettled) && attempts < 200 {
            drop(tx);
            (cursor, events) =
                catch_up::<P>(log, db, g, cursor, events, head, started, &mut quiet).await?;
            let pause = if kafka.is_some() { 50 } else { 5 };
            tokio::time::sleep(Duration::from_millis(pause)).await;
            continue;
        }
        tracing::info!(
            projection = P::NAME,
            seconds = started.elapsed().as_secs_f64(),
            "rebuild: caught up"
        );
        let diff = compare::<P>(db, g).await?;
        tracing::info!(
            projection = P::NAME,
            seconds = started.elapsed().as_secs_f64(),
            "rebuild: compared"
        );
        if verify && live.version == P::VERSION && diff.iter().any(|d| !d.same()) {
            drop(tx);
            registry::drop_generation(db, P::NAME, P::SCHEMA, g).await?;
            return Err(RebuildError::Differs(P::NAME.into(), diff));
        }
        let previous = registry::make_live(&mut tx, P::NAME, P::SCHEMA, g).await?;
        offsets::hand_over_offsets(&mut tx, P::NAME, live.generation, g, cursor).await?;
        tx.commit().await?;
        break (previous, diff);
    };
    let seconds = started.elapsed().as_secs_f64();
    retire::<P>(db, previous.filter(|old| *old != g)).await;
    Ok(Report {
        name: P::NAME.into(),
        version: P::VERSION,
        generation: g,
        previous_generation: previous,
        events,
        seconds,
        events_per_second: events as f64 / seconds.max(1e-6),
        spills: filled.spills,
        diff,
        swapped: true,
    })
}

/// Drops the generation a swap retired.
async fn retire<P: Projection>(db: &ReadDb, old: Option<i64>) {
    if let Some(old) = old {
        if let Err(e) = registry::drop_generation(db, P::NAME, P::SCHEMA, old).await {
            tracing::warn!(error = %e, generation = old, "could not drop the retired generation");
        }
    }
}

/// Folds into generation `g` on the live path (batch by batch, each with
/// its checkpoint) until the log has nothing newer.
#[allow(clippy::too_many_arguments)]
pub(super) async fn catch_up<P: Projection>(
    log: &EventLog,
    db: &ReadDb,
    g: i64,
    mut cursor: Cursor,
    mut events: u64,
    head: i64,
    started: Instant,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<(Cursor, u64), RebuildError> {
    let mut batch = log.read_from(cursor, BATCH).await?;
    loop {
        let Some(last) = batch.last().map(StoredEvent::cursor) else {
            return Ok((cursor, events));
        };
        // Read the next batch (store pool, its own task) while this one is
        // folded and written (read-model pool): the two overlap.
        let reader = log.clone();
        let ahead = tokio::spawn(async move { reader.read_from(last, BATCH).await });
        let applied = match engine::apply_batch::<P>(db, g, cursor, &batch).await {
            Ok(applied) => applied,
            Err(e) => {
                ahead.abort();
                return Err(e.into());
            }
        };
        batch = match ahead.await {
            Ok(read) => read?,
            // The reading task panicked: so does this one.
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        };
        cursor = applied.cursor;
        events += applied.events as u64;
        progress(Progress {
            events,
            position: cursor.position,
            head,
            elapsed: started.elapsed(),
        });
    }
}

/// Folds the live generation up to at least `target` (as any runner would;
/// the optimistic checkpoint keeps concurrent runners safe).
async fn catch_up_live<P: Projection>(
    log: &EventLog,
    db: &ReadDb,
    g: i64,
    target: Cursor,
) -> Result<(), RebuildError> {
    for _ in 0..10_000 {
        let Some(state) = registry::generation(db, P::NAME, g).await? else {
            return Ok(());
        };
        if state.cursor >= target || state.state != "live" {
            return Ok(());
        }
        let batch = log.read_from(state.cursor, BATCH).await?;
        if batch.is_empty() {
            return Ok(());
        }
        match engine::apply_batch::<P>(db, g, state.cursor, &batch).await {
            Ok(_) | Err(ProjectionError::CheckpointMoved) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Row counts and checksums of every table, live (through the views) vs generation `g`.
async fn compare<P: Projection>(db: &ReadDb, g: i64) -> Result<Vec<TableDiff>, ProjectionError> {
    let mut out = Vec::new();
    for (table, order) in P::CHECKSUM_ORDER {
        // Both sides at once (the database computes them); one table at a
        // time, so that rebuilds side by side stay within the pool.
        let rebuilt = format!("{table}_g{g}");
        let ((live_rows, live_checksum), (rebuilt_rows, rebuilt_checksum)) = futures::try_join!(
            table_checksum(db.pool(), table, order),
            table_checksum(db.pool(), &rebuilt, order),
        )?;
        out.push(TableDiff {
            table: (*table).to_string(),
            live_rows,
            rebuilt_rows,
            live_checksum,
            rebuilt_checksum,
        });
    }
    Ok(out)
}
