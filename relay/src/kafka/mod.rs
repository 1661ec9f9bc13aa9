//! The Kafka side of the distributed profile: client settings, the topic,
//! and the record format the relay writes and the projectors read.
//!
//! Kafka distributes; the store decides (invariant 6). Every record is one
//! stored event, JSON in the value (the same shape as [`StoredEvent`]), keyed
//! by the customer the event belongs to, with the envelope repeated in
//! headers so tools can route and filter without parsing values. Besides
//! events, the relay writes *watermark* records to every partition: "every
//! event up to this cursor that belongs in this partition is before me".
//! They let a consumer group know how far the log is complete across all
//! partitions (the position a consistency token waits for).
//!
//! # Layout
//! - `mod.rs`: [`KafkaSettings`], client configurations, the topic, errors.
//! - `record`: the record format: [`Record`], headers, [`decode`], [`partition_key`].

mod record;

pub use record::{
    decode, event_headers, partition_key, watermark_headers, watermark_value, Record, KIND_HEADER,
};

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

/// How to reach Kafka and which topic to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaSettings {
    /// `host:port[,host:port…]`.
    pub brokers: String,
    /// The events topic.
    pub topic: String,
    /// Partitions when the relay creates the topic.
    pub partitions: i32,
    /// Replication factor when the relay creates the topic.
    pub replication_factor: i32,
    /// The projector processes' Kafka group id is `<group_prefix>.projectors`.
    pub group_prefix: String,
    /// A projector process that has not renewed its lease for this long is
    /// dead; its partitions move to the others.
    pub session_timeout_ms: u32,
    /// Extra librdkafka properties (`security.protocol`, `ssl.*`, …).
    pub extra: Vec<(String, String)>,
    /// librdkafka properties whose values are secrets (`sasl.password`):
    /// applied like `extra`, never printed.
    pub secrets: Vec<(String, SecretValue)>,
}

/// A configuration value that must not reach logs or `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(pub String);

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"***\"")
    }
}

impl Default for KafkaSettings {
    fn default() -> Self {
        Self {
            brokers: "127.0.0.1:9092".into(),
            topic: "shopstream.events".into(),
            partitions: 6,
            replication_factor: 1,
            group_prefix: "shopstream".into(),
            session_timeout_ms: 10_000,
            extra: Vec::new(),
            secrets: Vec::new(),
        }
    }
}

/// Errors of the Kafka side.
#[derive(Debug, thiserror::Error)]
pub enum KafkaSideError {
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("kafka topic {topic}: {message}")]
    Topic { topic: String, message: String },
    #[error("{error}; the brokers said: {cause}")]
    Unreachable { error: String, cause: String },
    #[error("undecodable record at {partition}/{offset}: {message}")]
    Undecodable {
        partition: i32,
        offset: i64,
        message: String,
    },
}

/// A client context that keeps the first transport-level error librdkafka
/// reported (TLS handshake, authentication, resolution), and logs each.
#[derive(Clone, Default)]
pub struct TransportErrors {
    last: std::sync::Arc<std::sync::Mutex<Option<String>>>,
}

impl TransportErrors {
    /// The first error reported, if any.
    pub fn last(&self) -> Option<String> {
        self.last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl rdkafka::producer::ProducerContext for TransportErrors {
    type DeliveryOpaque = ();
    fn delivery(&self, _: &rdkafka::message::DeliveryResult<'_>, (): ()) {}
}

impl TransportErrors {
    /// Keeps the first report: the cause ("SSL handshake failed: …"), not
    /// its consequences ("1/1 brokers are down") that follow it.
    fn record(&self, reason: &str) {
        self.last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get_or_insert_with(|| reason.to_string());
    }
}

impl rdkafka::client::ClientContext for TransportErrors {
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(%error, reason, "kafka client error");
        self.record(reason);
    }

    /// librdkafka reports a refused TLS handshake or failed authentication
    /// only as a log line from its broker threads: keep those.
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, facility: &str, message: &str) {
        use rdkafka::config::RDKafkaLogLevel as L;
        match level {
            L::Emerg | L::Alert | L::Critical | L::Error | L::Warning => {
                tracing::warn!(facility, message, "kafka client");
                self.record(message);
            }
            _ => tracing::debug!(facility, message, "kafka client"),
        }
    }
}

impl KafkaSettings {
    /// The common client configuration.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("client.id", "shopstream")
            // Reconnect quickly after a broker comes back.
            .set("reconnect.backoff.ms", "100")
            .set("reconnect.backoff.max.ms", "2000");
        self.apply_extra(&mut config);
        config
    }

    /// The operator's properties last, so they win over the defaults above.
    fn apply_extra(&self, config: &mut ClientConfig) {
        for (k, v) in &self.extra {
            config.set(k, v);
        }
        for (k, v) in &self.secrets {
            config.set(k, &v.0);
        }
    }

    /// The relay's producer: idempotent, `acks=all`, ordered per partition,
    /// and never giving up on a message (the relay bounds what is in flight).
    pub fn producer_config(&self) -> ClientConfig {
        let mut config = self.client_config();
        config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("max.in.flight.requests.per.connection", "5")
            .set("message.timeout.ms", "0")
            .set("linger.ms", "2")
            // The Java client's partitioner: the same key lands on the same
            // partition whichever client wrote it.
            .set("partitioner", "murmur2_random");
        self.apply_extra(&mut config);
        config
    }

    /// A projector process's consumer (`group`: the group id's suffix).
    /// Partitions are assigned explicitly at the offsets the read-model
    /// database holds; nothing is committed to Kafka.
    pub fn consumer_config(&self, group: &str) -> ClientConfig {
        let mut config = self.client_config();
        config
            .set("group.id", format!("{}.{group}", self.group_prefix))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            .set("fetch.wait.max.ms", "10")
            // librdkafka prefetches up to 64 MiB of payload per consumer by
            // default, and holds ~3× that in its own buffers: a projector
            // catching up a backlog held ~415 MiB (three consumers then),
            // ~47 MiB of it librdkafka's with 16 MiB. 4 MiB keeps the folds
            // fed when the queue, once at its bound, is refilled within
            // 10 ms rather than the default second (`--only scaleout`:
            // the same projector CPU, ~20 MiB less at its peak).
            .set("queued.max.messages.kbytes", "4096")
            .set("fetch.queue.backoff.ms", "10");
        self.apply_extra(&mut config);
        config
    }

    /// Creates the topic when missing and returns its partition count.
    ///
    /// # Errors
    /// When the broker cannot be reached or refuses.
    pub async fn ensure_topic(&self) -> Result<i32, KafkaSideError> {
        let admin: AdminClient<DefaultClientContext> = self.client_config().create()?;
        match self.create_topic(&admin).await {
            Ok(n) => Ok(n),
            // A failed admin call only says "timed out"; why the brokers
            // could not be reached (a TLS handshake refused, authentication
            // failed, connection refused) librdkafka only logs: name it.
            Err(e) => Err(match self.transport_error().await {
                Some(cause) => KafkaSideError::Unreachable {
                    error: e.to_string(),
                    cause,
                },
                None => e,
            }),
        }
    }

    /// Connects a throwaway client and returns the first warning or error
    /// librdkafka logs within three seconds, if any.
    async fn transport_error(&self) -> Option<String> {
        let settings = self.clone();
        tokio::task::spawn_blocking(move || {
            let context = TransportErrors::default();
            let producer: rdkafka::producer::BaseProducer<TransportErrors> = settings
                .client_config()
                .create_with_context(context.clone())
                .ok()?;
            let deadline = std::time::Instant::now() + Duration::from_secs(3);
            while context.last().is_none() && std::time::Instant::now() < deadline {
                // Serves the client's queue: its log lines reach `context`.
                producer.poll(Duration::from_millis(100));
            }
            context.last()
        })
        .await
        .ok()
        .flatten()
    }

    async fn create_topic(
        &self,
        admin: &AdminClient<DefaultClientContext>,
    ) -> Result<i32, KafkaSideError> {
        let topic = NewTopic::new(
            &self.topic,
            self.partitions,
            TopicReplication::Fixed(self.replication_factor),
        );
        let options = AdminOptions::new()
            .operation_timeout(Some(Duration::from_secs(5)))
            .request_timeout(Some(Duration::from_secs(5)));
        let results = admin.create_topics([&topic], &options).await?;
        for result in results {
            match result {
                Ok(_) => {
                    tracing::info!(topic = %self.topic, partitions = self.partitions, "created the events topic")
                }
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => {
                    return Err(KafkaSideError::Topic {
                        topic: name,
                        message: code.to_string(),
                    })
                }
            }
        }
        self.partition_count().await
    }

    /// The topic's partition count, from the broker's metadata.
    ///
    /// # Errors
    /// When the broker cannot be reached or has no such topic.
    pub async fn partition_count(&self) -> Result<i32, KafkaSideError> {
        let settings = self.clone();
        tokio::task::spawn_blocking(move || {
            let consumer: rdkafka::consumer::BaseConsumer = settings.client_config().create()?;
            let metadata = rdkafka::consumer::Consumer::fetch_metadata(
                &consumer,
                Some(&settings.topic),
                Duration::from_secs(5),
            )?;
            let topic = metadata
                .topics()
                .iter()
                .find(|t| t.name() == settings.topic)
                .ok_or_else(|| KafkaSideError::Topic {
                    topic: settings.topic.clone(),
                    message: "missing from the broker's metadata".into(),
                })?;
            if let Some(e) = topic.error() {
                return Err(KafkaSideError::Topic {
                    topic: settings.topic.clone(),
                    message: format!("{:?}", RDKafkaErrorCode::from(e)),
                });
            }
            let n = topic.partitions().len() as i32;
            if n == 0 {
                return Err(KafkaSideError::Topic {
                    topic: settings.topic.clone(),
                    message: "has no partitions yet".into(),
                });
            }
            Ok(n)
        })
        .await
        .map_err(|e| KafkaSideError::Topic {
            topic: self.topic.clone(),
            message: e.to_string(),
        })?
    }
}
