//! The publishing loop: events read in log order are produced into a
//! bounded window of unacknowledged records; acknowledgements are settled
//! in order, and the checkpoint moves only over the acknowledged prefix.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::FutureExt;
use rdkafka::producer::{DeliveryFuture, FutureRecord};
use sqlx::postgres::PgConnection;
use tokio::sync::watch;

use super::keys::Keys;
use super::{check_lock, checkpoint, gauge, Purging, Relay, RelayError};
use crate::kafka::{self, KafkaSideError};
use eventlog::{Cursor, Database, HeldBack, StoreError, StoredEvent};

/// How often the checkpoint is stored while records are in flight.
const SAVE_EVERY: Duration = Duration::from_millis(50);

/// One produced record waiting for the broker.
struct Pending {
    cursor: Cursor,
    recorded_at: DateTime<Utc>,
    event: bool,
    /// When the record went to the producer.
    sent: Instant,
    delivery: DeliveryFuture,
    /// The event's `publish` span (traced events, when exported): ends
    /// when the record leaves the window, acknowledged.
    _span: tracing::Span,
}

/// What is in flight and how far the broker acknowledged.
struct Window {
    pending: VecDeque<Pending>,
    /// The end of the acknowledged prefix.
    acked: Cursor,
    acked_at: Option<DateTime<Utc>>,
    /// The checkpoint as stored.
    saved: Cursor,
    saved_at: Instant,
    /// The last event produced.
    sent: Cursor,
    /// The highest position read, and whether reads stop at the safe
    /// horizon (events committed behind an open transaction).
    seen: i64,
    held: HeldBack,
}

/// What an acknowledgement settles.
#[derive(Debug, Clone, Copy)]
struct Settled {
    cursor: Cursor,
    recorded_at: DateTime<Utc>,
    event: bool,
    sent: Instant,
}

impl Pending {
    fn settled(&self) -> Settled {
        Settled {
            cursor: self.cursor,
            recorded_at: self.recorded_at,
            event: self.event,
            sent: self.sent,
        }
    }
}

impl Relay {
    /// Publishes from the checkpoint while the lock holds, until shutdown.
    pub(super) async fn publish(
        &self,
        lock: &mut PgConnection,
        wake: &mut watch::Receiver<u64>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), RelayError> {
        let Some(partitions) = self.topic(lock, shutdown).await? else {
            return Ok(());
        };
        let producer = Purging(self.config.kafka.producer_config().create()?);
        checkpoint::ensure(&self.pool, &self.config.name).await?;
        let db = Database::Postgres(self.pool.clone());
        let start = checkpoint::checkpoint(&db, &self.config.name)
            .await?
            .map(|c| c.cursor)
            .unwrap_or_default();
        tracing::info!(
            position = start.position,
            partitions,
            "relay publishing from its checkpoint"
        );
        let mut w = Window {
            pending: VecDeque::new(),
            acked: start,
            acked_at: None,
            saved: start,
            saved_at: Instant::now(),
            sent: start,
            seen: start.position,
            held: HeldBack::default(),
        };
        let mut keys = Keys::default();
        let (mut last_lock_check, mut last_probe) = (Instant::now(), Instant::now());
        loop {
            self.settle_ready(&mut w).await?;
            if *shutdown.borrow() {
                return self.drain(w).await;
            }
            if last_lock_check.elapsed() > Duration::from_secs(1) {
                check_lock(lock).await?;
                last_lock_check = Instant::now();
            }
            if w.pending.is_empty() && last_probe.elapsed() > Duration::from_secs(5) {
                last_probe = Instant::now();
                let reachable = self.config.kafka.partition_count().await.is_ok();
                self.status.update(|s| s.kafka_reachable = reachable);
            }
            if w.pending.len() < self.config.max_in_flight
                && self
                    .produce(&mut w, &producer, &mut keys, partitions, wake)
                    .await?
            {
                continue;
            }
            // Nothing to read (or the window is full): wait for an
            // acknowledgement, new events, the poll interval or shutdown.
            self.wait(&mut w, wake, shutdown).await?;
        }
    }

    /// Settles what the broker acknowledged, in order; stores the new
    /// checkpoint and reports the window.
    async fn settle_ready(&self, w: &mut Window) -> Result<(), RelayError> {
        while let Some(front) = w.pending.front_mut() {
            let Some(result) = (&mut front.delivery).now_or_never() else {
                break;
            };
            if let Some(done) = w.pending.pop_front() {
                self.settle(result, done.settled(), w)?;
            }
        }
        // At most every SAVE_EVERY while records are in flight (a
        // checkpoint behind the acknowledged prefix only re-publishes what
        // consumers skip as duplicates), at once when the window empties.
        let due = w.pending.is_empty() || w.saved_at.elapsed() >= SAVE_EVERY;
        if w.acked != w.saved && due {
            checkpoint::save(&self.pool, &self.config.name, w.acked, w.acked_at).await?;
            (w.saved, w.saved_at) = (w.acked, Instant::now());
        }
        let oldest_age = w
            .pending
            .front()
            .map(|p| (Utc::now() - p.recorded_at).num_milliseconds());
        self.status.update(|s| {
            s.checkpoint = w.acked.position;
            s.in_flight = w.pending.len();
            // Records waiting for seconds: the broker is not answering.
            if oldest_age.is_some_and(|age| age > 5_000) && s.kafka_reachable {
                s.kafka_reachable = false;
                s.last_error = Some("kafka is not acknowledging records".into());
            }
        });
        let in_flight = w.pending.len() as f64;
        gauge(
            "relay_in_flight",
            "Records produced and not yet acknowledged.",
            in_flight,
        );
        Ok(())
    }

    /// On shutdown: gives in-flight records a moment; whatever is not
    /// acknowledged is re-published by the next relay.
    async fn drain(&self, mut w: Window) -> Result<(), RelayError> {
        let deadline = Instant::now() + Duration::from_secs(5);
        while let Some(front) = w.pending.pop_front() {
            let left = deadline.saturating_duration_since(Instant::now());
            let done = front.settled();
            let Ok(result) = tokio::time::timeout(left, front.delivery).await else {
                break;
            };
            if self.settle(result, done, &mut w).is_err() {
                break;
            }
        }
        if w.acked != w.saved {
            checkpoint::save(&self.pool, &self.config.name, w.acked, w.acked_at).await?;
        }
        Ok(())
    }

    /// Produces the next batch of events and a watermark per partition;
    /// false when there was nothing to read.
    async fn produce(
        &self,
        w: &mut Window,
        producer: &Purging,
        keys: &mut Keys,
        partitions: i32,
        wake: &watch::Receiver<u64>,
    ) -> Result<bool, RelayError> {
        let events = self.log.read_from(w.sent, self.config.batch).await?;
        let Some(last) = events.last() else {
            // Nothing readable: held back by an open transaction, or no
            // news. Asked only when no wake-up is pending (under load one
            // nearly always is, and the next read comes anyway).
            let held = !wake.has_changed().unwrap_or(true) && self.log.held_back(w.seen).await?;
            w.held.update(held, self.config.poll);
            return Ok(false);
        };
        w.held.update(false, self.config.poll);
        w.seen = events.iter().map(|e| e.position).fold(w.seen, i64::max);
        let (cursor, at) = (last.cursor(), last.recorded_at);
        if let Some(first) = events.first() {
            telemetry::metrics::observe_since(
                "relay_read_delay_seconds",
                "From an event's append to the relay reading it (the oldest of each read).",
                &[],
                first.recorded_at.into(),
            );
        }
        for event in &events {
            let customer = keys.customer_of(&self.log, event).await?;
            w.pending
                .push_back(self.produce_event(producer, event, customer)?);
        }
        // Watermarks: every partition learns how far the log is complete
        // (a partition that got no event still moves).
        let value = kafka::watermark_value(cursor);
        for partition in 0..partitions {
            let record = FutureRecord::<(), _>::to(&self.config.kafka.topic)
                .partition(partition)
                .payload(&value)
                .headers(kafka::watermark_headers(cursor));
            let delivery = producer
                .send_result(record)
                .map_err(|(e, _)| RelayError::from(e))?;
            w.pending.push_back(Pending {
                cursor,
                recorded_at: at,
                event: false,
                sent: Instant::now(),
                delivery,
                _span: tracing::Span::none(),
            });
        }
        w.sent = cursor;
        Ok(true)
    }

    /// Produces one event, keyed by its customer.
    fn produce_event(
        &self,
        producer: &Purging,
        event: &StoredEvent,
        customer: Option<String>,
    ) -> Result<Pending, RelayError> {
        let key = kafka::partition_key(event, customer.as_deref());
        let value = serde_json::to_string(event).map_err(|e| StoreError::Corrupt(e.to_string()))?;
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
        Ok(Pending {
            cursor: event.cursor(),
            recorded_at: event.recorded_at,
            event: true,
            sent: Instant::now(),
            delivery,
            _span: span,
        })
    }

    /// Waits for the oldest acknowledgement, new events, the poll interval
    /// or shutdown; settles the acknowledgement (a delivery result can be
    /// taken only once).
    async fn wait(
        &self,
        w: &mut Window,
        wake: &mut watch::Receiver<u64>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), RelayError> {
        let poll = w.held.wait(self.config.poll);
        let front = async {
            match w.pending.front_mut() {
                Some(p) => (&mut p.delivery).await,
                None => std::future::pending().await,
            }
        };
        let delivered = tokio::select! {
            result = front => Some(result),
            _ = wake.changed() => None,
            () = tokio::time::sleep(poll) => None,
            _ = shutdown.changed() => None,
        };
        if let Some(result) = delivered {
            if let Some(done) = w.pending.pop_front() {
                self.settle(result, done.settled(), w)?;
            }
        }
        Ok(())
    }

    /// Records one acknowledgement (the next in order) or fails the session.
    fn settle<T, M, C>(
        &self,
        result: Result<Result<T, (rdkafka::error::KafkaError, M)>, C>,
        done: Settled,
        w: &mut Window,
    ) -> Result<(), RelayError> {
        match result {
            Ok(Ok(_)) => {
                w.acked = done.cursor;
                w.acked_at = Some(done.recorded_at);
                if done.event {
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
                    telemetry::metrics::observe_seconds(
                        "relay_ack_wait_seconds",
                        "From handing an event to the producer to settling the broker's acknowledgement.",
                        &[],
                        done.sent.elapsed().as_secs_f64(),
                    );
                    telemetry::metrics::observe_since(
                        "relay_publish_delay_seconds",
                        "From an event's append to the broker's acknowledgement.",
                        &[],
                        done.recorded_at.into(),
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
}
