//! `analytics`: additive counters by recorded day — revenue (captured −
//! refunded) and order counts per currency, new customers, quantity and
//! revenue per product (counted when paid; also rolled up per month),
//! payment outcomes, the funnel.
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

/// The analytics projection.
pub struct Analytics;

impl Projection for Analytics {
    const NAME: &'static str = "analytics";
    // 2: the monthly product roll-up (`analytics_products_monthly`).
    const VERSION: i64 = 2;
    const SCHEMA: &'static str = include_str!("../../../../migrations/projections/analytics.sql");
    const CHECKSUM_ORDER: &'static [(&'static str, &'static str)] = &[
        ("analytics_daily", "day, currency"),
        ("analytics_customers", "day"),
        ("analytics_products", "day, sku, currency, name"),
        ("analytics_products_monthly", "month, sku, currency, name"),
        ("analytics_payments", "day, outcome, reason"),
        ("analytics_funnel", "day, stage"),
        ("analytics_orders", "order_id"),
    ];
    type State = State;

    fn handles(event_type: &str) -> bool {
        event_type == "UserRegistered"
            || event_type.starts_with("Order")
            || event_type.starts_with("Payment")
    }

    fn fold(state: &mut State, event: &StoredEvent) -> Result<(), FoldError> {
        fold::fold(state, event)
    }
}
