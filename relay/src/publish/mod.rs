//! The relay: tails the store below its safe horizon and produces every
//! event to Kafka, in log order, keyed by customer.
//!
//! - Its checkpoint (`relay_checkpoint`) advances only over the contiguous
//!   prefix of records the broker acknowledged (`acks=all`, idempotent
//!   producer); after a crash it re-publishes from there, so consumers see
//!   duplicates, never gaps.
//! - One relay is active at a time: it holds a Postgres advisory lock on a
//!   dedicated connection. Standbys try the lock every second and take over
//!   when the active one's connection dies.
//! - With Kafka down, appends go on (the store decides, invariant 6): the
//!   relay keeps its bounded in-flight window queued, retries, and catches up
//!   when the broker returns. [`RelayStatus`] says what it is doing.
//!
//! # Layout
//! - `mod.rs`: [`Relay`] (the lock, sessions, retries), its settings, status and errors.
//! - `window`: producing in log order and settling acknowledgements in order.
//! - `checkpoint`: the relay's checkpoint (SQL).
//! - `keys`: the partition key of each event (its customer).

mod checkpoint;
mod keys;
mod window;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::producer::{FutureProducer, Producer, PurgeConfig};
use serde::Serialize;
use sqlx::postgres::PgConnection;
use sqlx::{Connection, PgPool};
use tokio::sync::watch;

pub use checkpoint::{checkpoint, RelayCheckpoint};

use crate::kafka::{KafkaSettings, KafkaSideError};
use eventlog::{Database, EventLog, StoreError};

/// How the relay runs.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    pub kafka: KafkaSettings,
    /// Names the checkpoint and the lock (one active relay per name).
    pub name: String,
    /// Events read per query.
    pub batch: u32,
    /// Records produced but not yet acknowledged, at most.
    pub max_in_flight: usize,
    /// Poll interval when no notification arrives.
    pub poll: Duration,
}

impl RelayConfig {
    /// Defaults for `kafka`.
    pub fn new(kafka: KafkaSettings) -> Self {
        Self {
            kafka,
            name: "default".into(),
            batch: 1000,
            max_in_flight: 20_000,
            poll: Duration::from_millis(100),
        }
    }
}

/// What the relay is doing, for `/readyz` and metrics.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct RelayState {
    /// `starting`, `standby` (another relay holds the lock) or `active`.
    pub role: String,
    /// Whether the broker answered recently.
    pub kafka_reachable: bool,
    /// Position of the last event the broker acknowledged (with everything before it).
    pub checkpoint: i64,
    /// Records produced and not yet acknowledged.
    pub in_flight: usize,
    /// Events acknowledged since this process started.
    pub published: u64,
    pub last_error: Option<String>,
}

/// Shared view of a running relay.
#[derive(Debug, Clone, Default)]
pub struct RelayStatus(Arc<Mutex<RelayState>>);

impl RelayStatus {
    /// A snapshot.
    pub fn get(&self) -> RelayState {
        self.0.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn update(&self, f: impl FnOnce(&mut RelayState)) {
        if let Ok(mut s) = self.0.lock() {
            f(&mut s);
        }
    }
}

/// Why a relay session ended.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Kafka(#[from] KafkaSideError),
    #[error("the relay needs the Postgres event store")]
    NotPostgres,
    #[error("lost the relay lock")]
    LostLock,
}

impl From<sqlx::Error> for RelayError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(e.into())
    }
}

impl From<rdkafka::error::KafkaError> for RelayError {
    fn from(e: rdkafka::error::KafkaError) -> Self {
        Self::Kafka(e.into())
    }
}

/// The relay.
pub struct Relay {
    pool: PgPool,
    log: EventLog,
    config: RelayConfig,
    status: RelayStatus,
}

impl Relay {
    /// A relay over `db` (Postgres only).
    ///
    /// # Errors
    /// [`RelayError::NotPostgres`] on SQLite.
    pub fn new(db: &Database, config: RelayConfig) -> Result<Self, RelayError> {
        let Database::Postgres(pool) = db else {
            return Err(RelayError::NotPostgres);
        };
        Ok(Self {
            pool: pool.clone(),
            log: EventLog::new(db.clone()),
            config,
            status: RelayStatus::default(),
        })
    }

    /// Its status handle.
    pub fn status(&self) -> RelayStatus {
        self.status.clone()
    }

    /// Runs until `shutdown` flips to true: waits for the lock, publishes
    /// while it holds it, and retries with backoff after any failure.
    /// `wake` signals new events (notifications); the relay also polls.
    pub async fn run(self, mut wake: watch::Receiver<u64>, mut shutdown: watch::Receiver<bool>) {
        self.status.update(|s| s.role = "starting".into());
        let mut backoff = Duration::from_millis(200);
        loop {
            if *shutdown.borrow() {
                return;
            }
            let result = self.session(&mut wake, &mut shutdown).await;
            self.status.update(|s| {
                s.in_flight = 0;
                if let Err(e) = &result {
                    s.last_error = Some(e.to_string());
                }
            });
            match result {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "relay session ended; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        _ = shutdown.changed() => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// Takes the lock, then publishes until shutdown (`Ok`) or a failure.
    async fn session(
        &self,
        wake: &mut watch::Receiver<u64>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), RelayError> {
        let mut lock = self.pool.acquire().await?.detach();
        loop {
            let held: bool = sqlx::query_scalar(
                "SELECT pg_try_advisory_lock(hashtext('shopstream-relay:' || $1))",
            )
            .bind(&self.config.name)
            .fetch_one(&mut lock)
            .await?;
            if held {
                break;
            }
            self.status.update(|s| s.role = "standby".into());
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.changed() => {}
            }
            if *shutdown.borrow() {
                return Ok(());
            }
        }
        self.status.update(|s| s.role = "active".into());
        tracing::info!(relay = %self.config.name, "relay active");
        metrics_active(1.0);
        let result = self.publish(&mut lock, wake, shutdown).await;
        metrics_active(0.0);
        // Closing the connection releases the lock for a standby.
        let _ = lock.close().await;
        result
    }

    /// Waits until the broker has the topic (`None`: shut down meanwhile);
    /// returns its partition count.
    async fn topic(
        &self,
        lock: &mut PgConnection,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<Option<i32>, RelayError> {
        loop {
            match self.config.kafka.ensure_topic().await {
                Ok(n) => {
                    self.status.update(|s| {
                        s.kafka_reachable = true;
                        s.last_error = None;
                    });
                    return Ok(Some(n));
                }
                Err(e) => {
                    self.status.update(|s| {
                        s.kafka_reachable = false;
                        s.last_error = Some(e.to_string());
                    });
                    tracing::warn!(error = %e, "kafka not ready; the relay waits");
                    check_lock(lock).await?;
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = shutdown.changed() => {}
                    }
                    if *shutdown.borrow() {
                        return Ok(None);
                    }
                }
            }
        }
    }
}

/// Drops unacknowledged records when a session ends: with an unreachable
/// broker and no message timeout, the client would otherwise wait for them
/// forever. The next session re-publishes them from the checkpoint.
struct Purging(FutureProducer);

impl std::ops::Deref for Purging {
    type Target = FutureProducer;
    fn deref(&self) -> &FutureProducer {
        &self.0
    }
}

impl Drop for Purging {
    fn drop(&mut self) {
        self.0.purge(PurgeConfig::default().queue().inflight());
    }
}

async fn check_lock(lock: &mut PgConnection) -> Result<(), RelayError> {
    // The lock lives as long as this connection: if it broke, a standby
    // may already hold the lock, so stop publishing.
    match tokio::time::timeout(Duration::from_secs(5), lock.ping()).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(RelayError::LostLock),
    }
}

fn metrics_active(v: f64) {
    gauge(
        "relay_active",
        "1 while this process is the active relay.",
        v,
    );
}

pub(super) fn gauge(name: &'static str, help: &'static str, v: f64) {
    telemetry::metrics::gauge(name, help, &[], v);
}
