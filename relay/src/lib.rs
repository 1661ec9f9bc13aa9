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

use readmodel::{Analytics, CustomerView, OrderViewProjection, Projection, ReadDb, Wake};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Starts every projection's Kafka source and the process's one consumer
/// that feeds them (the distributed profile).
pub fn spawn_all(
    settings: &kafka::KafkaSettings,
    db: &ReadDb,
    commits: &Wake,
    shutdown: &watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    fn one<P: Projection>(
        (settings, db, commits): (&kafka::KafkaSettings, &ReadDb, &Wake),
        feed: source::Subscription,
        shutdown: &watch::Receiver<bool>,
    ) -> JoinHandle<()> {
        let (settings, db, with) = (settings.clone(), db.clone(), (commits.clone(), feed));
        tokio::spawn(source::run::<P>(settings, db, with, shutdown.clone()))
    }
    // One consumer for the three projections (see `source::feed`).
    let ([customers, orders, analytics], feed) = source::spawn_feed(settings, shutdown);
    let with = (settings, db, commits);
    vec![
        one::<CustomerView>(with, customers, shutdown),
        one::<OrderViewProjection>(with, orders, shutdown),
        one::<Analytics>(with, analytics, shutdown),
        feed,
    ]
}
