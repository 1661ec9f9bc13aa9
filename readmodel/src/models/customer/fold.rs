//! The pure fold of `customer`: events → changes in the batch's working set.

use std::collections::BTreeMap;

use domain::order::OrderEvent;
use domain::payment::PaymentEvent;
use domain::user::UserEvent;
use domain::Personal;
use eventlog::StoredEvent;

use crate::db::Rows;
use crate::models::{at, missing, order_event, payment_event, user_event};
use crate::FoldError;

use super::types::*;

/// The batch's working set.
#[derive(Debug, Default)]
pub struct State {
    pub customers: Rows<Customer>,
    pub orders: Rows<CustomerOrder>,
    pub payments: Rows<PaymentLink>,
}

impl State {
    fn customer(&mut self, id: &str, e: &StoredEvent) -> Result<&mut Customer, FoldError> {
        let customer = self.customers.existing("customer", id, e)?;
        if let Some(last) = customer.last_cursor.filter(|last| *last > e.cursor()) {
            return Err(FoldError::new(format!(
                "customer {id}: {} at position {} arrived after position {} (out of commit order)",
                e.event_type, e.position, last.position
            )));
        }
        customer.last_cursor = Some(e.cursor());
        Ok(customer)
    }

    fn order(&mut self, id: &str, e: &StoredEvent) -> Result<&mut CustomerOrder, FoldError> {
        self.orders.existing("order", id, e)
    }

    /// Moves an order to `status`, keeping the customer's counts in step.
    fn set_status(
        &mut self,
        order_id: &str,
        status: &str,
        e: &StoredEvent,
    ) -> Result<(), FoldError> {
        let order = self.order(order_id, e)?;
        let (old, customer_id) = (
            std::mem::replace(&mut order.status, status.to_string()),
            order.customer_id.clone(),
        );
        let customer = self.customer(&customer_id, e)?;
        *customer.counts_by_status.entry(old.clone()).or_default() -= 1;
        if customer.counts_by_status.get(&old) == Some(&0) {
            customer.counts_by_status.remove(&old);
        }
        *customer
            .counts_by_status
            .entry(status.to_string())
            .or_default() += 1;
        Ok(())
    }

    fn payment_order(
        &mut self,
        payment_id: &str,
        e: &StoredEvent,
    ) -> Result<PaymentLink, FoldError> {
        self.payments.touch(payment_id);
        self.payments
            .get(payment_id)
            .cloned()
            .ok_or_else(|| missing("payment", payment_id, e))
    }
}

fn recompute(order: &mut CustomerOrder) {
    order.total_minor = order.lines.values().map(|(price, qty)| price * qty).sum();
    order.item_count = order.lines.values().map(|(_, qty)| qty).sum();
}

/// What the view shows for a forgotten person's name and address.
pub const FORGOTTEN: &str = "(forgotten)";

/// A personal value as the view shows it: the value, or the placeholder
/// once its owner is forgotten. A value still sealed means this process
/// has no keys to open it: stop rather than show it wrongly.
fn shown<T>(
    value: &Personal<T>,
    text: impl Fn(&T) -> String,
    e: &StoredEvent,
) -> Result<String, FoldError> {
    match value {
        Personal::Clear(v) => Ok(text(v)),
        Personal::Forgotten => Ok(FORGOTTEN.to_string()),
        Personal::Sealed(_) => Err(sealed(e)),
    }
}

fn sealed(e: &StoredEvent) -> FoldError {
    FoldError::new(format!(
        "{} of user {} holds sealed personal data and this process has no data protection keys",
        e.event_type, e.aggregate_id
    ))
}

fn fold_user(s: &mut State, e: &StoredEvent) -> Result<(), FoldError> {
    let id = e.aggregate_id.as_str();
    match user_event(e)? {
        UserEvent::Registered { email, name, .. } => {
            s.customers.insert(
                id.to_string(),
                Customer {
                    user_id: id.to_string(),
                    email: shown(email, |v| v.as_str().to_string(), e)?,
                    name: shown(name, |v| v.as_str().to_string(), e)?,
                    status: "active".into(),
                    registered_at: at(e),
                    order_count: 0,
                    last_order_at: None,
                    counts_by_status: BTreeMap::new(),
                    lifetime_spend: BTreeMap::new(),
                    shipping_address: None,
                    last_cursor: Some(e.cursor()),
                },
            );
        }
        UserEvent::NameChanged { name, .. } => {
            s.customer(id, e)?.name = shown(name, |v| v.as_str().to_string(), e)?;
        }
        UserEvent::ShippingAddressChanged {
            shipping_address, ..
        } => {
            s.customer(id, e)?.shipping_address = match shipping_address {
                Personal::Clear(a) => Some(a.clone()),
                Personal::Forgotten => None,
                Personal::Sealed(_) => return Err(sealed(e)),
            };
        }
        UserEvent::Deactivated { .. } => s.customer(id, e)?.status = "deactivated".into(),
        UserEvent::Reactivated { .. } => s.customer(id, e)?.status = "active".into(),
        // Who signs in as the customer changes nothing the view shows.
        UserEvent::IdentityLinked { .. } => {}
        UserEvent::Forgotten { .. } => {
            let customer = s.customer(id, e)?;
            customer.email = FORGOTTEN.to_string();
            customer.name = FORGOTTEN.to_string();
            customer.shipping_address = None;
            customer.status = "forgotten".into();
        }
    }
    Ok(())
}

fn fold_order(s: &mut State, e: &StoredEvent) -> Result<(), FoldError> {
    let id = e.aggregate_id.as_str();
    match order_event(e)? {
        OrderEvent::Created {
            customer_id,
            currency,
            ..
        } => {
            let customer_id = customer_id.to_string();
            let customer = s.customer(&customer_id, e)?;
            customer.order_count += 1;
            *customer.counts_by_status.entry("draft".into()).or_default() += 1;
            s.orders.insert(
                id.to_string(),
                CustomerOrder {
                    order_id: id.to_string(),
                    customer_id,
                    status: "draft".into(),
                    currency: currency.to_string(),
                    total_minor: 0,
                    item_count: 0,
                    created_at: at(e),
                    placed_at: None,
                    payment_status: None,
                    lines: BTreeMap::new(),
                },
            );
        }
        OrderEvent::ItemAdded {
            sku,
            unit_price,
            quantity,
            ..
        } => {
            let order = s.order(id, e)?;
            order.lines.insert(
                sku.as_str().to_string(),
                (unit_price.amount_minor, i64::from(*quantity)),
            );
            recompute(order);
        }
        OrderEvent::ItemQuantityChanged { sku, quantity, .. } => {
            let order = s.order(id, e)?;
            if let Some(line) = order.lines.get_mut(sku.as_str()) {
                line.1 = i64::from(*quantity);
            }
            recompute(order);
        }
        OrderEvent::ItemRemoved { sku, .. } => {
            let order = s.order(id, e)?;
            order.lines.remove(sku.as_str());
            recompute(order);
        }
        OrderEvent::Placed {
            total, item_count, ..
        } => {
            let when = at(e);
            let order = s.order(id, e)?;
            order.total_minor = total.amount_minor;
            order.item_count = i64::from(*item_count);
            order.placed_at = Some(when.clone());
            let customer_id = order.customer_id.clone();
            s.set_status(id, "placed", e)?;
            s.customer(&customer_id, e)?.last_order_at = Some(when);
        }
        OrderEvent::Cancelled { .. } => s.set_status(id, "cancelled", e)?,
        OrderEvent::Paid { .. } => s.set_status(id, "paid", e)?,
        OrderEvent::Shipped { .. } => s.set_status(id, "shipped", e)?,
        OrderEvent::Delivered { .. } => s.set_status(id, "delivered", e)?,
    }
    Ok(())
}

fn fold_payment(s: &mut State, e: &StoredEvent) -> Result<(), FoldError> {
    let id = e.aggregate_id.as_str();
    let event = payment_event(e)?;
    if let PaymentEvent::Initiated {
        order_id,
        customer_id,
        amount,
        ..
    } = &event
    {
        s.payments.insert(
            id.to_string(),
            PaymentLink {
                order_id: order_id.to_string(),
                customer_id: customer_id.to_string(),
                currency: amount.currency.to_string(),
                captured_minor: 0,
                refunded_minor: 0,
            },
        );
    }
    let link = s.payment_order(id, e)?;
    let status = match &event {
        PaymentEvent::Initiated { .. } => "initiated".to_string(),
        PaymentEvent::Authorized { .. } => "authorized".to_string(),
        PaymentEvent::Captured { amount, .. } => {
            *s.customer(&link.customer_id, e)?
                .lifetime_spend
                .entry(amount.currency.to_string())
                .or_default() += amount.amount_minor;
            if let Some(p) = s.payments.get_mut(id) {
                p.captured_minor += amount.amount_minor;
            }
            "captured".to_string()
        }
        PaymentEvent::Failed { .. } => "failed".to_string(),
        PaymentEvent::Refunded { amount, .. } => {
            *s.customer(&link.customer_id, e)?
                .lifetime_spend
                .entry(amount.currency.to_string())
                .or_default() -= amount.amount_minor;
            let p = s.payments.existing("payment", id, e)?;
            p.refunded_minor += amount.amount_minor;
            if p.refunded_minor >= p.captured_minor {
                "refunded".to_string()
            } else {
                "partially_refunded".to_string()
            }
        }
    };
    s.order(&link.order_id, e)?.payment_status = Some(status);
    Ok(())
}

pub(super) fn fold(state: &mut State, event: &StoredEvent) -> Result<(), FoldError> {
    match event.aggregate_type.as_str() {
        "User" => fold_user(state, event),
        "Order" => fold_order(state, event),
        "Payment" => fold_payment(state, event),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::customer::CustomerView;
    use crate::models::test_events::{event, story, ORDER, USER};
    use crate::Projection;

    fn fold_all(events: &[StoredEvent]) -> State {
        let mut state = State::default();
        for e in events {
            CustomerView::fold(&mut state, e).expect("fold");
        }
        state
    }

    #[test]
    fn a_customer_story_folds_into_one_row() {
        let state = fold_all(&story());
        let c = &state.customers[USER];
        assert_eq!(
            (c.email.as_str(), c.status.as_str(), c.order_count),
            ("ada@example.com", "active", 1)
        );
        assert_eq!(c.registered_at, "2026-03-14T09:00:00.000000Z");
        assert_eq!(
            c.last_order_at.as_deref(),
            Some("2026-03-14T09:05:00.000000Z")
        );
        assert_eq!(
            c.counts_by_status,
            BTreeMap::from([("delivered".to_string(), 1)])
        );
        assert_eq!(
            c.lifetime_spend,
            BTreeMap::from([("EUR".to_string(), 1000)]),
            "captured − refunded"
        );
        let o = &state.orders[ORDER];
        assert_eq!(
            (o.status.as_str(), o.total_minor, o.item_count),
            ("delivered", 1250, 3)
        );
        assert_eq!(o.placed_at.as_deref(), Some("2026-03-14T09:05:00.000000Z"));
        assert_eq!(o.payment_status.as_deref(), Some("partially_refunded"));
    }

    #[test]
    fn draft_totals_follow_item_changes() {
        let state = fold_all(&story()[..5]);
        let o = &state.orders[ORDER];
        assert_eq!(
            (o.status.as_str(), o.total_minor, o.item_count),
            ("draft", 1250, 3)
        );
        assert_eq!(
            state.customers[USER].counts_by_status,
            BTreeMap::from([("draft".to_string(), 1)])
        );
    }

    #[test]
    fn deactivation_and_unknown_references() {
        let mut events = story()[..1].to_vec();
        events.push(event(
            2,
            "User",
            USER,
            "UserDeactivated",
            serde_json::json!({"at": "2026-03-14T09:26:53Z"}),
            1,
        ));
        assert_eq!(fold_all(&events).customers[USER].status, "deactivated");
        let mut state = State::default();
        let orphan = event(
            1,
            "Order",
            ORDER,
            "OrderPlaced",
            serde_json::json!({"total": {"amount_minor": 1, "currency": "EUR"}, "item_count": 1, "at": "2026-03-14T09:26:53Z"}),
            0,
        );
        assert!(
            CustomerView::fold(&mut state, &orphan).is_err(),
            "an order nobody created is a poison event"
        );
    }
}
