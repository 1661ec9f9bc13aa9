//! `order_view`: per order, its customer, items with line totals, total,
//! status, status history with times, and a payment summary.
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

/// The order view projection.
pub struct OrderViewProjection;

impl Projection for OrderViewProjection {
    const NAME: &'static str = "order_view";
    // 2: an index on `updated_at` (the live order feed).
    const VERSION: i64 = 2;
    const SCHEMA: &'static str = include_str!("../../../../migrations/projections/order_view.sql");
    const CHECKSUM_ORDER: &'static [(&'static str, &'static str)] =
        &[("order_view", "order_id"), ("order_payments", "payment_id")];
    type State = State;

    fn handles(event_type: &str) -> bool {
        event_type.starts_with("Order") || event_type.starts_with("Payment")
    }

    fn fold(state: &mut State, event: &StoredEvent) -> Result<(), FoldError> {
        fold::fold(state, event)
    }
}
