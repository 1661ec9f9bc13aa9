//! The projection role and its operator commands: running the tailers,
//! `projections status`, `projections rebuild`, and `/metrics`.

use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use eventlog::{Database, EventLog};
use projectors::rebuild::{self, Options, Progress};
use readmodel::{ReadDb, Wake};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cli::ProjectionsAction;
use crate::config::{DataDir, StoreArgs};

/// Running projections: stop them with [`Running::stop`].
pub struct Running {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stops the tail loops after their current batch.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }

    /// The stop signal and the tasks that end after it.
    pub fn into_parts(self) -> (watch::Sender<bool>, Vec<JoinHandle<()>>) {
        (self.stop, self.tasks)
    }
}

/// Opens the read-model pool and makes sure every projection has a live generation.
///
/// # Errors
/// When the database cannot be reached.
pub async fn open(data: &DataDir, store: &StoreArgs) -> anyhow::Result<ReadDb> {
    let db = ReadDb::connect_with(
        &store.url(data),
        store.db_max_connections.min(8),
        store.db_acquire_timeout,
    )
    .await
    .context("cannot open the read-model database")?;
    projectors::ensure_all(&db)
        .await
        .context("cannot create the read models")?;
    Ok(db)
}

/// Starts every projection's tail loop, woken by `wake` (fed by appends in
/// this process and, on Postgres, by the platform's `LISTEN`); signals
/// `commits` after commits.
/// `linger`: see [`projectors::engine::Pace`].
pub fn start(
    store: &Database,
    db: &ReadDb,
    (wake, commits): (&Wake, &Wake),
    linger: Duration,
) -> Running {
    let (stop, stopped) = watch::channel(false);
    let poll = if db.is_postgres() {
        Duration::from_secs(1)
    } else {
        Duration::from_millis(250)
    };
    let pace = projectors::engine::Pace { poll, linger };
    let tasks = projectors::spawn_all(
        &EventLog::new(store.clone()),
        db,
        wake,
        commits,
        pace,
        &stopped,
    );
    Running { stop, tasks }
}

/// Starts every projection's Kafka consumer (distributed profile);
/// signals `commits` after commits.
pub fn start_kafka(kafka: &relay::kafka::KafkaSettings, db: &ReadDb, commits: &Wake) -> Running {
    let (stop, stopped) = watch::channel(false);
    let tasks = relay::spawn_all(kafka, db, commits, &stopped);
    Running { stop, tasks }
}

#[derive(Clone)]
struct MetricsState {
    store: Database,
    log: EventLog,
    db: ReadDb,
}

/// `GET /metrics` (Prometheus text): the registry every part of the process
/// records into, plus projector lag and pool saturation read at scrape time.
pub fn metrics_router(store: &Database, db: &ReadDb) -> Router {
    let state = MetricsState {
        store: store.clone(),
        log: EventLog::new(store.clone()),
        db: db.clone(),
    };
    Router::new()
        .route("/metrics", get(metrics_handler))
        .with_state(state)
}

async fn metrics_handler(State(s): State<MetricsState>) -> Response {
    use telemetry::metrics::gauge;
    match readmodel::status::all(&s.log, &s.db).await {
        Ok(status) => {
            for p in status {
                let l = [("projection", p.name.as_str())];
                gauge(
                    "projector_lag_events",
                    "Events the live projection has not applied yet.",
                    &l,
                    p.lag_events as f64,
                );
                gauge(
                    "projector_lag_seconds",
                    "Recorded-time lag of the live projection.",
                    &l,
                    p.lag_seconds,
                );
                gauge(
                    "projector_position",
                    "Global position the live projection has applied.",
                    &l,
                    p.position as f64,
                );
                gauge(
                    "projector_failed",
                    "1 when the projection stopped on a poison event.",
                    &l,
                    f64::from(u8::from(p.state == "failed")),
                );
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot read projection status for metrics"),
    }
    let help = "Connections of each pool, idle or in use.";
    let pools = [
        ("event_store", s.store.pool_stats()),
        ("read_models", (s.db.pool().size(), s.db.pool().num_idle())),
    ];
    for (pool, (size, idle)) in pools {
        for (state, n) in [
            ("idle", idle as f64),
            ("in_use", f64::from(size) - idle as f64),
        ] {
            gauge(
                "db_pool_connections",
                help,
                &[("pool", pool), ("state", state)],
                n,
            );
        }
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        telemetry::metrics::render(),
    )
        .into_response()
}

/// `shopstream projections status|rebuild`: opens the store and the read
/// models, runs the action, closes both.
///
/// # Errors
/// When the store cannot be opened, or as the action.
pub async fn operate(action: ProjectionsAction, role: &str) -> anyhow::Result<()> {
    let (ProjectionsAction::Status { target, .. } | ProjectionsAction::Rebuild { target, .. }) =
        &action;
    let _telemetry = target.log.init(role)?;
    let store = target.open().await?;
    let db = open(&target.data, &target.store).await?;
    let keys = match &action {
        ProjectionsAction::Rebuild { .. } => {
            Some(target.store.keyring(&target.data, &store).await?)
        }
        ProjectionsAction::Status { .. } => None,
    };
    let result = match action {
        ProjectionsAction::Status { json, .. } => print_status(&store, &db, json).await,
        ProjectionsAction::Rebuild {
            name,
            all,
            verify,
            memory,
            ..
        } => {
            let names: Vec<String> = match name {
                Some(n) if !all => vec![n],
                _ => readmodel::NAMES.iter().map(|n| (*n).to_string()).collect(),
            };
            match eventlog::census::check_readable(&store).await {
                Ok(()) => {
                    // The customer view opens personal data with the keys.
                    let db = keys.map_or_else(|| db.clone(), |k| db.clone().with_keys(k));
                    rebuild_cmd(&store, &db, &names, verify, memory).await
                }
                Err(e) => Err(e.into()),
            }
        }
    };
    db.close().await;
    store.close().await;
    result
}

/// `shopstream projections status`.
///
/// # Errors
/// When the store cannot be read.
pub async fn print_status(store: &Database, db: &ReadDb, json: bool) -> anyhow::Result<()> {
    let status = readmodel::status::all(&EventLog::new(store.clone()), db).await?;
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&status)?)?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<14} {:>7} {:>4} {:<10} {:<6} {:>10} {:>10} {:>10} {:>9}",
        "PROJECTION", "VERSION", "GEN", "STATE", "SOURCE", "POSITION", "HEAD", "LAG", "LAG (s)"
    )?;
    for s in &status {
        let version = match s.live_version {
            Some(v) if v != s.code_version => format!("{v}→{}", s.code_version),
            Some(v) => v.to_string(),
            None => "-".into(),
        };
        writeln!(
            out,
            "{:<14} {:>7} {:>4} {:<10} {:<6} {:>10} {:>10} {:>10} {:>9.1}",
            s.name,
            version,
            s.generation.map_or("-".into(), |g| g.to_string()),
            s.state,
            s.source,
            s.position,
            s.head,
            s.lag_events,
            s.lag_seconds
        )?;
        if let Some(e) = &s.error {
            writeln!(
                out,
                "    failed at position {}: {e}",
                s.error_position.unwrap_or_default()
            )?;
        }
        if let Some((g, p)) = s.rebuilding {
            writeln!(out, "    rebuilding generation {g}, at position {p}")?;
        }
    }
    Ok(())
}

/// How long a rebuild bounded by `memory` lets freed memory stay in the
/// process before it goes back to the system (mimalloc's purge delay,
/// milliseconds). The bound is on resident memory, and freed pages not yet
/// returned count against it: under the default bound they leave at once,
/// which holds small bounds close (at 64 MiB, 103 MiB peak against 113 MiB
/// with 100 ms, and fewer spills). From the default bound up, 100 ms: the
/// next batches reuse the pages instead of faulting fresh ones in, which
/// took 3–4 s of system time per 1 M events (1.5–2.0 s with the delay)
/// and about 10 % of the wall time, with the same peak (`BENCHMARKS.md`,
/// *Full run (2026-12-06, evening)*).
fn purge_delay(memory: usize) -> std::ffi::c_long {
    if memory >= projectors::rebuild::DEFAULT_MEMORY {
        100
    } else {
        0
    }
}

/// `shopstream projections rebuild NAME|--all [--verify] [--rebuild-memory SIZE]`:
/// one bulk fill for all the named projections, then each verified and
/// swapped.
///
/// # Errors
/// When a rebuild fails or `--verify` refuses a swap.
pub async fn rebuild_cmd(
    store: &Database,
    db: &ReadDb,
    names: &[String],
    verify: bool,
    memory: usize,
) -> anyhow::Result<()> {
    crate::purge_freed_memory_after(purge_delay(memory));
    let log = EventLog::new(store.clone());
    let label = match names {
        [one] => one.clone(),
        _ => "all".to_string(),
    };
    let mut progress = |p: Progress| draw(&label, &p);
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let options = Options::new(verify, &mut progress).memory(memory);
    let outcomes = rebuild::rebuild_many(&names, &log, db, options).await?;
    eprintln!();
    let mut refused = Vec::new();
    let mut failed = None;
    let mut out = std::io::stdout().lock();
    for (name, outcome) in outcomes {
        match outcome {
            Ok(report) => {
                let spills = match report.spills {
                    0 => String::new(),
                    n => format!("; wrote out early {n} time(s) at --rebuild-memory"),
                };
                writeln!(
                    out,
                    "{}: generation {} (version {}) is live; {} events in {:.1}s ({:.0} events/s){spills}",
                    report.name,
                    report.generation,
                    report.version,
                    report.events,
                    report.seconds,
                    report.events_per_second
                )?;
                print_diff(&mut out, &report.diff)?;
            }
            Err(rebuild::RebuildError::Differs(name, diff)) => {
                writeln!(
                    out,
                    "{name}: the rebuild differs from the live version; NOT swapped (--verify)"
                )?;
                print_diff(&mut out, &diff)?;
                refused.push(name);
            }
            Err(e) => {
                writeln!(out, "{name}: rebuild failed: {e}")?;
                failed.get_or_insert(
                    anyhow::Error::new(e).context(format!("rebuilding {name} failed")),
                );
            }
        }
    }
    if let Some(e) = failed {
        return Err(e);
    }
    anyhow::ensure!(
        refused.is_empty(),
        "verification refused: {}",
        refused.join(", ")
    );
    Ok(())
}

fn print_diff(out: &mut impl Write, diff: &[rebuild::TableDiff]) -> std::io::Result<()> {
    for d in diff {
        let verdict = if d.same() { "same" } else { "DIFFERS" };
        writeln!(
            out,
            "    {:<20} live {:>8} rows {}…  rebuilt {:>8} rows {}…  {verdict}",
            d.table,
            d.live_rows,
            &d.live_checksum[..12],
            d.rebuilt_rows,
            &d.rebuilt_checksum[..12]
        )?;
    }
    Ok(())
}

/// One line of progress on stderr: bar, events, rate, ETA.
fn draw(name: &str, p: &Progress) {
    let done = if p.head > 0 {
        (p.position as f64 / p.head as f64).clamp(0.0, 1.0)
    } else {
        1.0
    };
    let width = 30;
    let filled = (done * width as f64) as usize;
    eprint!(
        "\r{name:<14} [{}{}] {:>5.1}%  {} events  {:>8.0} events/s  ETA {:>4}s ",
        "#".repeat(filled),
        " ".repeat(width - filled),
        done * 100.0,
        p.events,
        p.rate(),
        p.eta().as_secs()
    );
}

#[cfg(test)]
mod tests {
    use projectors::rebuild::DEFAULT_MEMORY;

    #[test]
    fn rebuilds_under_the_default_bound_purge_freed_memory_at_once() {
        assert_eq!(super::purge_delay(64 << 20), 0);
        assert_eq!(super::purge_delay(DEFAULT_MEMORY - 1), 0);
        assert_eq!(super::purge_delay(DEFAULT_MEMORY), 100);
        assert_eq!(super::purge_delay(1 << 30), 100);
    }
}
