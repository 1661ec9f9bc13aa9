//! Invariant 8: old events stay readable. Every payload shape ever written
//! is kept as a fixture (one file per version) and must load into today's
//! event types, through the upcasters where the type has moved on; an
//! incompatible change to an event fails here first.

use domain::upcast;
use domain::Event;
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
struct Stored {
    aggregate_type: String,
    event_type: String,
    event_version: String,
    payload: Value,
}

fn stored(text: &str) -> Vec<Stored> {
    serde_json::from_str(text).expect("fixture")
}

/// Loads `s` as the store boundary does (upcast, then typed) and checks
/// that, written back, it is the upcast payload: no silent field renames;
/// decoded from the payload's text instead, it is the same event.
fn load(s: &Stored) {
    let event = Event::decode(
        &s.aggregate_type,
        &s.event_type,
        &s.event_version,
        &s.payload,
    )
    .unwrap_or_else(|e| {
        panic!(
            "stored {} v{} no longer loads: {e}",
            s.event_type, s.event_version
        )
    });
    // Read straight from the stored text (a replay's path), the same event.
    let text = Event::decode_text(
        &s.aggregate_type,
        &s.event_type,
        &s.event_version,
        &s.payload.to_string(),
    );
    assert_eq!(
        text.as_ref(),
        Ok(&event),
        "{} v{} from its text",
        s.event_type,
        s.event_version
    );
    let current =
        upcast::upcast(&s.event_type, &s.event_version, s.payload.clone()).expect("upcast");
    let written = match &event {
        Event::User(e) => serde_json::to_value(e),
        Event::Product(e) => serde_json::to_value(e),
        Event::Order(e) => serde_json::to_value(e),
        Event::Payment(e) => serde_json::to_value(e),
    }
    .expect("serialize");
    assert_eq!(written, current, "{} v{}", s.event_type, s.event_version);
    assert!(
        written.get(&s.event_type).is_some(),
        "{} keeps its name",
        s.event_type
    );
}

#[test]
fn every_stored_v1_payload_loads() {
    let v1 = stored(include_str!("fixtures/stored-events-v1.json"));
    for s in &v1 {
        assert_eq!(s.event_version, "1");
        load(s);
    }
    let mut types: Vec<&str> = v1.iter().map(|s| s.event_type.as_str()).collect();
    types.sort_unstable();
    types.dedup();
    assert_eq!(types.len(), 24, "every event type has a stored sample");
}

/// Loads every sample of `version`, none of which an upcaster rewrites (the
/// steps after it only add fields it has), and checks every type that
/// reached `version` has one.
fn every_payload_of(version: u32, samples: &[Stored]) {
    for s in samples {
        assert_eq!(s.event_version, version.to_string());
        load(s);
        let current =
            upcast::upcast(&s.event_type, &s.event_version, s.payload.clone()).expect("current");
        assert_eq!(
            current, s.payload,
            "a payload with every field is not rewritten"
        );
    }
    for (event_type, current) in upcast::CURRENT {
        if *current >= version {
            assert!(
                samples.iter().any(|s| s.event_type == *event_type),
                "{event_type} v{version} sample"
            );
        }
    }
}

#[test]
fn every_stored_v2_payload_loads_unchanged() {
    every_payload_of(2, &stored(include_str!("fixtures/stored-events-v2.json")));
}

#[test]
fn every_stored_v3_payload_loads_unchanged() {
    let v3 = stored(include_str!("fixtures/stored-events-v3.json"));
    every_payload_of(3, &v3);
    let Ok(Event::User(domain::user::UserEvent::Registered { email, name, .. })) = Event::decode(
        &v3[0].aggregate_type,
        &v3[0].event_type,
        &v3[0].event_version,
        &v3[0].payload,
    ) else {
        panic!("a sealed registration loads");
    };
    assert!(email.is_sealed() && name.is_sealed());
}
