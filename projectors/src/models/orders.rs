//! `order_view`: per order, its customer, items with line totals, total,
//! status, status history with times, and a payment summary.

use std::collections::{BTreeSet, HashMap};

use domain::order::OrderEvent;
use domain::payment::PaymentEvent;
use eventlog::StoredEvent;
use serde::{Deserialize, Serialize};

use super::{at, decode, missing};
use crate::engine::Projection;
use crate::store::{load_docs, save_docs, DocRow, SqlValue, Tx};
use crate::{FoldError, ProjectionError};

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub sku: String,
    pub name: String,
    pub quantity: i64,
    pub unit_price_minor: i64,
    pub line_total_minor: i64,
}

/// One status change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusChange {
    pub status: String,
    pub at: String,
}

/// A failed payment attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    pub payment_id: String,
    pub reason: String,
    pub at: String,
}

/// The payment summary over all of an order's payments.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PaymentSummary {
    /// The latest payment's status.
    pub status: Option<String>,
    pub payment_id: Option<String>,
    pub authorized_minor: i64,
    pub captured_minor: i64,
    pub refunded_minor: i64,
    pub failures: Vec<Failure>,
}

/// One order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderView {
    pub order_id: String,
    pub customer_id: String,
    pub status: String,
    pub currency: String,
    pub total_minor: i64,
    pub item_count: i64,
    pub created_at: String,
    pub updated_at: String,
    pub items: Vec<Item>,
    pub history: Vec<StatusChange>,
    pub payment: PaymentSummary,
    pub carrier: Option<String>,
    pub tracking_number: Option<String>,
    pub cancel_reason: Option<String>,
}

impl DocRow for OrderView {
    const COLUMNS: &'static [&'static str] = &[
        "customer_id",
        "status",
        "currency",
        "total_minor",
        "item_count",
        "created_at",
        "updated_at",
    ];
    fn column_values(&self) -> Vec<SqlValue> {
        vec![
            SqlValue::Text(self.customer_id.clone()),
            SqlValue::Text(self.status.clone()),
            SqlValue::Text(self.currency.clone()),
            SqlValue::Int(self.total_minor),
            SqlValue::Int(self.item_count),
            SqlValue::Text(self.created_at.clone()),
            SqlValue::Text(self.updated_at.clone()),
        ]
    }
}

/// Which order a payment pays.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentOrder {
    pub order_id: String,
}

impl DocRow for PaymentOrder {
    const COLUMNS: &'static [&'static str] = &[];
    fn column_values(&self) -> Vec<SqlValue> {
        Vec::new()
    }
}

/// The batch's working set.
#[derive(Debug, Default)]
pub struct State {
    pub orders: HashMap<String, OrderView>,
    pub payments: HashMap<String, PaymentOrder>,
    dirty_orders: BTreeSet<String>,
    dirty_payments: BTreeSet<String>,
}

impl State {
    fn order(&mut self, id: &str, e: &StoredEvent) -> Result<&mut OrderView, FoldError> {
        self.dirty_orders.insert(id.to_string());
        let order = self
            .orders
            .get_mut(id)
            .ok_or_else(|| missing("order", id, e))?;
        order.updated_at = at(e);
        Ok(order)
    }
}

/// The order view projection.
pub struct OrderViewProjection;

fn recompute(order: &mut OrderView) {
    for item in &mut order.items {
        item.line_total_minor = item.unit_price_minor * item.quantity;
    }
    order.total_minor = order.items.iter().map(|i| i.line_total_minor).sum();
    order.item_count = order.items.iter().map(|i| i.quantity).sum();
}

fn transition(order: &mut OrderView, status: &str, e: &StoredEvent) {
    order.status = status.to_string();
    order.history.push(StatusChange {
        status: status.to_string(),
        at: at(e),
    });
}

fn fold_order(s: &mut State, e: &StoredEvent) -> Result<(), FoldError> {
    let id = e.aggregate_id.as_str();
    match decode::<OrderEvent>(e)? {
        OrderEvent::Created {
            customer_id,
            currency,
            ..
        } => {
            s.dirty_orders.insert(id.to_string());
            s.orders.insert(
                id.to_string(),
                OrderView {
                    order_id: id.to_string(),
                    customer_id: customer_id.to_string(),
                    status: "draft".into(),
                    currency: currency.to_string(),
                    total_minor: 0,
                    item_count: 0,
                    created_at: at(e),
                    updated_at: at(e),
                    items: Vec::new(),
                    history: vec![StatusChange {
                        status: "draft".into(),
                        at: at(e),
                    }],
                    payment: PaymentSummary::default(),
                    carrier: None,
                    tracking_number: None,
                    cancel_reason: None,
                },
            );
        }
        OrderEvent::ItemAdded {
            sku,
            name,
            unit_price,
            quantity,
            ..
        } => {
            let order = s.order(id, e)?;
            order.items.push(Item {
                sku: sku.as_str().to_string(),
                name: name.as_str().to_string(),
                quantity: i64::from(quantity),
                unit_price_minor: unit_price.amount_minor,
                line_total_minor: 0,
            });
            recompute(order);
        }
        OrderEvent::ItemQuantityChanged { sku, quantity, .. } => {
            let order = s.order(id, e)?;
            if let Some(item) = order.items.iter_mut().find(|i| i.sku == sku.as_str()) {
                item.quantity = i64::from(quantity);
            }
            recompute(order);
        }
        OrderEvent::ItemRemoved { sku, .. } => {
            let order = s.order(id, e)?;
            order.items.retain(|i| i.sku != sku.as_str());
            recompute(order);
        }
        OrderEvent::Placed { total, .. } => {
            let order = s.order(id, e)?;
            order.total_minor = total.amount_minor;
            transition(order, "placed", e);
        }
        OrderEvent::Cancelled { reason, .. } => {
            let order = s.order(id, e)?;
            order.cancel_reason = Some(reason.as_str().to_string());
            transition(order, "cancelled", e);
        }
        OrderEvent::Paid { .. } => transition(s.order(id, e)?, "paid", e),
        OrderEvent::Shipped {
            carrier,
            tracking_number,
            ..
        } => {
            let order = s.order(id, e)?;
            order.carrier = Some(carrier.as_str().to_string());
            order.tracking_number = Some(tracking_number.as_str().to_string());
            transition(order, "shipped", e);
        }
        OrderEvent::Delivered { .. } => transition(s.order(id, e)?, "delivered", e),
    }
    Ok(())
}

fn fold_payment(s: &mut State, e: &StoredEvent) -> Result<(), FoldError> {
    let id = e.aggregate_id.as_str();
    let event = decode::<PaymentEvent>(e)?;
    if let PaymentEvent::Initiated { order_id, .. } = &event {
        s.dirty_payments.insert(id.to_string());
        s.payments.insert(
            id.to_string(),
            PaymentOrder {
                order_id: order_id.to_string(),
            },
        );
    }
    let order_id = s
        .payments
        .get(id)
        .map(|p| p.order_id.clone())
        .ok_or_else(|| missing("payment", id, e))?;
    let when = at(e);
    let summary = &mut s.order(&order_id, e)?.payment;
    let status = match event {
        PaymentEvent::Initiated { .. } => {
            summary.payment_id = Some(id.to_string());
            "initiated"
        }
        PaymentEvent::Authorized { amount, .. } => {
            summary.authorized_minor += amount.amount_minor;
            "authorized"
        }
        PaymentEvent::Captured { amount, .. } => {
            summary.captured_minor += amount.amount_minor;
            "captured"
        }
        PaymentEvent::Failed { reason, .. } => {
            summary.failures.push(Failure {
                payment_id: id.to_string(),
                reason: reason.as_str().to_string(),
                at: when,
            });
            "failed"
        }
        PaymentEvent::Refunded { amount, .. } => {
            summary.refunded_minor += amount.amount_minor;
            if summary.refunded_minor >= summary.captured_minor {
                "refunded"
            } else {
                "partially_refunded"
            }
        }
    };
    summary.status = Some(status.to_string());
    Ok(())
}

impl Projection for OrderViewProjection {
    const NAME: &'static str = "order_view";
    const VERSION: i64 = 1;
    const SCHEMA: &'static str = include_str!("../../../migrations/projections/order_view.sql");
    const CHECKSUM_ORDER: &'static [(&'static str, &'static str)] =
        &[("order_view", "order_id"), ("order_payments", "payment_id")];
    type State = State;

    fn handles(event_type: &str) -> bool {
        event_type.starts_with("Order") || event_type.starts_with("Payment")
    }

    async fn load(
        tx: &mut Tx<'_>,
        g: i64,
        events: &[&StoredEvent],
        state: &mut State,
    ) -> Result<(), ProjectionError> {
        let payment_ids: Vec<String> = events
            .iter()
            .filter(|e| e.aggregate_type == "Payment")
            .map(|e| e.aggregate_id.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        state.payments = load_docs(tx, "order_payments", "payment_id", g, &payment_ids).await?;
        let mut order_ids: BTreeSet<String> = events
            .iter()
            .filter(|e| e.aggregate_type == "Order")
            .map(|e| e.aggregate_id.clone())
            .collect();
        order_ids.extend(state.payments.values().map(|p| p.order_id.clone()));
        for e in events.iter().filter(|e| e.event_type == "PaymentInitiated") {
            if let Some(o) = e.payload["PaymentInitiated"]["order_id"].as_str() {
                order_ids.insert(o.to_string());
            }
        }
        state.orders = load_docs(
            tx,
            "order_view",
            "order_id",
            g,
            &order_ids.into_iter().collect::<Vec<_>>(),
        )
        .await?;
        Ok(())
    }

    fn fold(state: &mut State, event: &StoredEvent) -> Result<(), FoldError> {
        match event.aggregate_type.as_str() {
            "Order" => fold_order(state, event),
            "Payment" => fold_payment(state, event),
            _ => Ok(()),
        }
    }

    async fn save(tx: &mut Tx<'_>, g: i64, s: &State) -> Result<(), ProjectionError> {
        save_docs(
            tx,
            "order_view",
            "order_id",
            g,
            s.dirty_orders
                .iter()
                .filter_map(|k| s.orders.get_key_value(k)),
        )
        .await?;
        save_docs(
            tx,
            "order_payments",
            "payment_id",
            g,
            s.dirty_payments
                .iter()
                .filter_map(|k| s.payments.get_key_value(k)),
        )
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::test_events::{story, ORDER, PAYMENT, USER};

    #[test]
    fn an_order_story_folds_into_items_history_and_payment() {
        let mut state = State::default();
        for e in story() {
            OrderViewProjection::fold(&mut state, &e).expect("fold");
        }
        let o = &state.orders[ORDER];
        assert_eq!(
            (
                o.customer_id.as_str(),
                o.status.as_str(),
                o.total_minor,
                o.item_count
            ),
            (USER, "delivered", 1250, 3)
        );
        let items: Vec<(&str, i64, i64, i64)> = o
            .items
            .iter()
            .map(|i| {
                (
                    i.sku.as_str(),
                    i.quantity,
                    i.unit_price_minor,
                    i.line_total_minor,
                )
            })
            .collect();
        assert_eq!(items, [("A", 2, 500, 1000), ("B", 1, 250, 250)]);
        let history: Vec<&str> = o.history.iter().map(|h| h.status.as_str()).collect();
        assert_eq!(history, ["draft", "placed", "paid", "shipped", "delivered"]);
        assert_eq!(o.history[1].at, "2026-03-14T09:05:00.000000Z");
        assert_eq!(o.payment.payment_id.as_deref(), Some(PAYMENT));
        assert_eq!(
            (
                o.payment.authorized_minor,
                o.payment.captured_minor,
                o.payment.refunded_minor
            ),
            (1250, 1250, 250)
        );
        assert_eq!(o.payment.status.as_deref(), Some("partially_refunded"));
        assert_eq!(
            (o.carrier.as_deref(), o.tracking_number.as_deref()),
            (Some("DHL"), Some("T1"))
        );
        assert_eq!(o.updated_at, "2026-03-14T09:12:00.000000Z");
    }
}
