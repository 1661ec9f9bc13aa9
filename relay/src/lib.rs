//! shopstream on Kafka (the distributed profile): the relay that publishes
//! the store's events to the events topic in log order, the record format,
//! and the Kafka source that feeds projections from a consumer group.
//!
//! Kafka distributes; the store decides (invariant 6): commands never wait
//! for Kafka, and rebuilds read the store, never the topic.
//!
//! # Layout
//! - `kafka`: Kafka settings, the events topic, the record format (events and watermarks).
//! - `publish`: [`Relay`]: store → Kafka, one active at a time, its checkpoint and status.
//! - `source`: the Kafka source for projections (membership, offsets, the consumer loop).

pub mod kafka;
mod publish;
pub mod source;

pub use publish::{
    checkpoint, Relay, RelayCheckpoint, RelayConfig, RelayError, RelayState, RelayStatus,
};

use readmodel::{ReadDb, Wake};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Starts the Kafka consumer that feeds every projection (the distributed
/// profile).
pub fn spawn_all(
    settings: &kafka::KafkaSettings,
    db: &ReadDb,
    commits: &Wake,
    shutdown: &watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    vec![tokio::spawn(source::run(
        settings.clone(),
        db.clone(),
        commits.clone(),
        shutdown.clone(),
    ))]
}
