//! The projection engine: feeds batches of events to a projection and
//! commits its rows and its checkpoint in one transaction (invariant 4).

use std::time::Duration;

use eventlog::{Cursor, EventLog, HeldBack, StoredEvent};
use readmodel::registry::{self, GenerationState};
use readmodel::{Batch, FoldError, Projection, ProjectionError, ReadDb, Tx, Wake, WorkingSet};
use tokio::sync::watch;

use crate::observe::{event_spans, record_batch};

/// Events per batch (and per transaction).
pub const BATCH: u32 = 1000;

/// The default [`Pace::linger`].
pub const LINGER: Duration = Duration::from_millis(20);

/// How a tailer paces its reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    /// Read even without a wake-up this often (a missed signal, a swap by
    /// another process).
    pub poll: Duration,
    /// The shortest time between the starts of two batches while events
    /// keep coming: a wake-up sooner than this after the last batch waits
    /// out the rest, so that under load each commit carries more events
    /// (fewer transactions beside the appends), while an event after a
    /// quiet spell is folded at once. A full batch is followed at once.
    pub linger: Duration,
}

impl Pace {
    /// Polling every `poll`, no linger.
    pub fn polling(poll: Duration) -> Self {
        Self {
            poll,
            linger: Duration::ZERO,
        }
    }
}

/// The outcome of one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    pub cursor: Cursor,
    pub events: usize,
}

/// Applies `events` (those after `from`) to generation `g` and advances its
/// checkpoint, all in one transaction.
///
/// # Errors
/// [`ProjectionError::Poison`] after committing the events before the
/// poison one; [`ProjectionError::CheckpointMoved`] when another runner won.
pub async fn apply_batch<P: Projection>(
    db: &ReadDb,
    g: i64,
    from: Cursor,
    events: &[StoredEvent],
) -> Result<Applied, ProjectionError> {
    // Redelivery is normal: anything at or before the checkpoint is skipped.
    let fresh: Vec<&StoredEvent> = events.iter().filter(|e| e.cursor() > from).collect();
    let Some(last) = fresh.last() else {
        return Ok(Applied {
            cursor: from,
            events: 0,
        });
    };
    let relevant: Vec<&StoredEvent> = fresh
        .iter()
        .copied()
        .filter(|e| P::handles(&e.event_type))
        .collect();
    let mut tx = db.begin_batch().await?;
    if let Err((i, e)) = fold_into::<P>(db, &mut tx, g, &relevant).await? {
        let event = relevant[i];
        drop(tx);
        // Keep everything before the poison event, then stop on it.
        let before: Vec<StoredEvent> = fresh
            .iter()
            .take_while(|f| f.cursor() < event.cursor())
            .map(|f| (*f).clone())
            .collect();
        if i > 0 || !before.is_empty() {
            Box::pin(apply_batch::<P>(db, g, from, &before)).await?;
        }
        return Err(ProjectionError::Poison {
            position: event.position,
            message: e.0,
        });
    }
    let at = last
        .recorded_at
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string();
    registry::advance(
        &mut tx,
        P::NAME,
        g,
        from,
        last.cursor(),
        relevant.len() as i64,
        &at,
    )
    .await?;
    tx.commit().await?;
    if P::PERSONAL && relevant.iter().any(|e| e.event_type == "UserForgotten") {
        // Best effort: the next checkpoint of the log does it too.
        if let Err(e) = db.purge_log().await {
            tracing::warn!(error = %e, "could not truncate the SQLite log after a forget");
        }
    }
    Ok(Applied {
        cursor: last.cursor(),
        events: fresh.len(),
    })
}

/// Loads, folds and saves `events` (all relevant to `P`) into generation
/// `g` inside `tx`; for a projection of personal data, with sealed values
/// opened by `db`'s keys first. `Ok(Err((i, e)))`: event `i` is poison and
/// nothing was saved.
///
/// # Errors
/// Database errors; a data key that cannot be unwrapped.
pub async fn fold_into<P: Projection>(
    db: &ReadDb,
    tx: &mut Tx<'_>,
    g: i64,
    events: &[&StoredEvent],
) -> Result<Result<(), (usize, FoldError)>, ProjectionError> {
    let mut state = P::State::default();
    if let Err(poison) = fold_with::<P>(db, tx, g, events, &mut state).await? {
        return Ok(Err(poison));
    }
    state.save(tx, g).await?;
    Ok(Ok(()))
}

/// Loads what `events` touch into `state` and folds them (nothing saved);
/// sealed values opened first as in [`fold_into`]. `Ok(Err((i, e)))`:
/// event `i` is poison, and `state` holds a part of it.
///
/// # Errors
/// As [`fold_into`].
pub async fn fold_with<P: Projection>(
    db: &ReadDb,
    tx: &mut Tx<'_>,
    g: i64,
    events: &[&StoredEvent],
    state: &mut P::State,
) -> Result<Result<(), (usize, FoldError)>, ProjectionError> {
    let revealed = match db.keys() {
        Some(keys) if P::PERSONAL => Some(keys.reveal_events(events).await?),
        _ => None,
    };
    let opened: Vec<&StoredEvent>;
    let events = match &revealed {
        Some(r) => {
            opened = r.iter().map(AsRef::as_ref).collect();
            &opened[..]
        }
        None => events,
    };
    state.load(tx, Batch { g, events }).await?;
    for (i, event) in events.iter().enumerate() {
        if let Err(e) = P::fold(state, event) {
            return Ok(Err((i, e)));
        }
    }
    Ok(Ok(()))
}

/// Makes sure `P` has a live generation (creating generation 1, empty, on
/// first start) and returns it.
///
/// # Errors
/// Database errors.
pub async fn ensure_live<P: Projection>(db: &ReadDb) -> Result<GenerationState, ProjectionError> {
    if let Some(g) = registry::live_generation(db, P::NAME).await? {
        if let Some(state) = registry::generation(db, P::NAME, g).await? {
            return Ok(state);
        }
    }
    let mut tx = db.begin().await?;
    // Another process may be creating it at the same moment: the registry's
    // primary key lets one win; the loser reads the winner's.
    let created = async {
        registry::create_generation(&mut tx, P::NAME, P::VERSION, P::SCHEMA, 1, "live").await?;
        registry::make_live(&mut tx, P::NAME, P::SCHEMA, 1).await?;
        tx.commit().await?;
        Ok::<_, ProjectionError>(())
    }
    .await;
    if let Err(e) = created {
        tracing::debug!(error = %e, projection = P::NAME, "lost the race to create generation 1");
    }
    let g = registry::live_generation(db, P::NAME).await?.unwrap_or(1);
    registry::generation(db, P::NAME, g)
        .await?
        .ok_or_else(|| ProjectionError::Unknown(P::NAME.to_string()))
}

/// Keeps `P`'s live generation up to date until `shutdown` flips to true.
/// Follows a swap to a new generation; stops folding (but keeps running) on a
/// poison event, which `status` then reports.
///
/// After each commit it signals `commits` (readers waiting for a
/// consistency token wake on it).
pub async fn run<P: Projection>(
    log: EventLog,
    db: ReadDb,
    wake: Wake,
    commits: Wake,
    pace: Pace,
    mut shutdown: watch::Receiver<bool>,
) {
    let Pace { poll, linger } = pace;
    let mut woken = wake.subscribe();
    let mut current: Option<GenerationState> = None;
    // Whether to look for a swap by another process when the log has
    // nothing new: on start and after each idle poll, not on every wake-up.
    let mut check_live = true;
    // The highest position read, and whether reads stop at the safe
    // horizon (events committed behind a transaction still open).
    let (mut seen, mut held) = (0, HeldBack::default());
    loop {
        if *shutdown.borrow() {
            return;
        }
        let started = tokio::time::Instant::now();
        let stepped = step::<P>(&log, &db, &mut current, check_live, (&mut seen, &woken)).await;
        match &stepped {
            // Progress: a read held back next starts the retries afresh.
            Ok(Step::Applied { held: h, .. }) => {
                held = HeldBack::default();
                held.update(*h, poll);
            }
            Ok(Step::Idle { held: h }) => held.update(*h, poll),
            Err(_) => {}
        }
        let read_again = match stepped {
            Ok(Step::Idle { .. }) => false,
            Ok(Step::Applied { full, .. }) => {
                commits.notify();
                // A short batch read everything visible; what commits later
                // wakes us (or the poll finds it, or the retry of a read
                // the horizon held back), so no read that returns nothing
                // after every batch.
                full
            }
            Err(ProjectionError::CheckpointMoved) => {
                current = None;
                true
            }
            Err(ProjectionError::Poison { position, message }) => {
                tracing::error!(projection = P::NAME, position, error = %message, "poison event: projection stopped");
                if let Some(g) = current.as_ref().map(|c| c.generation) {
                    if let Err(e) = registry::fail(&db, P::NAME, g, position, &message).await {
                        tracing::error!(error = %e, "could not record the failure");
                    }
                }
                current = None;
                false
            }
            Err(e) => {
                tracing::warn!(projection = P::NAME, error = %e, "projection step failed; retrying");
                current = None;
                tokio::time::sleep(poll).await;
                false
            }
        };
        check_live = false;
        if !read_again {
            // A read the horizon held back is retried soon, but no sooner
            // than the linger allows: under load nearly every short read
            // is held back by another append in flight.
            let retry = tokio::time::Instant::now() + held.wait(poll);
            let retry = if held.is_held() {
                retry.max(started + linger)
            } else {
                retry
            };
            tokio::select! {
                _ = woken.changed() => {
                    // Events came soon after the last batch: let more join them.
                    tokio::select! {
                        () = tokio::time::sleep_until(started + linger) => {}
                        _ = shutdown.changed() => {}
                    }
                }
                () = tokio::time::sleep_until(retry) => check_live = !held.is_held(),
                _ = shutdown.changed() => {}
            }
        }
    }
}

/// What one step did; `held`: committed events wait behind the safe
/// horizon (read again soon).
enum Step {
    /// Nothing to apply.
    Idle { held: bool },
    /// Applied a batch; `full` when it was as large as a read returns (more
    /// may be waiting).
    Applied { full: bool, held: bool },
}

/// One batch for the live generation.
async fn step<P: Projection>(
    log: &EventLog,
    db: &ReadDb,
    current: &mut Option<GenerationState>,
    check_live: bool,
    (seen, woken): (&mut i64, &watch::Receiver<u64>),
) -> Result<Step, ProjectionError> {
    if current.is_none() {
        let live = ensure_live::<P>(db).await?;
        if readmodel::offsets::consumes_kafka(db, P::NAME, live.generation).await? {
            // Two sources folding one generation would apply events twice.
            tracing::warn!(
                projection = P::NAME,
                "the live generation consumes Kafka; this store tailer stays idle (run projectors with --kafka-brokers)"
            );
            return Ok(Step::Idle { held: false });
        }
        *current = Some(live);
    }
    let Some(state) = current.as_mut() else {
        return Ok(Step::Idle { held: false });
    };
    if state.state == "failed" || state.state == "retired" {
        // Reload: an operator may have swapped in a rebuilt generation.
        *current = None;
        return Ok(Step::Idle { held: false });
    }
    let events = log.read_from(state.cursor, BATCH).await?;
    *seen = events
        .iter()
        .map(|e| e.position)
        .fold((*seen).max(state.cursor.position), i64::max);
    let full = events.len() >= BATCH as usize;
    // Asked only when no wake-up is pending (one is, nearly always, under
    // load: the next read comes anyway).
    let held = !full && !woken.has_changed().unwrap_or(true) && log.held_back(*seen).await?;
    if events.is_empty() {
        // Notice a swap done by another process while idle.
        if check_live && registry::live_generation(db, P::NAME).await? != Some(state.generation) {
            *current = None;
        }
        return Ok(Step::Idle { held });
    }
    let started = std::time::Instant::now();
    let oldest = events
        .iter()
        .find(|e| e.cursor() > state.cursor)
        .map(|e| e.recorded_at);
    let spans = event_spans::<P>(events.iter().filter(|e| e.cursor() > state.cursor));
    let turn = if db.is_postgres() {
        None
    } else {
        Some(eventlog::sqlite_write_turn().await)
    };
    let applied = apply_batch::<P>(db, state.generation, state.cursor, &events).await?;
    drop(turn);
    drop(spans);
    state.cursor = applied.cursor;
    record_batch(P::NAME, applied.events, started.elapsed(), oldest);
    tracing::debug!(
        projection = P::NAME,
        position = applied.cursor.position,
        events = applied.events,
        "batch applied"
    );
    Ok(if applied.events > 0 {
        Step::Applied { full, held }
    } else {
        Step::Idle { held }
    })
}
