//! The read models. Each is a folder-like module: `fold` (pure: events →
//! row changes in a working set) and `store` (loading and saving that
//! working set); schemas live in `migrations/projections/`.

pub mod analytics;
pub mod customer;
pub mod orders;

use eventlog::StoredEvent;
use serde::de::DeserializeOwned;

use crate::FoldError;

/// Decodes an event's payload into its domain type.
pub(crate) fn decode<E: DeserializeOwned>(event: &StoredEvent) -> Result<E, FoldError> {
    serde_json::from_value(event.payload.clone()).map_err(|e| {
        FoldError::new(format!(
            "{} v{} of {} {} is unreadable: {e}",
            event.event_type, event.event_version, event.aggregate_type, event.aggregate_id
        ))
    })
}

/// The event's recorded time as stored in read models (ISO 8601, UTC, µs).
pub(crate) fn at(event: &StoredEvent) -> String {
    event
        .recorded_at
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

/// The event's recorded day (UTC).
pub(crate) fn day(event: &StoredEvent) -> String {
    event.recorded_at.format("%Y-%m-%d").to_string()
}

/// A referenced row that should exist but does not: the stream is not
/// what this projection understands.
pub(crate) fn missing(what: &str, id: &str, event: &StoredEvent) -> FoldError {
    FoldError::new(format!(
        "{} at position {} refers to unknown {what} {id}",
        event.event_type, event.position
    ))
}
