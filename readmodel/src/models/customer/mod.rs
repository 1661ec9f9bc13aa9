//! `customer_view`: per user, profile, status, order counts by status,
//! lifetime spend per currency (captured − refunded), last order time, and
//! the customer's orders (`customer_orders`).
//!
//! # Layout
//! - `types`: its rows and documents (shared with the query side).
//! - `fold`: the pure fold and the batch's working set.
//! - `store`: its SQL.

mod fold;
pub mod store;
mod types;

use eventlog::StoredEvent;

pub use fold::State;
pub use types::*;

use crate::db::Tx;
use crate::{FoldError, Projection, ProjectionError};

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

    fn handles(event_type: &str) -> bool {
        event_type.starts_with("User")
            || event_type.starts_with("Order")
            || event_type.starts_with("Payment")
    }

    async fn load(
        tx: &mut Tx<'_>,
        g: i64,
        events: &[&StoredEvent],
        state: &mut State,
    ) -> Result<(), ProjectionError> {
        store::load(tx, g, events, state).await
    }

    fn fold(state: &mut State, event: &StoredEvent) -> Result<(), FoldError> {
        fold::fold(state, event)
    }

    async fn save(tx: &mut Tx<'_>, g: i64, state: &State) -> Result<(), ProjectionError> {
        store::save(tx, g, state).await
    }
}
