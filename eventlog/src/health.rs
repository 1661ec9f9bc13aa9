//! Whether the store answers, checked in the background so that readiness
//! probes answer at once from the last result instead of waiting on a
//! database that may be down (a probe usually gives up after 1–5 s).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::Database;

/// How often the store is pinged.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);

/// How long one ping may take before it counts as a failure.
pub const PING_TIMEOUT: Duration = Duration::from_secs(1);

/// The last check's outcome.
#[derive(Debug, Clone)]
pub struct HealthState {
    /// Whether the last ping answered in time.
    pub ready: bool,
    /// Why not, when not.
    pub reason: Option<String>,
    /// When the last check finished (`None`: none has yet).
    pub checked: Option<Instant>,
}

/// A handle on the background check of one store; clones share it. The
/// checking task ends when the last handle is dropped.
#[derive(Debug, Clone)]
pub struct Health {
    state: watch::Receiver<HealthState>,
    backend: crate::Backend,
    _task: Arc<TaskGuard>,
}

#[derive(Debug)]
struct TaskGuard(tokio::task::AbortHandle);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Health {
    /// Starts checking `db` (now, then every [`CHECK_EVERY`]). Needs a
    /// tokio runtime.
    pub fn watch(db: Database) -> Self {
        let backend = db.backend();
        let (tx, rx) = watch::channel(HealthState {
            ready: false,
            reason: Some("the store has not been checked yet".into()),
            checked: None,
        });
        let task = tokio::spawn(async move {
            loop {
                let outcome = tokio::time::timeout(PING_TIMEOUT, db.ping()).await;
                let state = match outcome {
                    Ok(Ok(())) => HealthState {
                        ready: true,
                        reason: None,
                        checked: Some(Instant::now()),
                    },
                    Ok(Err(e)) => HealthState {
                        ready: false,
                        reason: Some(format!("the event store does not answer: {e}")),
                        checked: Some(Instant::now()),
                    },
                    Err(_) => HealthState {
                        ready: false,
                        reason: Some(format!(
                            "the event store did not answer within {} ms",
                            PING_TIMEOUT.as_millis()
                        )),
                        checked: Some(Instant::now()),
                    },
                };
                if tx.send(state).is_err() {
                    return;
                }
                tokio::time::sleep(CHECK_EVERY).await;
            }
        });
        Self {
            state: rx,
            backend,
            _task: Arc::new(TaskGuard(task.abort_handle())),
        }
    }

    /// The last outcome; a result older than three check intervals (the
    /// checker is stuck) counts as not ready.
    pub fn current(&self) -> HealthState {
        let state = self.state.borrow().clone();
        match state.checked {
            Some(at) if at.elapsed() > CHECK_EVERY * 3 + PING_TIMEOUT => HealthState {
                ready: false,
                reason: Some("the store's health check is not answering".into()),
                checked: state.checked,
            },
            _ => state,
        }
    }

    /// Which store is checked.
    pub fn backend(&self) -> crate::Backend {
        self.backend
    }
}
