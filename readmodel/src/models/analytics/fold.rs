//! The pure fold of `analytics`: events → changes in the batch's working set.

use std::collections::BTreeMap;

use domain::order::OrderEvent;
use domain::payment::PaymentEvent;
use domain::user::UserEvent;
use eventlog::StoredEvent;

use crate::db::Counters;
use crate::db::Rows;
use crate::models::{day, order_event, payment_event, user_event};
use crate::FoldError;

use super::types::*;

/// The batch's working set: order memos and counter deltas.
#[derive(Debug)]
pub struct State {
    pub orders: Rows<OrderMemo>,
    pub daily: Counters,
    pub customers: Counters,
    pub products: Counters,
    /// `products` per month: what a range's whole months read.
    pub products_monthly: Counters,
    /// Whether the generation being written has the roll-up table (one
    /// built at version 1 does not, until it is rebuilt).
    pub rollup: bool,
    /// The generation `rollup` was read for (a working set a bulk fill
    /// keeps across batches asks once).
    pub rollup_of: Option<i64>,
    pub payments: Counters,
    pub funnel: Counters,
}

impl Default for State {
    fn default() -> Self {
        Self {
            orders: Rows::default(),
            daily: Counters::new(
                "analytics_daily",
                &["day", "currency"],
                &[
                    "revenue_minor",
                    "orders_placed",
                    "orders_paid",
                    "orders_cancelled",
                    "placed_value_minor",
                ],
            ),
            customers: Counters::new("analytics_customers", &["day"], &["new_customers"]),
            products: Counters::new(
                "analytics_products",
                &["day", "sku", "currency", "name"],
                &["quantity", "revenue_minor"],
            ),
            products_monthly: Counters::new(
                "analytics_products_monthly",
                &["month", "sku", "currency", "name"],
                &["quantity", "revenue_minor"],
            ),
            rollup: true,
            rollup_of: None,
            payments: Counters::new(
                "analytics_payments",
                &["day", "outcome", "reason"],
                &["count"],
            ),
            funnel: Counters::new("analytics_funnel", &["day", "stage"], &["count"]),
        }
    }
}

impl State {
    fn memo(&mut self, id: &str, e: &StoredEvent) -> Result<&mut OrderMemo, FoldError> {
        self.orders.existing("order", id, e)
    }
}

fn fold_order(s: &mut State, e: &StoredEvent) -> Result<(), FoldError> {
    let id = e.aggregate_id.as_str();
    let d = day(e);
    match order_event(e)? {
        OrderEvent::Created { currency, .. } => {
            s.orders.insert(
                id.to_string(),
                OrderMemo {
                    currency: currency.to_string(),
                    lines: BTreeMap::new(),
                    names: BTreeMap::new(),
                },
            );
            s.funnel.add(&[&d, "created"], "count", 1);
        }
        OrderEvent::ItemAdded {
            sku,
            name,
            unit_price,
            quantity,
            ..
        } => {
            let memo = s.memo(id, e)?;
            memo.lines.insert(
                sku.as_str().to_string(),
                (unit_price.amount_minor, i64::from(*quantity)),
            );
            memo.names
                .insert(sku.as_str().to_string(), name.as_str().to_string());
        }
        OrderEvent::ItemQuantityChanged { sku, quantity, .. } => {
            if let Some(line) = s.memo(id, e)?.lines.get_mut(sku.as_str()) {
                line.1 = i64::from(*quantity);
            }
        }
        OrderEvent::ItemRemoved { sku, .. } => {
            s.memo(id, e)?.lines.remove(sku.as_str());
        }
        OrderEvent::Placed { total, .. } => {
            let c = total.currency.to_string();
            s.daily.add(&[&d, &c], "orders_placed", 1);
            s.daily
                .add(&[&d, &c], "placed_value_minor", total.amount_minor);
            s.funnel.add(&[&d, "placed"], "count", 1);
        }
        OrderEvent::Cancelled { .. } => {
            let c = s.memo(id, e)?.currency.clone();
            s.daily.add(&[&d, &c], "orders_cancelled", 1);
            s.funnel.add(&[&d, "cancelled"], "count", 1);
        }
        OrderEvent::Paid { .. } => {
            let memo = s.memo(id, e)?.clone();
            s.daily.add(&[&d, &memo.currency], "orders_paid", 1);
            let month = d.get(..7).unwrap_or(&d);
            for (sku, (price, qty)) in &memo.lines {
                let name = memo.names.get(sku).map_or("", String::as_str);
                for (counters, when) in [
                    (&mut s.products, d.as_str()),
                    (&mut s.products_monthly, month),
                ] {
                    let key = [when, sku.as_str(), memo.currency.as_str(), name];
                    counters.add(&key, "quantity", *qty);
                    counters.add(&key, "revenue_minor", price * qty);
                }
            }
            s.funnel.add(&[&d, "paid"], "count", 1);
        }
        OrderEvent::Shipped { .. } => s.funnel.add(&[&d, "shipped"], "count", 1),
        OrderEvent::Delivered { .. } => s.funnel.add(&[&d, "delivered"], "count", 1),
    }
    Ok(())
}

fn fold_payment(s: &mut State, e: &StoredEvent) -> Result<(), FoldError> {
    let d = day(e);
    match payment_event(e)? {
        PaymentEvent::Initiated { .. } => s.payments.add(&[&d, "initiated", ""], "count", 1),
        PaymentEvent::Authorized { .. } => s.payments.add(&[&d, "authorized", ""], "count", 1),
        PaymentEvent::Captured { amount, .. } => {
            s.payments.add(&[&d, "captured", ""], "count", 1);
            s.daily.add(
                &[&d, amount.currency.as_str()],
                "revenue_minor",
                amount.amount_minor,
            );
        }
        PaymentEvent::Failed { reason, .. } => {
            s.payments.add(&[&d, "failed", reason.as_str()], "count", 1)
        }
        PaymentEvent::Refunded { amount, .. } => {
            s.payments.add(&[&d, "refunded", ""], "count", 1);
            s.daily.add(
                &[&d, amount.currency.as_str()],
                "revenue_minor",
                -amount.amount_minor,
            );
        }
    }
    Ok(())
}

pub(super) fn fold(state: &mut State, event: &StoredEvent) -> Result<(), FoldError> {
    match event.aggregate_type.as_str() {
        "User" => {
            if let UserEvent::Registered { .. } = user_event(event)? {
                state.customers.add(&[&day(event)], "new_customers", 1);
            }
            Ok(())
        }
        "Order" => fold_order(state, event),
        "Payment" => fold_payment(state, event),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::analytics::Analytics;
    use crate::models::test_events::story;
    use crate::Projection;

    fn row<'a>(c: &'a Counters, key: &[&str]) -> &'a Vec<i64> {
        c.get(key).expect("counted")
    }

    #[test]
    fn a_story_adds_up_in_the_counters() {
        let mut state = State::default();
        for e in story() {
            Analytics::fold(&mut state, &e).expect("fold");
        }
        let d = "2026-03-14";
        // revenue, placed, paid, cancelled, placed value
        assert_eq!(row(&state.daily, &[d, "EUR"]), &vec![1000, 1, 1, 0, 1250]);
        assert_eq!(row(&state.customers, &[d]), &vec![1]);
        assert_eq!(
            row(&state.products, &[d, "A", "EUR", "Tee"]),
            &vec![2, 1000]
        );
        assert_eq!(row(&state.products, &[d, "B", "EUR", "Mug"]), &vec![1, 250]);
        assert_eq!(
            row(&state.products_monthly, &["2026-03", "A", "EUR", "Tee"]),
            &vec![2, 1000]
        );
        for stage in ["created", "placed", "paid", "shipped", "delivered"] {
            assert_eq!(row(&state.funnel, &[d, stage]), &vec![1], "{stage}");
        }
        for outcome in ["initiated", "authorized", "captured", "refunded"] {
            assert_eq!(
                row(&state.payments, &[d, outcome, ""]),
                &vec![1],
                "{outcome}"
            );
        }
    }
}
