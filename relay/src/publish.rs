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

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::FutureExt;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer, PurgeConfig};
use serde::Serialize;
use sqlx::postgres::PgConnection;
use sqlx::{Connection, PgPool, Row};
use tokio::sync::watch;

use crate::kafka::{self, KafkaSettings, KafkaSideError};
use eventlog::{Cursor, Database, EventLog, StoreError, StoredEvent};

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

/// The relay checkpoint as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayCheckpoint {
    pub cursor: Cursor,
    pub recorded_at: Option<DateTime<Utc>>,
}

/// Reads relay `name`'s checkpoint (None before its first start).
///
/// # Errors
/// Database errors; [`RelayError::NotPostgres`] on SQLite.
pub async fn checkpoint(db: &Database, name: &str) -> Result<Option<RelayCheckpoint>, RelayError> {
    let Database::Postgres(pool) = db else {
        return Err(RelayError::NotPostgres);
    };
    let row = sqlx::query(
        "SELECT cursor_txid, cursor_position, recorded_at FROM relay_checkpoint WHERE name = $1",
    )
    .bind(name)
    .fetch_optional(pool)
    .await?;
    row.map(|r| {
        let txid: String = r.try_get(0)?;
        Ok(RelayCheckpoint {
            cursor: Cursor {
                transaction_id: txid
                    .parse()
                    .map_err(|_| StoreError::Corrupt(format!("relay cursor {txid}")))?,
                position: r.try_get(1)?,
            },
            recorded_at: r.try_get(2)?,
        })
    })
    .transpose()
}

/// The relay.
pub struct Relay {
    pool: PgPool,
    log: EventLog,
    config: RelayConfig,
    status: RelayStatus,
}

struct Pending {
    cursor: Cursor,
    recorded_at: DateTime<Utc>,
    event: bool,
    delivery: DeliveryFuture,
    /// The event's `publish` span (traced events, when exported): ends
    /// when the record leaves the window, acknowledged.
    _span: tracing::Span,
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

    async fn publish(
        &self,
        lock: &mut PgConnection,
        wake: &mut watch::Receiver<u64>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), RelayError> {
        let partitions = loop {
            match self.config.kafka.ensure_topic().await {
                Ok(n) => break n,
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
                        return Ok(());
                    }
                }
            }
        };
        self.status.update(|s| {
            s.kafka_reachable = true;
            s.last_error = None;
        });
        let producer = Purging(self.config.kafka.producer_config().create()?);
        sqlx::query("INSERT INTO relay_checkpoint (name) VALUES ($1) ON CONFLICT DO NOTHING")
            .bind(&self.config.name)
            .execute(&self.pool)
            .await?;
        let start = checkpoint(&Database::Postgres(self.pool.clone()), &self.config.name)
            .await?
            .map(|c| c.cursor)
            .unwrap_or_default();
        tracing::info!(
            position = start.position,
            partitions,
            "relay publishing from its checkpoint"
        );
        let mut acked = start;
        let mut saved = start;
        let mut acked_at: Option<DateTime<Utc>> = None;
        let mut sent = start;
        let mut pending: VecDeque<Pending> = VecDeque::new();
        let mut keys = Keys::default();
        let mut last_lock_check = Instant::now();
        let mut last_probe = Instant::now();
        loop {
            // Settle what the broker acknowledged, in order.
            while let Some(front) = pending.front_mut() {
                match (&mut front.delivery).now_or_never() {
                    None => break,
                    Some(result) => {
                        let (cursor, at, event) = (front.cursor, front.recorded_at, front.event);
                        pending.pop_front();
                        self.settle(result, (cursor, at, event), &mut acked, &mut acked_at)?;
                    }
                }
            }
            if acked != saved {
                self.save(acked, acked_at).await?;
                saved = acked;
            }
            let oldest_age = pending
                .front()
                .map(|p| (Utc::now() - p.recorded_at).num_milliseconds());
            self.status.update(|s| {
                s.checkpoint = acked.position;
                s.in_flight = pending.len();
                if let Some(age) = oldest_age {
                    // Records waiting for seconds: the broker is not answering.
                    if age > 5_000 && s.kafka_reachable {
                        s.kafka_reachable = false;
                        s.last_error = Some("kafka is not acknowledging records".into());
                    }
                }
            });
            eventlog_gauge(
                "relay_in_flight",
                "Records produced and not yet acknowledged.",
                pending.len() as f64,
            );
            if *shutdown.borrow() {
                // Give in-flight records a moment; whatever is not
                // acknowledged is re-published by the next relay.
                let deadline = Instant::now() + Duration::from_secs(5);
                while let Some(front) = pending.pop_front() {
                    let left = deadline.saturating_duration_since(Instant::now());
                    let done = (front.cursor, front.recorded_at, front.event);
                    match tokio::time::timeout(left, front.delivery).await {
                        Ok(result) => {
                            if self
                                .settle(result, done, &mut acked, &mut acked_at)
                                .is_err()
                            {
                                break;
                            }
                        }
                        Err(_) => break,
                    }
                }
                if acked != saved {
                    self.save(acked, acked_at).await?;
                }
                return Ok(());
            }
            if last_lock_check.elapsed() > Duration::from_secs(1) {
                check_lock(lock).await?;
                last_lock_check = Instant::now();
            }
            if pending.is_empty() && last_probe.elapsed() > Duration::from_secs(5) {
                last_probe = Instant::now();
                let reachable = self.config.kafka.partition_count().await.is_ok();
                self.status.update(|s| s.kafka_reachable = reachable);
            }
            if pending.len() < self.config.max_in_flight {
                let events = self.log.read_from(sent, self.config.batch).await?;
                if let Some(last) = events.last() {
                    let (cursor, at) = (last.cursor(), last.recorded_at);
                    for event in &events {
                        let customer = keys.customer_of(&self.log, event).await?;
                        let key = kafka::partition_key(event, customer.as_deref());
                        let value = serde_json::to_string(event)
                            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                        let record = FutureRecord::to(&self.config.kafka.topic)
                            .key(&key)
                            .payload(&value)
                            .headers(kafka::event_headers(event));
                        let span = telemetry::follow(&event.metadata, || {
                            tracing::info_span!(
                                "publish",
                                otel.name = %format!("publish {}", self.config.kafka.topic),
                                otel.kind = "producer",
                                event_type = %event.event_type,
                                aggregate_id = %event.aggregate_id,
                                position = event.position,
                            )
                        });
                        let delivery = producer
                            .send_result(record)
                            .map_err(|(e, _)| RelayError::from(e))?;
                        pending.push_back(Pending {
                            cursor: event.cursor(),
                            recorded_at: event.recorded_at,
                            event: true,
                            delivery,
                            _span: span,
                        });
                    }
                    // Watermarks: every partition learns how far the log is
                    // complete (a partition that got no event still moves).
                    let value = kafka::watermark_value(cursor);
                    for partition in 0..partitions {
                        let record = FutureRecord::<(), _>::to(&self.config.kafka.topic)
                            .partition(partition)
                            .payload(&value)
                            .headers(kafka::watermark_headers(cursor));
                        let delivery = producer
                            .send_result(record)
                            .map_err(|(e, _)| RelayError::from(e))?;
                        pending.push_back(Pending {
                            cursor,
                            recorded_at: at,
                            event: false,
                            delivery,
                            _span: tracing::Span::none(),
                        });
                    }
                    sent = cursor;
                    continue;
                }
            }
            // Nothing to read (or the window is full): wait for an
            // acknowledgement, new events, the poll interval or shutdown.
            let front = async {
                match pending.front_mut() {
                    Some(p) => (&mut p.delivery).await,
                    None => std::future::pending().await,
                }
            };
            // A delivery result can be taken only once: settle it here.
            let delivered = tokio::select! {
                result = front => Some(result),
                _ = wake.changed() => None,
                () = tokio::time::sleep(self.config.poll) => None,
                _ = shutdown.changed() => None,
            };
            if let Some(result) = delivered {
                if let Some(done) = pending.pop_front() {
                    self.settle(
                        result,
                        (done.cursor, done.recorded_at, done.event),
                        &mut acked,
                        &mut acked_at,
                    )?;
                }
            }
        }
    }

    fn settle<T, M, C>(
        &self,
        result: Result<Result<T, (rdkafka::error::KafkaError, M)>, C>,
        (cursor, recorded_at, event): (Cursor, DateTime<Utc>, bool),
        acked: &mut Cursor,
        acked_at: &mut Option<DateTime<Utc>>,
    ) -> Result<(), RelayError> {
        match result {
            Ok(Ok(_)) => {
                *acked = cursor;
                *acked_at = Some(recorded_at);
                if event {
                    self.status.update(|s| {
                        s.published += 1;
                        s.kafka_reachable = true;
                        s.last_error = None;
                    });
                    telemetry::metrics::count(
                        "relay_events_published_total",
                        "Events the broker acknowledged.",
                        &[],
                        1.0,
                    );
                }
                Ok(())
            }
            Ok(Err((e, _))) => Err(e.into()),
            Err(_) => Err(RelayError::Kafka(KafkaSideError::Topic {
                topic: self.config.kafka.topic.clone(),
                message: "the producer dropped a delivery".into(),
            })),
        }
    }

    async fn save(&self, cursor: Cursor, at: Option<DateTime<Utc>>) -> Result<(), RelayError> {
        sqlx::query(
            "UPDATE relay_checkpoint SET cursor_txid = $1, cursor_position = $2, \
             recorded_at = COALESCE($3, recorded_at), updated_at = now() WHERE name = $4",
        )
        .bind(cursor.transaction_id.to_string())
        .bind(cursor.position)
        .bind(at)
        .bind(&self.config.name)
        .execute(&self.pool)
        .await?;
        eventlog_gauge(
            "relay_checkpoint_position",
            "Position of the last event the broker acknowledged.",
            cursor.position as f64,
        );
        Ok(())
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
    eventlog_gauge(
        "relay_active",
        "1 while this process is the active relay.",
        v,
    );
}

fn eventlog_gauge(name: &'static str, help: &'static str, v: f64) {
    telemetry::metrics::gauge(name, help, &[], v);
}

/// The customer an event belongs to: users are customers; orders and
/// payments name theirs in their first event; products belong to none.
#[derive(Default)]
struct Keys {
    cache: HashMap<(String, String), String>,
}

impl Keys {
    async fn customer_of(
        &mut self,
        log: &EventLog,
        event: &StoredEvent,
    ) -> Result<Option<String>, RelayError> {
        match event.aggregate_type.as_str() {
            "User" => Ok(Some(event.aggregate_id.clone())),
            "Order" | "Payment" => {
                let key = (event.aggregate_type.clone(), event.aggregate_id.clone());
                if let Some(c) = self.cache.get(&key) {
                    return Ok(Some(c.clone()));
                }
                let customer = match event.customer_id() {
                    Some(c) => Some(c),
                    None => log
                        .first_of(&event.aggregate_type, &event.aggregate_id)
                        .await?
                        .and_then(|first| first.customer_id()),
                };
                if let Some(c) = &customer {
                    if self.cache.len() > 200_000 {
                        self.cache.clear();
                    }
                    self.cache.insert(key, c.clone());
                }
                Ok(customer)
            }
            _ => Ok(None),
        }
    }
}
