//! Rebuild without downtime (invariant 7): fill a shadow generation from
//! position 0, catch up to the head, compare it with the live generation,
//! then swap the views to it in one transaction. Readers see the old
//! generation until the swap and the new one after, never a half-built one.
//! A rebuild killed at any point resumes its shadow generation when run
//! again (from its last checkpoint); the live generation is untouched until
//! the swap.
//!
//! The fill is a bulk job (`bulk`): the log is read once for every
//! projection being rebuilt, each folds in memory, and the rows reach the
//! fresh tables in one `COPY` per table (spilling early when the working
//! sets reach `--rebuild-memory`). What was appended meanwhile is folded on
//! the live path before the verification and the swap (`tail`).

mod budget;
mod bulk;
mod read;
mod tail;

use std::time::{Duration, Instant};

use eventlog::EventLog;
use serde::Serialize;

use readmodel::db::table_checksum;
use readmodel::{
    Analytics, CustomerView, OrderViewProjection, Projection, ProjectionError, ReadDb,
};

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
    /// Times the working set was written out early (the memory bound).
    pub spills: u32,
    pub diff: Vec<TableDiff>,
    pub swapped: bool,
}

/// How to rebuild.
pub struct Options<'a> {
    /// Refuse to swap when a same-version rebuild differs from the live one.
    pub verify: bool,
    /// Called after every batch.
    pub progress: &'a mut (dyn FnMut(Progress) + Send),
    /// Bytes the working sets and the batches in flight may take together:
    /// what the process's resident memory may grow by during the fill
    /// (Linux; elsewhere estimated). From ¾ of it on, the largest working
    /// set is written out.
    pub memory: usize,
    /// Events per read of the log.
    pub read_batch: u32,
    /// Keep untouched changed rows compressed whatever memory holds (for
    /// tests; otherwise from half the bound on).
    #[doc(hidden)]
    pub freeze_always: bool,
}

/// The default memory bound of a rebuild: 256 MiB.
pub const DEFAULT_MEMORY: usize = 256 << 20;

/// The least memory bound a rebuild takes (48 MiB): a quarter for the
/// batches in flight (smaller reads under a smaller bound), the rest for
/// working sets.
pub const MIN_MEMORY: usize = 48 << 20;

impl<'a> Options<'a> {
    /// `verify`, `progress` and the default memory bound.
    pub fn new(verify: bool, progress: &'a mut (dyn FnMut(Progress) + Send)) -> Self {
        Self {
            verify,
            progress,
            memory: DEFAULT_MEMORY,
            read_batch: bulk::READ_BATCH,
            freeze_always: false,
        }
    }

    /// The memory bound (below [`MIN_MEMORY`], every read batch is written
    /// out: slow, but bounded).
    #[must_use]
    pub fn memory(mut self, bytes: usize) -> Self {
        self.memory = bytes;
        self
    }

    /// Events per read of the log (at least 1).
    #[must_use]
    pub fn read_batch(mut self, events: u32) -> Self {
        self.read_batch = events.max(1);
        self
    }
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
    let mut all = rebuild_many(&[name], log, db, options).await?;
    match all.pop() {
        Some((_, result)) => result,
        None => Err(ProjectionError::Unknown(name.to_string()).into()),
    }
}

/// Calls `$body` with `$p` standing for the projection named `$name`.
macro_rules! by_name {
    ($name:expr, $p:ident => $body:expr) => {
        match $name {
            n if n == CustomerView::NAME => {
                type $p = CustomerView;
                $body
            }
            n if n == OrderViewProjection::NAME => {
                type $p = OrderViewProjection;
                $body
            }
            n if n == Analytics::NAME => {
                type $p = Analytics;
                $body
            }
            other => Err(RebuildError::from(ProjectionError::Unknown(
                other.to_string(),
            ))),
        }
    };
}

/// Rebuilds the projections `names` together: one bulk fill reads the log
/// once for all of them, then each catches up, is verified and swapped on
/// its own. Each projection's outcome, in order.
///
/// # Errors
/// An unknown name, or reading the log failed (nothing swapped).
pub async fn rebuild_many(
    names: &[&str],
    log: &EventLog,
    db: &ReadDb,
    mut options: Options<'_>,
) -> Result<Vec<(String, Result<Report, RebuildError>)>, RebuildError> {
    let started = Instant::now();
    let mut prepared = Vec::new();
    let mut targets = Vec::new();
    for name in names {
        let (p, target) = by_name!(*name, P => {
            let p = tail::prepare::<P>(db).await?;
            let target = bulk::Target {
                name: P::NAME,
                schema: P::SCHEMA,
                g: p.shadow.generation,
                cursor: p.shadow.cursor,
            };
            Ok((p, (target, bulk::spawn::<P> as bulk::Spawn)))
        })?;
        bulk::drop_indexes(db, &target.0).await?;
        prepared.push(p);
        targets.push(target);
    }
    let filled = bulk::fill(log, db, &targets, &mut options).await?;
    tracing::info!(
        seconds = started.elapsed().as_secs_f64(),
        "rebuild: bulk fill done"
    );
    // Each projection's indexes, catch-up, comparison and swap: together.
    let verify = options.verify;
    let finishes = prepared.into_iter().zip(&targets).zip(filled).map(
        |((p, (target, _)), filled)| async move {
            let report = async {
                let filled = filled?;
                bulk::build_indexes(db, target).await?;
                by_name!(target.name, P => {
                    tail::finish::<P>(log, db, p, filled, verify, started).await
                })
            };
            (target.name.to_string(), report.await)
        },
    );
    Ok(futures::future::join_all(finishes).await)
}

/// Rebuilds every projection together (see [`rebuild_many`]).
///
/// # Errors
/// As [`rebuild_many`].
pub async fn rebuild_all(
    log: &EventLog,
    db: &ReadDb,
    verify: bool,
) -> Result<Vec<(String, Result<Report, RebuildError>)>, RebuildError> {
    let mut quiet = |_p: Progress| {};
    let options = Options::new(verify, &mut quiet);
    rebuild_many(readmodel::NAMES, log, db, options).await
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
