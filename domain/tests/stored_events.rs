//! Invariant 8: old events stay readable. Every payload shape ever written
//! is kept as a fixture (one file per version) and must load into today's
//! event types; an incompatible change to an event fails here first.

use cqrs_es::DomainEvent;
use domain::order::OrderEvent;
use domain::payment::PaymentEvent;
use domain::product::ProductEvent;
use domain::user::UserEvent;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
struct Stored {
    aggregate_type: String,
    event_type: String,
    event_version: String,
    payload: Value,
}

fn load<E: DomainEvent + DeserializeOwned>(stored: &Stored) {
    let event: E = serde_json::from_value(stored.payload.clone()).unwrap_or_else(|e| {
        panic!(
            "stored {} v{} no longer loads: {e}",
            stored.event_type, stored.event_version
        )
    });
    assert_eq!(event.event_type(), stored.event_type);
    assert_eq!(event.event_version(), stored.event_version);
    // Written back, the payload is unchanged: no silent field renames.
    assert_eq!(
        serde_json::to_value(&event).expect("serialize"),
        stored.payload,
        "{}",
        stored.event_type
    );
}

#[test]
fn every_stored_v1_payload_loads() {
    let stored: Vec<Stored> =
        serde_json::from_str(include_str!("fixtures/stored-events-v1.json")).expect("fixture");
    for s in &stored {
        match s.aggregate_type.as_str() {
            "User" => load::<UserEvent>(s),
            "Product" => load::<ProductEvent>(s),
            "Order" => load::<OrderEvent>(s),
            "Payment" => load::<PaymentEvent>(s),
            other => panic!("unknown aggregate type {other}"),
        }
    }
    let mut types: Vec<&str> = stored.iter().map(|s| s.event_type.as_str()).collect();
    types.sort_unstable();
    types.dedup();
    assert_eq!(types.len(), 23, "every event type has a stored sample");
}
