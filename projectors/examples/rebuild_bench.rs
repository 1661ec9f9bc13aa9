//! Rebuild speed: bulk-loads a store with valid order stories, then times a
//! full rebuild of every read model.
//!
//! ```sh
//! cargo run --release -p projectors --example rebuild_bench -- [EVENTS] [postgres|sqlite]
//! ```
//! Defaults: 260000 events on PostgreSQL (`SHOPSTREAM_TEST_POSTGRES_URL`
//! or `postgres://postgres@127.0.0.1:5432/postgres`, a fresh database).

use std::time::Instant;

use eventlog::testing::TestDatabase;
use eventlog::{Database, EventLog};
use projectors::rebuild::{self, Options};
use readmodel::ReadDb;
use serde_json::{json, Value};
use uuid::Uuid;

/// One order's life as (aggregate type, id, sequence, event type, body).
fn story(n: u64) -> Vec<(&'static str, String, i64, &'static str, Value)> {
    let at = "2026-03-14T09:26:53Z";
    let user = Uuid::from_u128(u128::from(n) << 64 | 1).to_string();
    let order = Uuid::from_u128(u128::from(n) << 64 | 2).to_string();
    let payment = Uuid::from_u128(u128::from(n) << 64 | 3).to_string();
    let eur = |a: i64| json!({"amount_minor": a, "currency": "EUR"});
    let sku = |k: u64| format!("SKU-{}", k % 500);
    vec![
        (
            "User",
            user.clone(),
            1,
            "UserRegistered",
            json!({"user_id": user, "email": format!("u{n}@example.com"), "name": "Bench", "at": at}),
        ),
        (
            "Order",
            order.clone(),
            1,
            "OrderCreated",
            json!({"order_id": order, "customer_id": user, "currency": "EUR", "at": at}),
        ),
        (
            "Order",
            order.clone(),
            2,
            "OrderItemAdded",
            json!({"sku": sku(n), "name": "Tee", "unit_price": eur(500), "quantity": 2, "at": at}),
        ),
        (
            "Order",
            order.clone(),
            3,
            "OrderItemAdded",
            json!({"sku": sku(n * 7 + 1), "name": "Mug", "unit_price": eur(250), "quantity": 1, "at": at}),
        ),
        (
            "Order",
            order.clone(),
            4,
            "OrderPlaced",
            json!({"total": eur(1250), "item_count": 3, "at": at}),
        ),
        (
            "Payment",
            payment.clone(),
            1,
            "PaymentInitiated",
            json!({"payment_id": payment, "order_id": order, "customer_id": user, "amount": eur(1250), "at": at}),
        ),
        (
            "Payment",
            payment.clone(),
            2,
            "PaymentAuthorized",
            json!({"amount": eur(1250), "at": at}),
        ),
        (
            "Payment",
            payment.clone(),
            3,
            "PaymentCaptured",
            json!({"amount": eur(1250), "at": at}),
        ),
        (
            "Order",
            order.clone(),
            5,
            "OrderPaid",
            json!({"payment_id": payment, "amount": eur(1250), "at": at}),
        ),
        (
            "Order",
            order.clone(),
            6,
            "OrderShipped",
            json!({"carrier": "DHL", "tracking_number": "T1", "at": at}),
        ),
        ("Order", order, 7, "OrderDelivered", json!({"at": at})),
        (
            "Payment",
            payment,
            4,
            "PaymentRefunded",
            json!({"amount": eur(100), "reason": "late", "at": at}),
        ),
        (
            "User",
            user,
            2,
            "UserNameChanged",
            json!({"name": "Bench Renamed", "at": at}),
        ),
    ]
}

async fn load(db: &Database, events: u64) -> u64 {
    let mut written = 0u64;
    let mut n = 0u64;
    while written < events {
        let mut rows = Vec::new();
        while rows.len() < 5000 && written + (rows.len() as u64) < events {
            rows.extend(story(n));
            n += 1;
        }
        let mut sql = String::from(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) VALUES ",
        );
        let values: Vec<String> = rows
            .iter()
            .map(|(t, id, seq, et, body)| {
                let payload = json!({ *et: body }).to_string().replace('\'', "''");
                format!("('{t}', '{id}', {seq}, '{et}', '1', '{payload}', '{{}}')")
            })
            .collect();
        sql.push_str(&values.join(", "));
        match db {
            Database::Postgres(p) => eventlog::sqlx::query(&sql).execute(p).await.map(|_| ()),
            Database::Sqlite(p) => eventlog::sqlx::query(&sql).execute(p).await.map(|_| ()),
        }
        .expect("bulk insert");
        written += rows.len() as u64;
    }
    written
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let events: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(260_000);
    let backend = args.next().unwrap_or_else(|| "postgres".into());
    let t = if backend == "sqlite" {
        TestDatabase::sqlite().await
    } else {
        TestDatabase::postgres().await
    };
    let started = Instant::now();
    let written = load(&t.db, events).await;
    println!(
        "loaded {written} events into {backend} in {:.1}s",
        started.elapsed().as_secs_f64()
    );

    let log = EventLog::new(t.db.clone());
    let db = ReadDb::connect(&t.url, 4).await.expect("read db");
    projectors::ensure_all(&db).await.expect("views");
    let (read, secs) = read_all(&log).await;
    println!(
        "reading the log alone: {read} events in {secs:.2}s = {:.0} events/s",
        read as f64 / secs
    );
    let mut total_events = 0u64;
    let all = Instant::now();
    println!(
        "{:<14} {:>10} {:>9} {:>12}",
        "projection", "events", "seconds", "events/s"
    );
    for name in readmodel::NAMES {
        let mut progress = |_p: rebuild::Progress| {};
        let report = rebuild::rebuild(name, &log, &db, Options::new(false, &mut progress))
            .await
            .expect("rebuild");
        total_events += report.events;
        println!(
            "{:<14} {:>10} {:>9.2} {:>12.0}",
            name, report.events, report.seconds, report.events_per_second
        );
    }
    let secs = all.elapsed().as_secs_f64();
    println!(
        "sequential (rebuild NAME, one after another): {written} store events in {secs:.2}s = {:.0} events/s per projection, {:.0} store events/s",
        total_events as f64 / secs,
        written as f64 / secs
    );
    let all = Instant::now();
    let outcomes = rebuild::rebuild_all(&log, &db, false)
        .await
        .expect("read the log");
    for (name, result) in outcomes {
        result.unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let secs = all.elapsed().as_secs_f64();
    println!(
        "concurrent (rebuild --all, one bulk fill): {written} store events into 3 projections in {secs:.2}s = {:.0} events folded/s, {:.0} store events/s",
        3.0 * written as f64 / secs,
        written as f64 / secs
    );
    db.close().await;
    t.drop_database().await;
}

/// How long reading the whole log takes (the floor under any rebuild).
async fn read_all(log: &EventLog) -> (u64, f64) {
    let started = Instant::now();
    let mut cursor = eventlog::Cursor::START;
    let mut n = 0u64;
    loop {
        let batch = log.read_from(cursor, 1000).await.expect("read");
        let Some(last) = batch.last() else { break };
        cursor = last.cursor();
        n += batch.len() as u64;
    }
    (n, started.elapsed().as_secs_f64())
}
