//! The monthly product roll-up answers exactly what the day rows answer:
//! random paid orders over two years, then random date ranges (whole
//! months, edge days, single days, ranges within a month), both rankings,
//! on both backends.

use chrono::{Duration, NaiveDate, TimeZone, Utc};
use domain::order::OrderEvent;
use domain::{Currency, ProductName, Sku};
use eventlog::testing::TestDatabase;
use eventlog::StoredEvent;
use rand::{Rng, SeedableRng};
use readmodel::models::analytics::store as analytics;
use readmodel::Analytics;
use uuid::Uuid;

use super::{fold_and_store, read_db, stored};

/// `orders` paid orders of 1–3 lines over 2025–2026 (EUR and a few USD).
fn paid_orders(rng: &mut rand::rngs::StdRng, orders: usize) -> Vec<StoredEvent> {
    let start = Utc
        .with_ymd_and_hms(2025, 1, 1, 8, 0, 0)
        .single()
        .expect("time");
    let mut events = Vec::new();
    let mut position = 0;
    for _ in 0..orders {
        let id = Uuid::new_v4();
        let when = start
            + Duration::days(rng.gen_range(0..730))
            + Duration::minutes(rng.gen_range(0..600));
        let currency = if rng.gen_bool(0.2) { "USD" } else { "EUR" };
        let money = |minor: i64| domain::Money {
            amount_minor: minor,
            currency: Currency::parse(currency).expect("currency"),
        };
        let mut push = |event: &OrderEvent| {
            position += 1;
            let mut e = stored(1, "Order", id, event);
            e.position = position;
            e.recorded_at = when;
            events.push(e);
        };
        push(&OrderEvent::Created {
            order_id: id,
            customer_id: Uuid::new_v4(),
            currency: Currency::parse(currency).expect("currency"),
            at: when,
        });
        let lines: u32 = rng.gen_range(1..=3);
        let mut total = 0;
        for l in 0..lines {
            let n: i64 = rng.gen_range(0..8);
            let price = 100 * (n + 1) + i64::from(l);
            let quantity = rng.gen_range(1..5);
            total += price * i64::from(quantity);
            push(&OrderEvent::ItemAdded {
                sku: Sku::parse(&format!("SKU-{n}")).expect("sku"),
                name: ProductName::parse("name", &format!("Product {n}")).expect("name"),
                unit_price: money(price),
                quantity,
                at: when,
                catalog_version: Some(1),
            });
        }
        push(&OrderEvent::Placed {
            total: money(total),
            item_count: lines,
            at: when,
        });
        push(&OrderEvent::Paid {
            payment_id: Uuid::new_v4(),
            amount: money(total),
            at: when,
        });
    }
    events
}

async fn rollup_equals_day_rows(t: &TestDatabase) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(2026);
    let db = read_db(t).await;
    fold_and_store::<Analytics>(&db, &paid_orders(&mut rng, 600)).await;
    let base = NaiveDate::from_ymd_opt(2024, 12, 1).expect("date");
    let text = |d: NaiveDate| d.format("%Y-%m-%d").to_string();
    let mut with_months = 0;
    for i in 0..150 {
        let from = base + Duration::days(rng.gen_range(0..780));
        let to = from
            + Duration::days(if i % 5 == 0 {
                rng.gen_range(0..20)
            } else {
                rng.gen_range(0..500)
            });
        let (f, t) = (text(from), text(to));
        with_months += usize::from(analytics::split(from, to).months.is_some());
        for by_revenue in [true, false] {
            let limit = rng.gen_range(1..12);
            let rolled = analytics::top_products(db.pool(), &f, &t, by_revenue, limit)
                .await
                .expect("roll-up");
            let by_day = analytics::top_products_by_day(db.pool(), &f, &t, by_revenue, limit)
                .await
                .expect("day rows");
            assert_eq!(
                rolled, by_day,
                "{f}..{t} by_revenue={by_revenue} limit={limit}"
            );
        }
    }
    assert!(
        with_months > 60,
        "most ranges read whole months ({with_months})"
    );
    db.close().await;
}

#[tokio::test]
async fn the_monthly_rollup_answers_like_the_day_rows_sqlite() {
    rollup_equals_day_rows(&TestDatabase::sqlite().await).await;
}

#[tokio::test]
async fn the_monthly_rollup_answers_like_the_day_rows_postgres() {
    let t = TestDatabase::postgres().await;
    rollup_equals_day_rows(&t).await;
    t.drop_database().await;
}

/// A store upgraded from a release before the roll-up: its live analytics
/// generation (version 1) has no monthly table. It keeps folding (the
/// roll-up is written only where its table exists) and answers from the
/// day rows until it is rebuilt.
async fn a_version_1_generation_keeps_working(t: &TestDatabase) {
    use readmodel::{registry, Projection, WorkingSet};
    let start = Analytics::SCHEMA
        .find("-- The same per month")
        .expect("roll-up table in the schema");
    let end = start + Analytics::SCHEMA[start..].find(");").expect("its end") + 2;
    let v1 = format!(
        "{}{}",
        &Analytics::SCHEMA[..start],
        &Analytics::SCHEMA[end..]
    );
    let db = read_db(t).await;
    let mut tx = db.begin().await.expect("begin");
    registry::create_generation(&mut tx, Analytics::NAME, 1, &v1, 1, "live")
        .await
        .expect("generation");
    registry::make_live(&mut tx, Analytics::NAME, &v1, 1)
        .await
        .expect("live");
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let events = paid_orders(&mut rng, 50);
    let relevant: Vec<&StoredEvent> = events.iter().collect();
    let mut state = <Analytics as Projection>::State::default();
    let batch = readmodel::Batch {
        g: 1,
        events: &relevant,
    };
    state.load(&mut tx, batch).await.expect("load");
    for e in &relevant {
        Analytics::fold(&mut state, e).expect("fold");
    }
    state
        .save(&mut tx, 1)
        .await
        .expect("a version-1 generation saves");
    tx.commit().await.expect("commit");
    let (f, t) = ("2025-01-01", "2026-12-31");
    let answer = analytics::top_products(db.pool(), f, t, true, 5)
        .await
        .expect("answers without the roll-up");
    assert!(!answer.is_empty());
    let by_day = analytics::top_products_by_day(db.pool(), f, t, true, 5)
        .await
        .expect("day rows");
    assert_eq!(answer, by_day);
    db.close().await;
}

#[tokio::test]
async fn a_version_1_analytics_generation_keeps_working_sqlite() {
    a_version_1_generation_keeps_working(&TestDatabase::sqlite().await).await;
}

#[tokio::test]
async fn a_version_1_analytics_generation_keeps_working_postgres() {
    let t = TestDatabase::postgres().await;
    a_version_1_generation_keeps_working(&t).await;
    t.drop_database().await;
}
