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
    /// The stored `event_version`.
    fn version(&self) -> &'static str {
        EVENT_VERSION_1
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
