//! The pure fold of `orders`: events → changes in the batch's working set.

use domain::order::OrderEvent;
use domain::payment::PaymentEvent;
use eventlog::StoredEvent;

use crate::db::Rows;
use crate::models::{at, missing, order_event, payment_event};
use crate::FoldError;

use super::types::*;

/// The batch's working set.
#[derive(Debug, Default)]
pub struct State {
    pub orders: Rows<OrderView>,
    pub payments: Rows<PaymentOrder>,
}

impl State {
    fn order(&mut self, id: &str, e: &StoredEvent) -> Result<&mut OrderView, FoldError> {
        let order = self.orders.existing("order", id, e)?;
        order.updated_at = at(e);
        Ok(order)
    }
}

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

/// A new order: a draft without lines.
fn created(id: &str, customer_id: &str, currency: &domain::Currency, e: &StoredEvent) -> OrderView {
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
    }
}

fn fold_order(s: &mut State, e: &StoredEvent) -> Result<(), FoldError> {
    let id = e.aggregate_id.as_str();
    match order_event(e)? {
        OrderEvent::Created {
            customer_id,
            currency,
            ..
        } => {
            s.orders.insert(
                id.to_string(),
                created(id, &customer_id.to_string(), currency, e),
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
                quantity: i64::from(*quantity),
                unit_price_minor: unit_price.amount_minor,
                line_total_minor: 0,
            });
            recompute(order);
        }
        OrderEvent::ItemQuantityChanged { sku, quantity, .. } => {
            let order = s.order(id, e)?;
            if let Some(item) = order.items.iter_mut().find(|i| i.sku == sku.as_str()) {
                item.quantity = i64::from(*quantity);
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
    let event = payment_event(e)?;
    if let PaymentEvent::Initiated { order_id, .. } = &event {
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

pub(super) fn fold(state: &mut State, event: &StoredEvent) -> Result<(), FoldError> {
    match event.aggregate_type.as_str() {
        "Order" => fold_order(state, event),
        "Payment" => fold_payment(state, event),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::orders::OrderViewProjection;
    use crate::models::test_events::{story, ORDER, PAYMENT, USER};
    use crate::Projection;

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
