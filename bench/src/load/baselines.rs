//! The baselines every figure is measured against in the same run: raw
//! INSERTs (commands, rebuilds) and a bare handler (GraphQL).

use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use serde_json::{json, Value};
use sqlx::Row;

use super::{run_clients, Latencies};

/// Baseline for commands: single-row INSERT transactions into a table
/// identical to `events`, at the same concurrency.
pub async fn raw_inserts(url: &str, clients: usize, dur: Duration) -> anyhow::Result<Latencies> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(clients as u32)
        .connect(url)
        .await?;
    sqlx::query("CREATE TABLE IF NOT EXISTS bench_events (LIKE events INCLUDING ALL)")
        .execute(&pool)
        .await?;
    let payload = json!({"OrderItemAdded": {"sku": "TEE-1", "name": "Tee", "unit_price": {"amount_minor": 1999, "currency": "EUR"}, "quantity": 2, "at": "2026-03-14T09:26:53Z"}});
    let metadata = json!({"request_id": uuid::Uuid::new_v4().to_string(), "correlation_id": uuid::Uuid::new_v4().to_string(), "actor": "bench"});
    let l = run_clients(clients, dur, move |_| {
        let pool = pool.clone();
        let (payload, metadata) = (payload.clone(), metadata.clone());
        async move {
            let mut l = Latencies::default();
            let t = Instant::now();
            let r = sqlx::query(
                "INSERT INTO bench_events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
                 VALUES ('Order', $1, 1, 'OrderItemAdded', '1', $2, $3)",
            )
            .bind(uuid::Uuid::new_v4().to_string())
            .bind(payload)
            .bind(metadata)
            .execute(&pool)
            .await;
            match r {
                Ok(_) => l.samples.push(t.elapsed()),
                Err(_) => l.errors += 1,
            }
            l
        }
    })
    .await;
    Ok(l)
}

/// Baseline for GraphQL: a bare axum handler reading the same rows and
/// returning the same JSON, under the same load.
pub async fn bare_handler_load(
    url: &str,
    id: &str,
    clients: usize,
    dur: Duration,
) -> anyhow::Result<Latencies> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(8)
        .connect(url)
        .await?;
    let app = axum::Router::new()
        .route("/customer/{id}", axum::routing::get(customer))
        .with_state(pool.clone());
    let l = serve_and_load(app, &format!("/customer/{id}"), clients, dur).await?;
    pool.close().await;
    Ok(l)
}

/// Serves `app` on a loopback port and GETs `path` from `clients`
/// concurrent clients for `dur`.
pub(super) async fn serve_and_load(
    app: axum::Router,
    path: &str,
    clients: usize,
    dur: Duration,
) -> anyhow::Result<Latencies> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let client = reqwest::Client::new();
    let url = format!("http://{addr}{path}");
    let l = run_clients(clients, dur, move |_| {
        let (client, url) = (client.clone(), url.clone());
        async move {
            let mut l = Latencies::default();
            let t = Instant::now();
            match client.get(&url).send().await {
                Ok(r) if r.status().is_success() => {
                    let _ = r.bytes().await;
                    l.samples.push(t.elapsed());
                }
                _ => l.errors += 1,
            }
            l
        }
    })
    .await;
    server.abort();
    Ok(l)
}

/// The bare handler: the same rows and the same JSON as GraphQL's
/// `customer(id)` with 20 orders, written by hand.
async fn customer(State(pool): State<sqlx::PgPool>, Path(id): Path<String>) -> axum::Json<Value> {
    let row = sqlx::query(
        "SELECT user_id, email, name, status, order_count, doc FROM customer_view WHERE user_id = $1",
    )
    .bind(&id)
    .fetch_optional(&pool)
    .await
    .ok()
    .flatten();
    let Some(row) = row else {
        return axum::Json(Value::Null);
    };
    let doc: Value = row
        .try_get::<String, _>("doc")
        .ok()
        .and_then(|d| serde_json::from_str(&d).ok())
        .unwrap_or(Value::Null);
    let orders = sqlx::query(
        "SELECT order_id, status, total_minor, currency, item_count, created_at FROM customer_orders \
         WHERE customer_id = $1 ORDER BY created_at DESC, order_id DESC LIMIT 20",
    )
    .bind(&id)
    .fetch_all(&pool)
    .await
    .unwrap_or_default();
    let edges: Vec<Value> = orders
        .iter()
        .map(|o| {
            json!({"node": {
                "id": o.try_get::<String, _>("order_id").unwrap_or_default(),
                "status": o.try_get::<String, _>("status").unwrap_or_default(),
                "total": {"amountMinor": o.try_get::<i32, _>("total_minor").unwrap_or_default(),
                          "currency": o.try_get::<String, _>("currency").unwrap_or_default()},
                "itemCount": o.try_get::<i32, _>("item_count").unwrap_or_default(),
                "createdAt": o.try_get::<String, _>("created_at").unwrap_or_default(),
            }})
        })
        .collect();
    axum::Json(json!({"data": {"customer": {
        "id": row.try_get::<String, _>("user_id").unwrap_or_default(),
        "email": row.try_get::<String, _>("email").unwrap_or_default(),
        "name": row.try_get::<String, _>("name").unwrap_or_default(),
        "status": row.try_get::<String, _>("status").unwrap_or_default(),
        "orderCount": row.try_get::<i32, _>("order_count").unwrap_or_default(),
        "lifetimeSpend": doc.get("lifetime_spend").cloned().unwrap_or(Value::Null),
        "orders": {"edges": edges},
    }}}))
}
