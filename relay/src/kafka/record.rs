//! The record format: every record is one stored event (JSON, the shape of
//! [`StoredEvent`], keyed by customer, the envelope repeated in headers) or
//! a watermark (a cursor every partition receives).

use rdkafka::message::{Header, Headers, Message, OwnedHeaders};

use eventlog::{Cursor, StoredEvent};

use super::KafkaSideError;

/// Header naming what a record is: `event` or `watermark`.
pub const KIND_HEADER: &str = "shopstream-kind";

/// What one record carries.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// A stored event.
    Event(Box<StoredEvent>),
    /// Every event of this partition up to the cursor comes before this record.
    Watermark(Cursor),
}

impl Record {
    /// The cursor the record brings its partition to.
    pub fn cursor(&self) -> Cursor {
        match self {
            Self::Event(e) => e.cursor(),
            Self::Watermark(c) => *c,
        }
    }
}

fn metadata_str<'a>(event: &'a StoredEvent, key: &str) -> Option<&'a str> {
    event.metadata.get(key).and_then(|v| v.as_str())
}

/// The headers of an event record.
pub fn event_headers(event: &StoredEvent) -> OwnedHeaders {
    let position = event.position.to_string();
    let txid = event.transaction_id.to_string();
    let sequence = event.sequence.to_string();
    let event_id = event.event_id.to_string();
    let recorded = event.recorded_at.to_rfc3339();
    let mut headers = OwnedHeaders::new_with_capacity(13)
        .insert(header(KIND_HEADER, "event"))
        .insert(header("event-id", &event_id))
        .insert(header("position", &position))
        .insert(header("transaction-id", &txid))
        .insert(header("aggregate-type", &event.aggregate_type))
        .insert(header("aggregate-id", &event.aggregate_id))
        .insert(header("sequence", &sequence))
        .insert(header("event-type", &event.event_type))
        .insert(header("event-version", &event.event_version))
        .insert(header("recorded-at", &recorded));
    for (key, name) in [
        ("correlation_id", "correlation-id"),
        ("causation_id", "causation-id"),
        ("traceparent", "traceparent"),
    ] {
        if let Some(value) = metadata_str(event, key) {
            headers = headers.insert(header(name, value));
        }
    }
    headers
}

fn header<'a>(key: &'a str, value: &'a str) -> Header<'a, &'a str> {
    Header {
        key,
        value: Some(value),
    }
}

/// The headers of a watermark record.
pub fn watermark_headers(cursor: Cursor) -> OwnedHeaders {
    OwnedHeaders::new_with_capacity(3)
        .insert(header(KIND_HEADER, "watermark"))
        .insert(header("position", &cursor.position.to_string()))
        .insert(header("transaction-id", &cursor.transaction_id.to_string()))
}

/// The value of a watermark record.
pub fn watermark_value(cursor: Cursor) -> String {
    serde_json::json!({ "watermark": cursor }).to_string()
}

/// Decodes a record the relay wrote.
///
/// # Errors
/// [`KafkaSideError::Undecodable`] for anything else.
pub fn decode<M: Message>(message: &M) -> Result<Record, KafkaSideError> {
    let undecodable = |m: String| KafkaSideError::Undecodable {
        partition: message.partition(),
        offset: message.offset(),
        message: m,
    };
    let kind = message.headers().and_then(|h| {
        h.iter()
            .find(|h| h.key == KIND_HEADER)
            .and_then(|h| h.value)
            .map(<[u8]>::to_vec)
    });
    let payload = message
        .payload()
        .ok_or_else(|| undecodable("no value".into()))?;
    match kind.as_deref() {
        Some(b"event") => serde_json::from_slice::<StoredEvent>(payload)
            .map(|e| Record::Event(Box::new(e)))
            .map_err(|e| undecodable(e.to_string())),
        Some(b"watermark") => {
            #[derive(serde::Deserialize)]
            struct Watermark {
                watermark: Cursor,
            }
            serde_json::from_slice::<Watermark>(payload)
                .map(|w| Record::Watermark(w.watermark))
                .map_err(|e| undecodable(e.to_string()))
        }
        _ => Err(undecodable(format!("no {KIND_HEADER} header"))),
    }
}

/// The partition key of an event whose customer is `customer`, or of an
/// event that belongs to no customer (products: their own id).
pub fn partition_key(event: &StoredEvent, customer: Option<&str>) -> String {
    customer.map_or_else(|| event.aggregate_id.clone(), str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::message::OwnedMessage;
    use rdkafka::Timestamp;

    fn event() -> StoredEvent {
        let payload = serde_json::json!({"OrderPlaced": {"item_count": 1}});
        StoredEvent {
            event: domain::Event::decode("Order", "OrderPlaced", "1", &payload),
            position: 42,
            transaction_id: 7,
            event_id: uuid::Uuid::from_u128(9),
            aggregate_type: "Order".into(),
            aggregate_id: "o-1".into(),
            sequence: 3,
            event_type: "OrderPlaced".into(),
            event_version: "1".into(),
            payload,
            metadata: serde_json::json!({"correlation_id": "c-1", "causation_id": "e-0"}),
            recorded_at: chrono::Utc::now(),
        }
    }

    fn message(value: String, headers: OwnedHeaders) -> OwnedMessage {
        OwnedMessage::new(
            Some(value.into_bytes()),
            Some(b"k".to_vec()),
            "t".into(),
            Timestamp::NotAvailable,
            2,
            17,
            Some(headers),
        )
    }

    #[test]
    fn events_and_watermarks_round_trip() {
        let e = event();
        let m = message(serde_json::to_string(&e).unwrap(), event_headers(&e));
        assert_eq!(decode(&m).unwrap(), Record::Event(Box::new(e.clone())));
        let names: Vec<String> = m
            .headers()
            .unwrap()
            .iter()
            .map(|h| h.key.to_string())
            .collect();
        for expected in [
            "event-id",
            "position",
            "aggregate-type",
            "aggregate-id",
            "sequence",
            "event-type",
            "event-version",
            "recorded-at",
            "correlation-id",
            "causation-id",
        ] {
            assert!(names.iter().any(|n| n == expected), "{expected} missing");
        }
        let c = Cursor {
            transaction_id: 5,
            position: 6,
        };
        let w = message(watermark_value(c), watermark_headers(c));
        assert_eq!(decode(&w).unwrap(), Record::Watermark(c));
    }

    #[test]
    fn consumers_upcast_old_versions_like_the_store_does() {
        let mut e = event();
        e.aggregate_type = "User".into();
        e.event_type = "UserRegistered".into();
        e.event_version = "1".into();
        e.payload = serde_json::json!({"UserRegistered": {
            "user_id": "0f3c2a4e-8d1b-4c5e-9a7f-2b6d8e1c3a50", "email": "ada@example.com",
            "name": "Ada", "at": "2025-03-14T09:26:53Z"}});
        let m = message(serde_json::to_string(&e).unwrap(), event_headers(&e));
        let Ok(Record::Event(decoded)) = decode(&m) else {
            panic!("not an event record")
        };
        let Ok(domain::Event::User(domain::user::UserEvent::Registered { locale, .. })) =
            &decoded.event
        else {
            panic!("not upcast: {:?}", decoded.event)
        };
        assert_eq!(locale.as_str(), "en");
        // A version this release cannot read is an unreadable event, named.
        e.event_version = "9".into();
        let m = message(serde_json::to_string(&e).unwrap(), event_headers(&e));
        let Ok(Record::Event(decoded)) = decode(&m) else {
            panic!("not an event record")
        };
        let error = decoded.typed().unwrap_err();
        assert!(error.contains("UserRegistered@9 cannot be read"), "{error}");
    }

    #[test]
    fn foreign_records_are_refused() {
        let m = message("{}".into(), OwnedHeaders::new());
        assert!(matches!(
            decode(&m),
            Err(KafkaSideError::Undecodable {
                partition: 2,
                offset: 17,
                ..
            })
        ));
    }
}
