//! Schema evolution: every event type's current version, and the chain of
//! upcasters (pure functions on the stored JSON, one version step each)
//! that bring an older payload up to it before the typed decode.
//!
//! The store boundary runs them for everyone who reads events: aggregates
//! (through cqrs-es's upcaster hook), projections, the relay's Kafka
//! consumers and the saga (through [`crate::Event::decode`]). A stored
//! `type@version` this table cannot bring to its current version (written
//! by a newer release, or of a removed upcaster) is unreadable, and names
//! itself as such.
//!
//! Adding a version: bump the type's entry in [`CURRENT`], add one
//! [`Upcaster`] from the previous version (a pure function, unit-tested on
//! a checked-in fixture of the old payload), and change the Rust variant.

use serde_json::{Map, Value};

/// The version each event type is written at today; types not listed
/// are at version 1.
pub const CURRENT: &[(&str, u32)] = &[
    ("UserRegistered", 3),
    ("UserNameChanged", 2),
    ("UserShippingAddressChanged", 2),
    ("OrderItemAdded", 2),
];

/// One step of an event type's schema: `from` → `from + 1`.
#[derive(Debug)]
pub struct Upcaster {
    pub event_type: &'static str,
    pub from: u32,
    /// What the step does, for the census.
    pub change: &'static str,
    /// The step, on the event's fields (the object inside the payload's
    /// `{"<EventType>": {…}}` tag).
    pub apply: fn(&mut Map<String, Value>),
}

/// Every upcaster, oldest first per type.
pub const UPCASTERS: &[Upcaster] = &[
    Upcaster {
        event_type: "UserRegistered",
        from: 1,
        change: "adds locale (\"en\") and marketing_consent (false)",
        apply: user_registered_v2,
    },
    Upcaster {
        event_type: "UserRegistered",
        from: 2,
        change: SEALED,
        apply: personal_fields_may_be_sealed,
    },
    Upcaster {
        event_type: "UserNameChanged",
        from: 1,
        change: SEALED,
        apply: personal_fields_may_be_sealed,
    },
    Upcaster {
        event_type: "UserShippingAddressChanged",
        from: 1,
        change: SEALED,
        apply: personal_fields_may_be_sealed,
    },
    Upcaster {
        event_type: "OrderItemAdded",
        from: 1,
        change: "adds catalog_version (null: unknown before v2)",
        apply: order_item_added_v2,
    },
];

fn user_registered_v2(fields: &mut Map<String, Value>) {
    fields
        .entry("locale")
        .or_insert_with(|| Value::String("en".into()));
    fields
        .entry("marketing_consent")
        .or_insert(Value::Bool(false));
}

/// The change of the versions that seal personal fields.
const SEALED: &str =
    "personal fields may be sealed; plain values of older versions are read as they are";

/// Older versions hold their personal fields in the clear, which the
/// current version still reads ([`crate::Personal::Clear`]): nothing to
/// change, but a release that predates sealing must not read the new
/// version, so it is one.
fn personal_fields_may_be_sealed(_: &mut Map<String, Value>) {}

fn order_item_added_v2(fields: &mut Map<String, Value>) {
    fields.entry("catalog_version").or_insert(Value::Null);
}

/// The version `event_type` is written at.
pub fn current_version(event_type: &str) -> u32 {
    CURRENT
        .iter()
        .find(|(t, _)| *t == event_type)
        .map_or(1, |(_, v)| *v)
}

/// Why a stored event's version cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{event_type}@{version} cannot be read by this release (it reads {event_type} up to \
     version {current}{chain}): written by a newer release, or its upcaster was removed"
)]
pub struct UnreadableVersion {
    pub event_type: String,
    pub version: String,
    pub current: u32,
    chain: String,
}

/// How this release reads `event_type@version`: `Ok(steps)` (empty: the
/// current version) or why it cannot.
///
/// # Errors
/// [`UnreadableVersion`] for a version that is newer than the current one,
/// not a number, or missing a step.
pub fn chain(event_type: &str, version: &str) -> Result<Vec<&'static Upcaster>, UnreadableVersion> {
    let current = current_version(event_type);
    let unreadable = || UnreadableVersion {
        event_type: event_type.to_string(),
        version: version.to_string(),
        current,
        chain: if current > 1 {
            ", from version 1 by upcasters".to_string()
        } else {
            String::new()
        },
    };
    let from: u32 = version.parse().map_err(|_| unreadable())?;
    if from == 0 || from > current {
        return Err(unreadable());
    }
    (from..current)
        .map(|v| {
            UPCASTERS
                .iter()
                .find(|u| u.event_type == event_type && u.from == v)
                .ok_or_else(unreadable)
        })
        .collect()
}

/// `payload` (`{"<EventType>": {…}}`) of `event_type@version`, brought to
/// the current version.
///
/// # Errors
/// As [`chain`].
pub fn upcast(
    event_type: &str,
    version: &str,
    mut payload: Value,
) -> Result<Value, UnreadableVersion> {
    let steps = chain(event_type, version)?;
    if steps.is_empty() {
        return Ok(payload);
    }
    if let Some(fields) = payload.get_mut(event_type).and_then(Value::as_object_mut) {
        for step in steps {
            (step.apply)(fields);
        }
    }
    Ok(payload)
}

/// A description of how `event_type@version` is read, for the census.
pub fn describe(event_type: &str, version: &str) -> String {
    match chain(event_type, version) {
        Ok(steps) if steps.is_empty() => "current".to_string(),
        Ok(steps) => steps
            .iter()
            .map(|s| format!("v{}→v{}: {}", s.from, s.from + 1, s.change))
            .collect::<Vec<_>>()
            .join("; "),
        Err(_) => "UNREADABLE by this release".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fixture(name: &str) -> Value {
        let text = match name {
            "UserRegistered" => include_str!("../tests/fixtures/v1/UserRegistered.json"),
            "OrderItemAdded" => include_str!("../tests/fixtures/v1/OrderItemAdded.json"),
            _ => unreachable!(),
        };
        serde_json::from_str(text).expect("fixture")
    }

    #[test]
    fn user_registered_v1_gains_locale_and_consent() {
        let v2 = upcast("UserRegistered", "1", fixture("UserRegistered")).unwrap();
        let fields = &v2["UserRegistered"];
        assert_eq!(fields["locale"], "en");
        assert_eq!(fields["marketing_consent"], false);
        assert_eq!(fields["email"], "ada@example.com");
        let event: crate::user::UserEvent = serde_json::from_value(v2).expect("typed v2");
        assert!(matches!(event, crate::user::UserEvent::Registered { .. }));
    }

    #[test]
    fn order_item_added_v1_gains_an_unknown_catalog_version() {
        let v2 = upcast("OrderItemAdded", "1", fixture("OrderItemAdded")).unwrap();
        assert_eq!(v2["OrderItemAdded"]["catalog_version"], Value::Null);
        assert_eq!(v2["OrderItemAdded"]["quantity"], 2);
        let event: crate::order::OrderEvent = serde_json::from_value(v2).expect("typed v2");
        assert!(matches!(event, crate::order::OrderEvent::ItemAdded { .. }));
    }

    #[test]
    fn current_versions_pass_through_and_values_are_never_overwritten() {
        let v2 = json!({"UserRegistered": {"locale": "de-AT", "marketing_consent": true}});
        assert_eq!(upcast("UserRegistered", "2", v2.clone()).unwrap(), v2);
        let mut fields = v2["UserRegistered"].as_object().unwrap().clone();
        user_registered_v2(&mut fields);
        assert_eq!(fields["locale"], "de-AT");
        assert_eq!(upcast("OrderPlaced", "1", json!({})).unwrap(), json!({}));
    }

    #[test]
    fn newer_or_malformed_versions_are_unreadable_and_say_so() {
        for version in ["4", "0", "x", ""] {
            let e = chain("UserRegistered", version).unwrap_err();
            assert!(e
                .to_string()
                .starts_with(&format!("UserRegistered@{version} ")));
        }
        let e = chain("OrderPlaced", "2").unwrap_err();
        assert!(e.to_string().contains("up to version 1"), "{e}");
        assert_eq!(describe("OrderPlaced", "1"), "current");
        assert!(describe("UserRegistered", "1").starts_with("v1→v2"));
        assert_eq!(
            describe("UserRegistered", "7"),
            "UNREADABLE by this release"
        );
    }

    #[test]
    fn plain_personal_fields_of_older_versions_are_read_as_clear() {
        let v3 = upcast("UserRegistered", "1", fixture("UserRegistered")).unwrap();
        let event: crate::user::UserEvent = serde_json::from_value(v3.clone()).unwrap();
        let crate::user::UserEvent::Registered { email, name, .. } = event else {
            panic!("{v3}");
        };
        assert_eq!(email.clear().map(|e| e.as_str()), Some("ada@example.com"));
        assert!(name.clear().is_some());
        for (event_type, from) in [
            ("UserRegistered", "2"),
            ("UserNameChanged", "1"),
            ("UserShippingAddressChanged", "1"),
        ] {
            let payload = json!({ event_type: {"name": "Ada", "at": "2026-01-01T00:00:00Z"} });
            assert_eq!(upcast(event_type, from, payload.clone()).unwrap(), payload);
            assert!(describe(event_type, from).contains("may be sealed"));
        }
    }

    #[test]
    fn every_type_above_version_1_has_a_complete_chain() {
        for (event_type, current) in CURRENT {
            for v in 1..*current {
                assert!(
                    chain(event_type, &v.to_string()).is_ok(),
                    "{event_type}@{v}"
                );
            }
        }
    }
}
