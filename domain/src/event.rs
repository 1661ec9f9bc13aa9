/// Version 1 of an event payload; bump when a payload's shape changes and add
/// an upcaster for the old version.
pub const EVENT_VERSION_1: &str = "1";

/// The stable name and version under which an event is stored.
///
/// Names are written out by hand (never derived from `Debug`), so renaming a
/// Rust variant can never orphan stored events.
pub trait EventName {
    /// The stored `event_type`.
    fn name(&self) -> &'static str;
    /// The stored `event_version`: the type's current version
    /// ([`crate::upcast::CURRENT`]).
    fn version(&self) -> &'static str {
        match crate::upcast::current_version(self.name()) {
            1 => EVENT_VERSION_1,
            2 => "2",
            3 => "3",
            _ => "4",
        }
    }
}

/// Implements [`cqrs_es::DomainEvent`] through [`EventName`].
macro_rules! domain_event {
    ($ty:ty) => {
        impl cqrs_es::DomainEvent for $ty {
            fn event_type(&self) -> String {
                $crate::EventName::name(self).to_string()
            }
            fn event_version(&self) -> String {
                $crate::EventName::version(self).to_string()
            }
        }
    };
}
pub(crate) use domain_event;

/// Implements [`cqrs_es::Aggregate`] for a pure aggregate: its inherent
/// `decide` turns a command into events (or a [`crate::DomainError`]) and
/// its inherent `evolve` folds one event. Stored under `$name`.
macro_rules! aggregate {
    ($ty:ty, $name:literal, $command:ty, $event:ty) => {
        impl cqrs_es::Aggregate for $ty {
            const TYPE: &'static str = $name;
            type Command = $command;
            type Event = $event;
            type Error = $crate::DomainError;
            type Services = ();

            async fn handle(
                &mut self,
                command: Self::Command,
                _services: &Self::Services,
                sink: &cqrs_es::event_sink::EventSink<Self>,
            ) -> Result<(), Self::Error> {
                for event in self.decide(command)? {
                    sink.write(event, self).await;
                }
                Ok(())
            }

            fn apply(&mut self, event: Self::Event) {
                self.evolve(event);
            }
        }
    };
}
pub(crate) use aggregate;

/// Any stored event, typed: the payload of one event of the store decoded
/// into its aggregate's event enum. The store boundary decodes each event
/// once into this type; projections, the saga and the relay match on it
/// instead of reading the payload by name.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    User(crate::user::UserEvent),
    Product(crate::product::ProductEvent),
    Order(crate::order::OrderEvent),
    Payment(crate::payment::PaymentEvent),
}

/// Why a stored payload is not a known event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UndecodableEvent {
    /// No aggregate of this type exists.
    #[error("unknown aggregate type '{0}'")]
    UnknownAggregate(String),
    /// The payload does not match any event of its aggregate.
    #[error("{0}")]
    Payload(String),
    /// The stored version is one this release cannot read.
    #[error(transparent)]
    Version(#[from] crate::upcast::UnreadableVersion),
}

impl Event {
    /// Decodes a stored event: its payload, of `event_type@event_version`,
    /// upcast to the current version, into its aggregate's event enum.
    ///
    /// # Errors
    /// [`UndecodableEvent`] for an unknown aggregate type, a version this
    /// release cannot read, or a payload that is none of its events.
    pub fn decode(
        aggregate_type: &str,
        event_type: &str,
        event_version: &str,
        payload: &serde_json::Value,
    ) -> Result<Self, UndecodableEvent> {
        if crate::upcast::chain(event_type, event_version)?.is_empty() {
            return Self::decode_current(aggregate_type, payload);
        }
        let current = crate::upcast::upcast(event_type, event_version, payload.clone())?;
        Self::decode_current(aggregate_type, &current)
    }

    /// [`Event::decode`] from the payload's JSON text: a payload at its
    /// type's current version is read straight into its event, without a
    /// [`serde_json::Value`] in between (what a replay of millions of
    /// events spends most of its decoding on); an older one is upcast.
    ///
    /// # Errors
    /// As [`Event::decode`]; text that is not JSON.
    pub fn decode_text(
        aggregate_type: &str,
        event_type: &str,
        event_version: &str,
        payload: &str,
    ) -> Result<Self, UndecodableEvent> {
        if !crate::upcast::chain(event_type, event_version)?.is_empty() {
            let value: serde_json::Value = Payload::typed(payload)?;
            return Self::decode(aggregate_type, event_type, event_version, &value);
        }
        Self::decode_current(aggregate_type, payload)
    }

    /// Decodes a payload already at its type's current version.
    fn decode_current<'a>(
        aggregate_type: &str,
        payload: impl Payload<'a>,
    ) -> Result<Self, UndecodableEvent> {
        Ok(match aggregate_type {
            "User" => Self::User(payload.typed()?),
            "Product" => Self::Product(payload.typed()?),
            "Order" => Self::Order(payload.typed()?),
            "Payment" => Self::Payment(payload.typed()?),
            other => return Err(UndecodableEvent::UnknownAggregate(other.to_string())),
        })
    }

    /// The customer this event belongs to, when the event itself names
    /// them: a user's own events (its id is the aggregate id, so `None`
    /// here), an order's creation, a payment's initiation.
    pub fn customer_id(&self) -> Option<uuid::Uuid> {
        match self {
            Self::Order(crate::order::OrderEvent::Created { customer_id, .. })
            | Self::Payment(crate::payment::PaymentEvent::Initiated { customer_id, .. }) => {
                Some(*customer_id)
            }
            _ => None,
        }
    }
}

/// A stored payload read into a typed event: a JSON value, or its text.
trait Payload<'a> {
    fn typed<E: serde::Deserialize<'a>>(self) -> Result<E, UndecodableEvent>;
}

impl<'a> Payload<'a> for &'a serde_json::Value {
    fn typed<E: serde::Deserialize<'a>>(self) -> Result<E, UndecodableEvent> {
        // From a borrowed Value: no copy of the payload.
        E::deserialize(self).map_err(|e| UndecodableEvent::Payload(e.to_string()))
    }
}

impl<'a> Payload<'a> for &'a str {
    fn typed<E: serde::Deserialize<'a>>(self) -> Result<E, UndecodableEvent> {
        serde_json::from_str(self).map_err(|e| UndecodableEvent::Payload(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_decodes_by_its_aggregate_type() {
        let payload = serde_json::json!({"UserDeactivated": {"at": "2026-03-14T09:26:53Z"}});
        assert!(matches!(
            Event::decode("User", "UserDeactivated", "1", &payload),
            Ok(Event::User(crate::user::UserEvent::Deactivated { .. }))
        ));
        assert!(matches!(
            Event::decode("Order", "UserDeactivated", "1", &payload),
            Err(UndecodableEvent::Payload(_))
        ));
        assert_eq!(
            Event::decode("Invoice", "UserDeactivated", "1", &payload),
            Err(UndecodableEvent::UnknownAggregate("Invoice".into()))
        );
        assert!(matches!(
            Event::decode("User", "UserDeactivated", "2", &payload),
            Err(UndecodableEvent::Version(_))
        ));
    }
}
