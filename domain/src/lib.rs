//! The shopstream domain: users, a product catalog, orders and payments as
//! cqrs-es [`Aggregate`](cqrs_es::Aggregate)s.
//!
//! Everything here is pure and deterministic. Aggregates decide from their
//! state and a command; commands carry the time, the ids and any facts about
//! other aggregates (a product's price, an order's total) that a rule needs.
//! The application layer loads those facts; the domain only judges them.
//!
//! # Layout
//! - `error`: [`DomainError`], one rule violation with a stable rule code.
//! - `money`: [`Currency`] (ISO 4217) and [`Money`] (integer minor units).
//! - `values`: newtypes parsed at the edge: [`Email`], [`PersonName`], [`Sku`],
//!   [`ProductName`], [`Reason`], [`ShippingAddress`], [`Carrier`], [`TrackingNumber`].
//! - `personal`: [`Personal`], a personal value stored sealed with its owner's key.
//! - `user`: the [`User`] aggregate.
//! - `product`: the [`Product`] aggregate (the catalog that prices order lines).
//! - `order`: the [`Order`] aggregate.
//! - `payment`: the [`Payment`] aggregate.
//! - `event`: [`EventName`], the stable name and version of every stored event;
//!   [`Event`], any stored event decoded into its aggregate's event enum.

mod error;
mod event;
mod money;
pub mod order;
pub mod payment;
mod personal;
pub mod product;
pub mod upcast;
pub mod user;
mod values;

pub use error::{DomainError, ErrorKind};
pub use event::{Event, EventName, UndecodableEvent, EVENT_VERSION_1};
pub use money::{Currency, Money, ISO_4217, MAX_AMOUNT_MINOR};
pub use order::Order;
pub use payment::Payment;
pub use personal::{Personal, Sealed};
pub use product::Product;
pub use user::User;
pub use values::{
    Carrier, Email, Locale, PersonName, ProductName, Reason, ShippingAddress, Sku, TrackingNumber,
    ValidationError,
};

#[cfg(test)]
mod test_support;
