//! The read models. Each is a folder: `types` (its rows and documents,
//! which the query side reads too), `fold` (pure: events → row changes in a
//! working set) and `store` (its SQL: loading and saving that working set,
//! and the reads the query side runs); schemas live in
//! `migrations/projections/`.

pub mod analytics;
pub mod customer;
pub mod orders;

use domain::order::OrderEvent;
use domain::payment::PaymentEvent;
use domain::user::UserEvent;
use domain::Event;
use eventlog::StoredEvent;

use crate::db::{Binds, DocRow, Rows, Tx};
use crate::{Batch, FoldError, ProjectionError};

/// The event, typed (decoded once when it was read).
fn typed(event: &StoredEvent) -> Result<&Event, FoldError> {
    event.typed().map_err(FoldError::new)
}

fn mismatch(event: &StoredEvent) -> FoldError {
    FoldError::new(format!(
        "{} at position {} is not an event of a {}",
        event.event_type, event.position, event.aggregate_type
    ))
}

/// A user's event.
pub(crate) fn user_event(event: &StoredEvent) -> Result<&UserEvent, FoldError> {
    match typed(event)? {
        Event::User(e) => Ok(e),
        _ => Err(mismatch(event)),
    }
}

/// An order's event.
pub(crate) fn order_event(event: &StoredEvent) -> Result<&OrderEvent, FoldError> {
    match typed(event)? {
        Event::Order(e) => Ok(e),
        _ => Err(mismatch(event)),
    }
}

/// A payment's event.
pub(crate) fn payment_event(event: &StoredEvent) -> Result<&PaymentEvent, FoldError> {
    match typed(event)? {
        Event::Payment(e) => Ok(e),
        _ => Err(mismatch(event)),
    }
}

/// A keyset page position: the sort key and the id of the last row seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct After {
    pub key: String,
    pub id: String,
}

impl After {
    /// The clause that keeps rows after this one in `key`, then `id`, order
    /// (`cmp` is `<` for descending, `>` for ascending).
    pub(crate) fn clause(&self, key: &str, id: &str, cmp: &str, binds: &mut Binds) -> String {
        let (k1, k2, i) = (
            binds.push(&self.key),
            binds.push(&self.key),
            binds.push(&self.id),
        );
        format!("({key} {cmp} {k1} OR ({key} = {k2} AND {id} {cmp} {i}))")
    }
}

/// The ids of `events`' aggregates of type `aggregate_type`.
pub(crate) fn ids_of<'a>(
    events: &'a [&StoredEvent],
    aggregate_type: &'a str,
) -> impl Iterator<Item = String> + 'a {
    events
        .iter()
        .filter(move |e| e.aggregate_type == aggregate_type)
        .map(|e| e.aggregate_id.clone())
}

/// The orders `events` initiate payments for.
pub(crate) fn paid_orders<'a>(events: &'a [&StoredEvent]) -> impl Iterator<Item = String> + 'a {
    events.iter().filter_map(|e| match &e.event {
        Ok(Event::Payment(PaymentEvent::Initiated { order_id, .. })) => Some(order_id.to_string()),
        _ => None,
    })
}

/// The customers `events` create orders for.
pub(crate) fn ordering_customers<'a>(
    events: &'a [&StoredEvent],
) -> impl Iterator<Item = String> + 'a {
    events.iter().filter_map(|e| match &e.event {
        Ok(Event::Order(OrderEvent::Created { customer_id, .. })) => Some(customer_id.to_string()),
        _ => None,
    })
}

/// Loads the payments of `batch`, then its orders: those of its order
/// events, those the loaded payments pay (`order_of`), and those it
/// initiates payments for.
pub(crate) async fn load_orders<O: DocRow, P: DocRow>(
    tx: &mut Tx<'_>,
    batch: Batch<'_>,
    orders: &mut Rows<O>,
    payments: &mut Rows<P>,
    order_of: impl Fn(&P) -> String,
) -> Result<(), ProjectionError> {
    let Batch { g, events } = batch;
    payments.load(tx, g, ids_of(events, "Payment")).await?;
    let ids: Vec<String> = ids_of(events, "Order")
        .chain(payments.loaded().map(order_of))
        .chain(paid_orders(events))
        .collect();
    orders.load(tx, g, ids).await
}

/// The event's recorded time as stored in read models (ISO 8601, UTC, µs).
pub(crate) fn at(event: &StoredEvent) -> String {
    stamp(event.recorded_at).unwrap_or_else(|| formatted(event, "%Y-%m-%dT%H:%M:%S%.6fZ", &AT))
}

/// `t` as `%Y-%m-%dT%H:%M:%S%.6fZ`, written by hand: the folds stamp every
/// event, and chrono's formatter took 2.5 % of a rebuild. `None` for a
/// year outside 0..=9999 (chrono's path then).
fn stamp(t: chrono::DateTime<chrono::Utc>) -> Option<String> {
    use chrono::{Datelike, Timelike};
    let year = u32::try_from(t.year()).ok().filter(|y| *y <= 9999)?;
    let mut out = String::with_capacity(27);
    push_digits(&mut out, year, 4);
    for (sep, n) in [
        ('-', t.month()),
        ('-', t.day()),
        ('T', t.hour()),
        (':', t.minute()),
        // A leap second reads :60, as chrono writes it.
        (':', t.second() + t.nanosecond() / 1_000_000_000),
    ] {
        out.push(sep);
        push_digits(&mut out, n, 2);
    }
    out.push('.');
    push_digits(&mut out, (t.nanosecond() % 1_000_000_000) / 1_000, 6);
    out.push('Z');
    Some(out)
}

/// The last `width` decimal digits of `n`, zero-padded.
fn push_digits(out: &mut String, n: u32, width: u32) {
    for i in (0..width).rev() {
        let digit = (n / 10u32.pow(i)) % 10;
        out.push(char::from_digit(digit, 10).unwrap_or('0'));
    }
}

/// The event's recorded day (UTC).
pub(crate) fn day(event: &StoredEvent) -> String {
    match stamp(event.recorded_at) {
        Some(mut at) => {
            at.truncate(10);
            at
        }
        None => formatted(event, "%Y-%m-%d", &DAY),
    }
}

type Items = std::sync::OnceLock<Vec<chrono::format::Item<'static>>>;
static AT: Items = Items::new();
static DAY: Items = Items::new();

/// The event's time in `format`, parsed once into `items` (every event
/// formats its time: parsing the format each time was a visible share of
/// a rebuild).
fn formatted(event: &StoredEvent, format: &'static str, items: &'static Items) -> String {
    let items = items.get_or_init(|| chrono::format::StrftimeItems::new(format).collect());
    event
        .recorded_at
        .format_with_items(items.iter())
        .to_string()
}

/// A referenced row that should exist but does not: the stream is not
/// what this projection understands.
pub(crate) fn missing(what: &str, id: &str, event: &StoredEvent) -> FoldError {
    FoldError::new(format!(
        "{} at position {} refers to unknown {what} {id}",
        event.event_type, event.position
    ))
}

#[cfg(test)]
pub(crate) mod test_events {
    //! Stored events built in memory for the pure fold tests.

    use chrono::{TimeZone, Utc};
    use eventlog::StoredEvent;
    use serde_json::{json, Value};

    pub const USER: &str = "6f1c1e8e-3b0a-4c59-9a34-0d2b1f7c9e01";
    pub const ORDER: &str = "0a4b9d5e-8c21-4f6e-b1a3-2c7d9e0f1a22";
    pub const PAYMENT: &str = "9e8d7c6b-5a49-4382-a716-151413121110";
    const AT: &str = "2026-03-14T09:26:53Z";

    /// An event of `aggregate_type` recorded on 2026-03-14 plus `minute` minutes.
    pub fn event(
        position: i64,
        aggregate_type: &str,
        id: &str,
        event_type: &str,
        body: Value,
        minute: u32,
    ) -> StoredEvent {
        StoredEvent {
            position,
            transaction_id: 0,
            event_id: uuid::Uuid::new_v4(),
            aggregate_type: aggregate_type.into(),
            aggregate_id: id.into(),
            sequence: position,
            event_type: event_type.into(),
            event_version: "1".into(),
            event: domain::Event::decode(
                aggregate_type,
                event_type,
                "1",
                &json!({ event_type: body }),
            ),
            payload: json!({ event_type: body }),
            metadata: json!({}),
            recorded_at: Utc
                .with_ymd_and_hms(2026, 3, 14, 9, minute, 0)
                .single()
                .expect("time"),
        }
    }

    fn eur(a: i64) -> Value {
        json!({"amount_minor": a, "currency": "EUR"})
    }

    /// Registration, an order of 2 × 500 + 1 × 250, placed, paid by a
    /// capture, shipped, delivered, then a partial refund.
    pub fn story() -> Vec<StoredEvent> {
        vec![
            event(
                1,
                "User",
                USER,
                "UserRegistered",
                json!({"user_id": USER, "email": "ada@example.com", "name": "Ada", "at": AT}),
                0,
            ),
            event(
                2,
                "Order",
                ORDER,
                "OrderCreated",
                json!({"order_id": ORDER, "customer_id": USER, "currency": "EUR", "at": AT}),
                1,
            ),
            event(
                3,
                "Order",
                ORDER,
                "OrderItemAdded",
                json!({"sku": "A", "name": "Tee", "unit_price": eur(500), "quantity": 2, "at": AT}),
                2,
            ),
            event(
                4,
                "Order",
                ORDER,
                "OrderItemAdded",
                json!({"sku": "B", "name": "Mug", "unit_price": eur(250), "quantity": 3, "at": AT}),
                3,
            ),
            event(
                5,
                "Order",
                ORDER,
                "OrderItemQuantityChanged",
                json!({"sku": "B", "quantity": 1, "at": AT}),
                4,
            ),
            event(
                6,
                "Order",
                ORDER,
                "OrderPlaced",
                json!({"total": eur(1250), "item_count": 3, "at": AT}),
                5,
            ),
            event(
                7,
                "Payment",
                PAYMENT,
                "PaymentInitiated",
                json!({"payment_id": PAYMENT, "order_id": ORDER, "customer_id": USER, "amount": eur(1250), "at": AT}),
                6,
            ),
            event(
                8,
                "Payment",
                PAYMENT,
                "PaymentAuthorized",
                json!({"amount": eur(1250), "at": AT}),
                7,
            ),
            event(
                9,
                "Payment",
                PAYMENT,
                "PaymentCaptured",
                json!({"amount": eur(1250), "at": AT}),
                8,
            ),
            event(
                10,
                "Order",
                ORDER,
                "OrderPaid",
                json!({"payment_id": PAYMENT, "amount": eur(1250), "at": AT}),
                9,
            ),
            event(
                11,
                "Order",
                ORDER,
                "OrderShipped",
                json!({"carrier": "DHL", "tracking_number": "T1", "at": AT}),
                10,
            ),
            event(12, "Order", ORDER, "OrderDelivered", json!({"at": AT}), 11),
            event(
                13,
                "Payment",
                PAYMENT,
                "PaymentRefunded",
                json!({"amount": eur(250), "reason": "broken mug", "at": AT}),
                12,
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, NaiveDate, Utc};

    /// The hand-written stamp is chrono's `%Y-%m-%dT%H:%M:%S%.6fZ`.
    #[test]
    fn stamps_match_chrono() {
        let at = |y, mo, d, h, mi, s, nanos| -> DateTime<Utc> {
            NaiveDate::from_ymd_opt(y, mo, d)
                .and_then(|date| date.and_hms_nano_opt(h, mi, s, nanos))
                .expect("a valid time")
                .and_utc()
        };
        for t in [
            at(2026, 3, 14, 9, 26, 53, 0),
            at(1, 1, 1, 0, 0, 0, 999_999_999),
            at(9999, 12, 31, 23, 59, 59, 123_456_789),
            at(2016, 12, 31, 23, 59, 59, 1_500_000_000),
            at(2024, 2, 29, 7, 5, 3, 4_000),
        ] {
            assert_eq!(
                super::stamp(t).as_deref(),
                Some(t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string().as_str()),
                "{t:?}"
            );
        }
        assert_eq!(super::stamp(at(10000, 1, 1, 0, 0, 0, 0)), None);
        assert_eq!(super::stamp(at(-1, 1, 1, 0, 0, 0, 0)), None);
    }
}
