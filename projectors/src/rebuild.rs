//! Rebuild without downtime (invariant 7): fill a shadow generation from
//! position 0, catch up to the head, compare it with the live generation,
//! then swap the views to it in one transaction. Readers see the old
//! generation until the swap and the new one after, never a half-built one.
//! A rebuild killed at any point resumes its shadow generation when run
//! again; the live generation is untouched until the swap.

use std::time::{Duration, Instant};

use eventlog::{EventLog, StoredEvent};
use serde::Serialize;

use readmodel::db::table_checksum;
use readmodel::{offsets, registry};
use readmodel::{
    Analytics, CustomerView, OrderViewProjection, Projection, ProjectionError, ReadDb,
};

use crate::engine::{self, BATCH};

/// Progress of a rebuild, for a progress bar.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Events folded so far by this run.
    pub events: u64,
    /// Position reached.
    pub position: i64,
    /// The store's head when the rebuild started.
    pub head: i64,
    pub elapsed: Duration,
}

impl Progress {
    /// Events per second so far.
    pub fn rate(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(1e-3)
    }

    /// Estimated time left (positions approximate event counts).
    pub fn eta(&self) -> Duration {
        let left = (self.head - self.position).max(0) as f64;
        let rate = self.rate();
        if rate > 0.0 {
            Duration::from_secs_f64(left / rate)
        } else {
            Duration::ZERO
        }
    }
}

/// One table compared between the live and the rebuilt generation.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TableDiff {
    pub table: String,
    pub live_rows: i64,
    pub rebuilt_rows: i64,
    pub live_checksum: String,
    pub rebuilt_checksum: String,
}

impl TableDiff {
    /// Whether both generations hold the same rows.
    pub fn same(&self) -> bool {
        self.live_rows == self.rebuilt_rows && self.live_checksum == self.rebuilt_checksum
    }
}

/// What a rebuild did.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub name: String,
    pub version: i64,
    pub generation: i64,
    pub previous_generation: Option<i64>,
    pub events: u64,
    pub seconds: f64,
    pub events_per_second: f64,
    pub diff: Vec<TableDiff>,
    pub swapped: bool,
}

/// How to rebuild.
pub struct Options<'a> {
    /// Refuse to swap when a same-version rebuild differs from the live one.
    pub verify: bool,
    /// Called after every batch.
    pub progress: &'a mut (dyn FnMut(Progress) + Send),
}

/// Why a rebuild did not swap.
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error(transparent)]
    Projection(#[from] ProjectionError),
    #[error("verification failed: the rebuilt {0} differs from the live one at the same version; not swapped")]
    Differs(String, Vec<TableDiff>),
}

impl From<sqlx::Error> for RebuildError {
    fn from(e: sqlx::Error) -> Self {
        Self::Projection(e.into())
    }
}

impl From<eventlog::StoreError> for RebuildError {
    fn from(e: eventlog::StoreError) -> Self {
        Self::Projection(e.into())
    }
}

/// Rebuilds projection `name`.
///
/// # Errors
/// [`RebuildError::Differs`] under `verify`; database errors; a poison event.
pub async fn rebuild(
    name: &str,
    log: &EventLog,
    db: &ReadDb,
    options: Options<'_>,
) -> Result<Report, RebuildError> {
    match name {
        n if n == CustomerView::NAME => rebuild_one::<CustomerView>(log, db, options).await,
        n if n == OrderViewProjection::NAME => {
            rebuild_one::<OrderViewProjection>(log, db, options).await
        }
        n if n == Analytics::NAME => rebuild_one::<Analytics>(log, db, options).await,
        other => Err(ProjectionError::Unknown(other.to_string()).into()),
    }
}

/// Rebuilds `P`; see the module docs.
///
/// # Errors
/// As [`rebuild`].
pub async fn rebuild_one<P: Projection>(
    log: &EventLog,
    db: &ReadDb,
    options: Options<'_>,
) -> Result<Report, RebuildError> {
    let live = engine::ensure_live::<P>(db).await?;
    let shadow = shadow::<P>(db).await?;
    let g = shadow.generation;
    let started = Instant::now();
    let head = log.head().await?;
    let mut cursor = shadow.cursor;
    let mut events = 0u64;
    let progress = options.progress;
    (cursor, events) =
        catch_up::<P>(log, db, g, cursor, events, head, started, &mut *progress).await?;
    // Verifying compares like with like: a live generation that fell behind
    // (no runner) is brought up to the shadow's position first.
    // (A Kafka-fed live generation is never folded from the store here.)
    if options.verify && !offsets::consumes_kafka(db, P::NAME, live.generation).await? {
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
        let unsettled =
            options.verify && kafka.is_some_and(|(low, high)| low != high || high != cursor);
        if (needed.is_some_and(|c| c > cursor) || unsettled) && attempts < 200 {
            drop(tx);
            (cursor, events) =
                catch_up::<P>(log, db, g, cursor, events, head, started, &mut *progress).await?;
            let pause = if kafka.is_some() { 50 } else { 5 };
            tokio::time::sleep(Duration::from_millis(pause)).await;
            continue;
        }
        let diff = compare::<P>(db, g).await?;
        if options.verify && live.version == P::VERSION && diff.iter().any(|d| !d.same()) {
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
        diff,
        swapped: true,
    })
}

/// The shadow generation: the one a killed rebuild left behind, resumed,
/// or a new one.
async fn shadow<P: Projection>(db: &ReadDb) -> Result<registry::GenerationState, RebuildError> {
    let generations = registry::generations(db, P::NAME).await?;
    if let Some(g) = generations.iter().find(|g| g.state == "rebuilding") {
        return Ok(g.clone());
    }
    let g = generations.iter().map(|g| g.generation).max().unwrap_or(0) + 1;
    let mut tx = db.begin().await?;
    registry::create_generation(&mut tx, P::NAME, P::VERSION, P::SCHEMA, g, "rebuilding").await?;
    tx.commit().await?;
    Ok(registry::generation(db, P::NAME, g)
        .await?
        .ok_or_else(|| ProjectionError::Unknown(P::NAME.into()))?)
}

/// Drops the generation a swap retired.
async fn retire<P: Projection>(db: &ReadDb, old: Option<i64>) {
    if let Some(old) = old {
        if let Err(e) = registry::drop_generation(db, P::NAME, P::SCHEMA, old).await {
            tracing::warn!(error = %e, generation = old, "could not drop the retired generation");
        }
    }
}

/// Folds into generation `g` until the log has nothing newer.
#[allow(clippy::too_many_arguments)]
async fn catch_up<P: Projection>(
    log: &EventLog,
    db: &ReadDb,
    g: i64,
    mut cursor: eventlog::Cursor,
    mut events: u64,
    head: i64,
    started: Instant,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<(eventlog::Cursor, u64), RebuildError> {
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
    target: eventlog::Cursor,
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
        let (live_rows, live_checksum) = table_checksum(db.pool(), table, order).await?;
        let (rebuilt_rows, rebuilt_checksum) =
            table_checksum(db.pool(), &format!("{table}_g{g}"), order).await?;
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

/// Rebuilds every projection concurrently (each reads the log itself), the
/// fastest way to rebuild everything on a multi-core machine.
///
/// # Errors
/// The first failing rebuild's error.
pub async fn rebuild_all(
    log: &EventLog,
    db: &ReadDb,
    verify: bool,
) -> Vec<(String, Result<Report, RebuildError>)> {
    let mut quiet = [|_p: Progress| {}, |_p: Progress| {}, |_p: Progress| {}];
    let [a, b, c] = &mut quiet;
    let (ra, rb, rc) = tokio::join!(
        rebuild_one::<CustomerView>(
            log,
            db,
            Options {
                verify,
                progress: a
            }
        ),
        rebuild_one::<OrderViewProjection>(
            log,
            db,
            Options {
                verify,
                progress: b
            }
        ),
        rebuild_one::<Analytics>(
            log,
            db,
            Options {
                verify,
                progress: c
            }
        ),
    );
    vec![
        (CustomerView::NAME.to_string(), ra),
        (OrderViewProjection::NAME.to_string(), rb),
        (Analytics::NAME.to_string(), rc),
    ]
}

/// Checksums of every table of `name`'s live generation (for tests and audits).
///
/// # Errors
/// Database errors; [`ProjectionError::Unknown`].
pub async fn live_checksums(
    name: &str,
    db: &ReadDb,
) -> Result<Vec<(String, i64, String)>, ProjectionError> {
    let order: &[(&str, &str)] = match name {
        n if n == CustomerView::NAME => CustomerView::CHECKSUM_ORDER,
        n if n == OrderViewProjection::NAME => OrderViewProjection::CHECKSUM_ORDER,
        n if n == Analytics::NAME => Analytics::CHECKSUM_ORDER,
        other => return Err(ProjectionError::Unknown(other.to_string())),
    };
    let mut out = Vec::new();
    for (table, by) in order {
        let (rows, sum) = table_checksum(db.pool(), table, by).await?;
        out.push(((*table).to_string(), rows, sum));
    }
    Ok(out)
}
