//! The analytics dashboard's baseline: a bare axum handler answering the
//! console's dashboard query (revenue by month, top 10 products, funnel,
//! payment outcomes, average order value, new customers, currencies for a
//! year) with the read model's own SQL and hand-written JSON — no GraphQL.
//! Run with the monthly roll-up (what the query API does) and with the day
//! rows alone (the query before the roll-up), in the same run.

use std::time::Duration;

use axum::extract::State;
use readmodel::models::analytics::store as analytics;
use serde_json::{json, Value};

use super::Latencies;

#[derive(Clone)]
struct Bare {
    pool: sqlx::AnyPool,
    rollup: bool,
    from: String,
    to: String,
}

async fn dashboard(State(b): State<Bare>) -> axum::Json<Value> {
    let (f, t) = (b.from.as_str(), b.to.as_str());
    let products = if b.rollup {
        analytics::top_products(&b.pool, f, t, true, 10).await
    } else {
        analytics::top_products_by_day(&b.pool, f, t, true, 10).await
    };
    let (daily, funnel, payments, new, currencies) = tokio::join!(
        analytics::daily(&b.pool, f, t, "EUR"),
        analytics::funnel(&b.pool, f, t),
        analytics::payment_outcomes(&b.pool, f, t),
        analytics::new_customers(&b.pool, f, t),
        analytics::currencies(&b.pool),
    );
    let daily = daily.unwrap_or_default();
    let mut months: std::collections::BTreeMap<String, i64> = Default::default();
    for d in &daily {
        *months.entry(d.day[..7].to_string()).or_default() += d.revenue_minor;
    }
    let (placed, value) = daily.iter().fold((0, 0), |(p, v), d| {
        (p + d.orders_placed, v + d.placed_value_minor)
    });
    axum::Json(json!({"data": {"analytics": {
        "currencies": currencies.unwrap_or_default(),
        "revenue": months.iter().map(|(m, a)| json!({"bucket": format!("{m}-01"), "amount": {"amountMinor": a, "currency": "EUR"}})).collect::<Vec<_>>(),
        "topProducts": products.unwrap_or_default().iter().map(|p| json!({"sku": p.sku, "name": p.name, "quantity": p.quantity,
            "revenue": {"amountMinor": p.revenue_minor, "currency": p.currency}})).collect::<Vec<_>>(),
        "funnel": funnel.unwrap_or_default().iter().map(|s| (s.stage.clone(), json!(s.count))).collect::<serde_json::Map<_, _>>(),
        "paymentOutcomes": payments.unwrap_or_default().iter().map(|o| json!({"outcome": o.outcome, "reason": o.reason, "count": o.count})).collect::<Vec<_>>(),
        "averageOrderValue": (placed > 0).then(|| json!({"amountMinor": value / placed, "currency": "EUR"})),
        "newCustomers": new.unwrap_or_default(),
    }}}))
}

/// The bare dashboard handler over `url`'s read models under `clients`
/// concurrent clients for `dur`, for the year ending today.
pub async fn bare_dashboard_load(
    url: &str,
    rollup: bool,
    clients: usize,
    dur: Duration,
) -> anyhow::Result<Latencies> {
    sqlx::any::install_default_drivers();
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(8)
        .connect(url)
        .await?;
    let to = chrono::Utc::now().date_naive();
    let from = to - chrono::Duration::days(364);
    let app = axum::Router::new()
        .route("/dashboard", axum::routing::get(dashboard))
        .with_state(Bare {
            pool: pool.clone(),
            rollup,
            from: from.to_string(),
            to: to.to_string(),
        });
    let l = super::baselines::serve_and_load(app, "/dashboard", clients, dur).await?;
    pool.close().await;
    Ok(l)
}
