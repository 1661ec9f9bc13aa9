//! One round trip per read model, on both backends: typed domain events →
//! the read model's fold → its store → the reads the query side runs → the
//! values that went in. A field renamed on one side and not the other fails
//! here (or fails to compile), never reads as 0.

use chrono::{DateTime, TimeZone, Utc};
use domain::order::OrderEvent;
use domain::payment::PaymentEvent;
use domain::user::UserEvent;
use domain::{
    Carrier, Currency, Email, EventName, Money, PersonName, ProductName, Reason, ShippingAddress,
    Sku, TrackingNumber,
};
use eventlog::testing::TestDatabase;
use eventlog::StoredEvent;
use readmodel::models::analytics::store as analytics;
use readmodel::models::customer::{self, CustomerFilter, CustomerSort};
use readmodel::models::orders;
use readmodel::{
    registry, Analytics, CustomerView, OrderViewProjection, Projection, ReadDb, WorkingSet,
};
use serde::Serialize;
use uuid::Uuid;

mod rollup;

const USER: Uuid = Uuid::from_u128(0x6f1c_1e8e_3b0a_4c59_9a34_0d2b_1f7c_9e01);
const ORDER: Uuid = Uuid::from_u128(0x0a4b_9d5e_8c21_4f6e_b1a3_2c7d_9e0f_1a22);
const PAYMENT: Uuid = Uuid::from_u128(0x9e8d_7c6b_5a49_4382_a716_1514_1312_1110);

fn at(minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 14, 9, minute, 0)
        .single()
        .expect("time")
}

fn eur(amount_minor: i64) -> Money {
    Money {
        amount_minor,
        currency: Currency::parse("EUR").expect("EUR"),
    }
}

/// A stored event as the store hands it out: the typed event serialized
/// the way it is appended, decoded again at the boundary.
fn stored<E: Serialize + EventName>(
    position: i64,
    aggregate_type: &str,
    id: Uuid,
    event: &E,
) -> StoredEvent {
    let payload = serde_json::to_value(event).expect("payload");
    StoredEvent {
        position,
        transaction_id: 0,
        event_id: Uuid::new_v4(),
        aggregate_type: aggregate_type.into(),
        aggregate_id: id.to_string(),
        sequence: position,
        event_type: event.name().into(),
        event_version: event.version().into(),
        event: domain::Event::decode(aggregate_type, event.name(), event.version(), &payload),
        payload,
        metadata: serde_json::json!({}),
        recorded_at: at(u32::try_from(position).expect("a small position")),
    }
}

fn address() -> ShippingAddress {
    ShippingAddress::parse("Main St 1", Some("2nd floor"), "Berlin", "10115", "DE")
        .expect("address")
}

/// Registration, an address, an order of 2 × 500 + 1 × 250 placed, paid by a
/// capture, shipped, delivered, then a partial refund.
fn story() -> Vec<StoredEvent> {
    let tee = Sku::parse("TEE").expect("sku");
    let mug = Sku::parse("MUG").expect("sku");
    vec![
        stored(
            1,
            "User",
            USER,
            &UserEvent::Registered {
                user_id: USER,
                email: domain::Personal::Clear(Email::parse("ada@example.com").expect("email")),
                name: domain::Personal::Clear(PersonName::parse("name", "Ada").expect("name")),
                at: at(1),
                locale: domain::Locale::default(),
                marketing_consent: false,
            },
        ),
        stored(
            2,
            "User",
            USER,
            &UserEvent::ShippingAddressChanged {
                shipping_address: domain::Personal::Clear(address()),
                at: at(2),
            },
        ),
        stored(
            3,
            "Order",
            ORDER,
            &OrderEvent::Created {
                order_id: ORDER,
                customer_id: USER,
                currency: Currency::parse("EUR").expect("EUR"),
                at: at(3),
            },
        ),
        stored(
            4,
            "Order",
            ORDER,
            &OrderEvent::ItemAdded {
                sku: tee,
                name: ProductName::parse("name", "Tee").expect("name"),
                unit_price: eur(500),
                quantity: 2,
                at: at(4),
                catalog_version: Some(1),
            },
        ),
        stored(
            5,
            "Order",
            ORDER,
            &OrderEvent::ItemAdded {
                sku: mug,
                name: ProductName::parse("name", "Mug").expect("name"),
                unit_price: eur(250),
                quantity: 1,
                at: at(5),
                catalog_version: Some(3),
            },
        ),
        stored(
            6,
            "Order",
            ORDER,
            &OrderEvent::Placed {
                total: eur(1250),
                item_count: 3,
                at: at(6),
            },
        ),
        stored(
            7,
            "Payment",
            PAYMENT,
            &PaymentEvent::Initiated {
                payment_id: PAYMENT,
                order_id: ORDER,
                customer_id: USER,
                amount: eur(1250),
                at: at(7),
            },
        ),
        stored(
            8,
            "Payment",
            PAYMENT,
            &PaymentEvent::Authorized {
                amount: eur(1250),
                at: at(8),
            },
        ),
        stored(
            9,
            "Payment",
            PAYMENT,
            &PaymentEvent::Captured {
                amount: eur(1250),
                at: at(9),
            },
        ),
        stored(
            10,
            "Order",
            ORDER,
            &OrderEvent::Paid {
                payment_id: PAYMENT,
                amount: eur(1250),
                at: at(10),
            },
        ),
        stored(
            11,
            "Order",
            ORDER,
            &OrderEvent::Shipped {
                carrier: Carrier::parse("carrier", "DHL").expect("carrier"),
                tracking_number: TrackingNumber::parse("tracking_number", "T1").expect("tracking"),
                at: at(11),
            },
        ),
        stored(12, "Order", ORDER, &OrderEvent::Delivered { at: at(12) }),
        stored(
            13,
            "Payment",
            PAYMENT,
            &PaymentEvent::Refunded {
                amount: eur(250),
                reason: Reason::parse("reason", "broken mug").expect("reason"),
                at: at(13),
            },
        ),
    ]
}

/// `events` as a release before `UserRegistered` v2 and `OrderItemAdded`
/// v2 stored them: without the fields those versions added, at version 1,
/// decoded again at the boundary (which upcasts them).
fn as_v1(events: &[StoredEvent]) -> Vec<StoredEvent> {
    let added = [
        ("UserRegistered", &["locale", "marketing_consent"][..]),
        ("OrderItemAdded", &["catalog_version"][..]),
    ];
    events
        .iter()
        .map(|e| {
            let mut e = e.clone();
            if let Some((name, fields)) = added.iter().find(|(n, _)| *n == e.event_type) {
                let inner = e.payload[*name].as_object_mut().expect("fields");
                for field in *fields {
                    inner.remove(*field);
                }
                e.event_version = "1".into();
                e.event = domain::Event::decode(&e.aggregate_type, &e.event_type, "1", &e.payload);
            }
            e
        })
        .collect()
}

/// Folds `events` into a fresh live generation 1 of `P` and stores it.
async fn fold_and_store<P: Projection>(db: &ReadDb, events: &[StoredEvent]) {
    let mut tx = db.begin().await.expect("begin");
    registry::create_generation(&mut tx, P::NAME, P::VERSION, P::SCHEMA, 1, "live")
        .await
        .expect("generation");
    registry::make_live(&mut tx, P::NAME, P::SCHEMA, 1)
        .await
        .expect("live");
    let relevant: Vec<&StoredEvent> = events
        .iter()
        .filter(|e| P::handles(&e.event_type))
        .collect();
    let mut state = P::State::default();
    let batch = readmodel::Batch {
        g: 1,
        events: &relevant,
    };
    state.load(&mut tx, batch).await.expect("load");
    for e in &relevant {
        P::fold(&mut state, e).expect("fold");
    }
    state.save(&mut tx, 1).await.expect("save");
    tx.commit().await.expect("commit");
}

async fn read_db(t: &TestDatabase) -> ReadDb {
    ReadDb::connect(&t.url, 2).await.expect("read-model pool")
}

async fn customer_round_trip(t: &TestDatabase) {
    let db = read_db(t).await;
    fold_and_store::<CustomerView>(&db, &story()).await;
    let row = customer::CustomerRow::get(db.pool(), &USER.to_string())
        .await
        .expect("read")
        .expect("the customer");
    assert_eq!(row.email, "ada@example.com");
    assert_eq!(row.name, "Ada");
    assert_eq!(row.status, "active");
    assert_eq!(row.order_count, 1);
    assert_eq!(row.registered_at, "2026-03-14T09:01:00.000000Z");
    assert_eq!(
        row.last_order_at.as_deref(),
        Some("2026-03-14T09:06:00.000000Z")
    );
    let doc = row.doc.get().expect("the document parses as a Customer");
    assert_eq!(doc.shipping_address, Some(address()));
    assert_eq!(
        doc.lifetime_spend.get("EUR"),
        Some(&1000),
        "captured 1250 − refunded 250"
    );
    assert_eq!(doc.counts_by_status.get("delivered"), Some(&1));
    let page = customer::store::page(
        db.pool(),
        &CustomerFilter {
            email_prefix: Some("ADA".into()),
            ..CustomerFilter::default()
        },
        CustomerSort::Email,
        None,
        10,
    )
    .await
    .expect("page");
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].user_id, USER.to_string());
}

async fn order_round_trip(t: &TestDatabase) {
    let db = read_db(t).await;
    fold_and_store::<OrderViewProjection>(&db, &story()).await;
    let row = orders::OrderRow::get(db.pool(), &ORDER.to_string())
        .await
        .expect("read")
        .expect("the order");
    assert_eq!(row.customer_id, USER.to_string());
    assert_eq!(row.status, "delivered");
    assert_eq!(row.currency, "EUR");
    assert_eq!((row.total_minor, row.item_count), (1250, 3));
    let doc = row.doc.get().expect("the document parses as an OrderView");
    let lines: Vec<_> = doc
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
    assert_eq!(lines, vec![("TEE", 2, 500, 1000), ("MUG", 1, 250, 250)]);
    let p = &doc.payment;
    assert_eq!(p.payment_id, Some(PAYMENT.to_string()));
    assert_eq!(
        (p.authorized_minor, p.captured_minor, p.refunded_minor),
        (1250, 1250, 250)
    );
    assert_eq!(doc.carrier.as_deref(), Some("DHL"));
    assert_eq!(doc.tracking_number.as_deref(), Some("T1"));
    let statuses: Vec<&str> = doc.history.iter().map(|h| h.status.as_str()).collect();
    assert_eq!(statuses.first(), Some(&"draft"));
    assert_eq!(statuses.last(), Some(&"delivered"));
    let page = orders::store::page(db.pool(), Some(&USER.to_string()), None, None, 10)
        .await
        .expect("page");
    assert_eq!(page.len(), 1);
    let by_status = orders::store::count_by_status(db.pool())
        .await
        .expect("counts");
    assert_eq!(by_status.len(), 1);
    assert_eq!(
        (by_status[0].status.as_str(), by_status[0].count),
        ("delivered", 1)
    );
}

async fn analytics_round_trip(t: &TestDatabase) {
    let db = read_db(t).await;
    fold_and_store::<Analytics>(&db, &story()).await;
    let (from, to) = ("2026-03-14", "2026-03-14");
    let daily = analytics::daily(db.pool(), from, to, "EUR")
        .await
        .expect("daily");
    assert_eq!(daily.len(), 1);
    assert_eq!(daily[0].day, "2026-03-14");
    assert_eq!(daily[0].revenue_minor, 1000, "captured 1250 − refunded 250");
    assert_eq!(
        (daily[0].orders_placed, daily[0].placed_value_minor),
        (1, 1250)
    );
    let top = analytics::top_products(db.pool(), from, to, true, 10)
        .await
        .expect("top");
    let top: Vec<_> = top
        .iter()
        .map(|p| (p.sku.as_str(), p.name.as_str(), p.quantity, p.revenue_minor))
        .collect();
    assert_eq!(top, vec![("TEE", "Tee", 2, 1000), ("MUG", "Mug", 1, 250)]);
    let new = analytics::new_customers(db.pool(), from, to)
        .await
        .expect("new");
    assert_eq!(new, 1);
    let outcomes = analytics::payment_outcomes(db.pool(), from, to)
        .await
        .expect("outcomes");
    let captured = outcomes
        .iter()
        .find(|o| o.outcome == "captured")
        .expect("captured");
    assert_eq!(captured.count, 1);
    let funnel = analytics::funnel(db.pool(), from, to)
        .await
        .expect("funnel");
    for stage in ["created", "placed", "paid", "shipped", "delivered"] {
        let n = funnel.iter().find(|s| s.stage == stage).map(|s| s.count);
        assert_eq!(n, Some(1), "{stage}: {funnel:?}");
    }
}

#[tokio::test]
async fn customer_view_round_trips_sqlite() {
    customer_round_trip(&TestDatabase::sqlite().await).await;
}

#[tokio::test]
async fn customer_view_round_trips_postgres() {
    let t = TestDatabase::postgres().await;
    customer_round_trip(&t).await;
    t.drop_database().await;
}

#[tokio::test]
async fn order_view_round_trips_sqlite() {
    order_round_trip(&TestDatabase::sqlite().await).await;
}

#[tokio::test]
async fn order_view_round_trips_postgres() {
    let t = TestDatabase::postgres().await;
    order_round_trip(&t).await;
    t.drop_database().await;
}

#[tokio::test]
async fn analytics_round_trips_sqlite() {
    analytics_round_trip(&TestDatabase::sqlite().await).await;
}

#[tokio::test]
async fn analytics_round_trips_postgres() {
    let t = TestDatabase::postgres().await;
    analytics_round_trip(&t).await;
    t.drop_database().await;
}

/// Version-1 events (as older releases stored them) fold to the same
/// read-model rows as the current versions, except what v2 added.
async fn v1_events_fold_like_v2(v1: &TestDatabase, v2: &TestDatabase) {
    let (old, new) = (read_db(v1).await, read_db(v2).await);
    let story = story();
    let old_story = as_v1(&story);
    assert!(
        old_story.iter().all(|e| e.event.is_ok()),
        "v1 events decode"
    );
    fold_and_store::<CustomerView>(&old, &old_story).await;
    fold_and_store::<CustomerView>(&new, &story).await;
    fold_and_store::<OrderViewProjection>(&old, &old_story).await;
    fold_and_store::<OrderViewProjection>(&new, &story).await;
    let customer = |db: ReadDb| async move {
        let row = customer::CustomerRow::get(db.pool(), &USER.to_string())
            .await
            .expect("read")
            .expect("the customer");
        (row.email.clone(), row.doc.get().expect("doc").clone())
    };
    assert_eq!(customer(old.clone()).await, customer(new.clone()).await);
    let order = |db: ReadDb| async move {
        let row = orders::OrderRow::get(db.pool(), &ORDER.to_string())
            .await
            .expect("read")
            .expect("the order");
        (row.total_minor, row.doc.get().expect("doc").clone())
    };
    assert_eq!(order(old).await, order(new).await);
}

#[tokio::test]
async fn v1_events_fold_like_v2_sqlite() {
    v1_events_fold_like_v2(&TestDatabase::sqlite().await, &TestDatabase::sqlite().await).await;
}

#[tokio::test]
async fn v1_events_fold_like_v2_postgres() {
    let (a, b) = (
        TestDatabase::postgres().await,
        TestDatabase::postgres().await,
    );
    v1_events_fold_like_v2(&a, &b).await;
    a.drop_database().await;
    b.drop_database().await;
}
