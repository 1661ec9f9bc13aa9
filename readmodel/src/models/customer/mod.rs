//! `customer_view`: per user, profile, status, order counts by status,
//! lifetime spend per currency (captured − refunded), last order time, and
//! the customer's orders (`customer_orders`).
//!
//! # Layout
//! - `types`: its rows and documents (shared with the query side).
//! - `fold`: the pure fold and the batch's working set.
//! - `store`: its SQL: the working set loading and saving itself, and the query side's reads.

mod fold;
pub mod store;
mod types;

use eventlog::StoredEvent;

pub use fold::State;
pub use types::*;

use crate::{FoldError, Projection};

/// The customer view projection.
pub struct CustomerView;

impl Projection for CustomerView {
    const NAME: &'static str = "customer_view";
    const VERSION: i64 = 2;
    const SCHEMA: &'static str =
        include_str!("../../../../migrations/projections/customer_view.sql");
    const CHECKSUM_ORDER: &'static [(&'static str, &'static str)] = &[
        ("customer_view", "user_id"),
        ("customer_orders", "order_id"),
        ("customer_payments", "payment_id"),
    ];
    type State = State;

    const PERSONAL: bool = true;

    fn handles(event_type: &str) -> bool {
        event_type.starts_with("User")
            || event_type.starts_with("Order")
            || event_type.starts_with("Payment")
    }

    fn fold(state: &mut State, event: &StoredEvent) -> Result<(), FoldError> {
        fold::fold(state, event)
    }
}
