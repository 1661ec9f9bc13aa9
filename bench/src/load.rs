//! Load generators and their baselines.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use auth::{Authenticator, Role, Secret};
use rand::Rng;
use serde_json::{json, Value};
use sqlx::Row;
use tokio::sync::Mutex;

/// Latencies of one load step.
#[derive(Debug, Default, Clone)]
pub struct Latencies {
    pub samples: Vec<Duration>,
    pub errors: u64,
    /// Failed requests by HTTP status (0: no answer).
    pub failures: std::collections::BTreeMap<u16, u64>,
    pub elapsed: Duration,
}

impl Latencies {
    pub fn rate(&self) -> f64 {
        self.samples.len() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Percentile `q` in milliseconds.
    pub fn p(&self, q: f64) -> f64 {
        if self.samples.is_empty() {
            return 0.0;
        }
        let mut s = self.samples.clone();
        s.sort_unstable();
        let i = ((q / 100.0) * (s.len() - 1) as f64).round() as usize;
        s[i.min(s.len() - 1)].as_secs_f64() * 1000.0
    }

    fn merge(&mut self, other: Latencies) {
        self.samples.extend(other.samples);
        self.errors += other.errors;
        for (k, v) in other.failures {
            *self.failures.entry(k).or_default() += v;
        }
    }
}

/// Runs `clients` copies of `step` for `dur`; each call returns the
/// latencies it measured.
async fn run_clients<F, Fut>(clients: usize, dur: Duration, step: F) -> Latencies
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Latencies> + Send,
{
    let step = Arc::new(step);
    let started = Instant::now();
    let deadline = started + dur;
    let mut tasks = Vec::new();
    for c in 0..clients {
        let step = step.clone();
        tasks.push(tokio::spawn(async move {
            let mut l = Latencies::default();
            while Instant::now() < deadline {
                l.merge(step(c).await);
            }
            l
        }));
    }
    let mut all = Latencies::default();
    for t in tasks {
        if let Ok(l) = t.await {
            all.merge(l);
        }
    }
    all.elapsed = started.elapsed();
    all
}

/// The command and query APIs of one running process.
#[derive(Clone)]
pub struct Api {
    client: reqwest::Client,
    base: String,
    auth: Arc<Authenticator>,
    admin: String,
}

impl Api {
    pub fn new(base: &str, secret: &str) -> Self {
        let auth = Authenticator::new(Secret::new(secret.to_string()));
        let admin = auth.mint("bench", Role::Admin, chrono::Duration::hours(2));
        Self {
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(256)
                .build()
                .unwrap_or_default(),
            base: base.to_string(),
            auth: Arc::new(auth),
            admin,
        }
    }

    fn customer_token(&self, id: &str) -> String {
        self.auth
            .mint(id, Role::Customer, chrono::Duration::hours(2))
    }

    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (bool, Value) {
        let (status, v) = self.post_status(path, token, body).await;
        ((200..300).contains(&status), v)
    }

    async fn post_status(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        let mut req = self.client.post(format!("{}{path}", self.base)).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        match req.send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                (status, r.json().await.unwrap_or(Value::Null))
            }
            Err(_) => (0, Value::Null),
        }
    }

    /// A catalog of `n` products; returns their SKUs.
    pub async fn catalog(&self, n: usize) -> anyhow::Result<Vec<String>> {
        let mut skus = Vec::new();
        let tag = &uuid::Uuid::new_v4().simple().to_string()[..6];
        for i in 0..n {
            let sku = format!("B{tag}-{i}").to_uppercase();
            let (ok, body) = self
                .post(
                    "/v1/products",
                    Some(&self.admin),
                    json!({"sku": sku, "name": format!("Bench product {i}"),
                           "unit_price": {"amount_minor": 500 + 37 * i, "currency": "EUR"}}),
                )
                .await;
            anyhow::ensure!(ok, "cannot create a product: {body}");
            skus.push(sku);
        }
        Ok(skus)
    }

    /// A timed command; `Err` on a non-2xx answer.
    async fn timed(
        &self,
        l: &mut Latencies,
        path: &str,
        token: Option<&str>,
        body: Value,
    ) -> Option<Value> {
        let t = Instant::now();
        let (status, v) = self.post_status(path, token, body).await;
        if (200..300).contains(&status) {
            l.samples.push(t.elapsed());
            Some(v)
        } else {
            l.errors += 1;
            *l.failures.entry(status).or_default() += 1;
            None
        }
    }

    /// One customer's realistic session: sign up, create an order, add two
    /// items, place it (five commands).
    async fn session(&self, skus: &[String]) -> Latencies {
        let mut l = Latencies::default();
        let email = format!("{}@bench.example.com", uuid::Uuid::new_v4().simple());
        let Some(user) = self
            .timed(
                &mut l,
                "/v1/users",
                None,
                json!({"email": email, "name": "Bench"}),
            )
            .await
        else {
            return l;
        };
        let id = user["id"].as_str().unwrap_or_default().to_string();
        let token = self.customer_token(&id);
        let Some(order) = self
            .timed(
                &mut l,
                "/v1/orders",
                Some(&token),
                json!({"customer_id": id, "currency": "EUR"}),
            )
            .await
        else {
            return l;
        };
        let order = order["id"].as_str().unwrap_or_default().to_string();
        // Two different products (the same one twice is a business
        // rejection, not load).
        let first = rand::thread_rng().gen_range(0..skus.len());
        let second = (first + rand::thread_rng().gen_range(1..skus.len().max(2))) % skus.len();
        for sku in [&skus[first], &skus[second]] {
            let q = rand::thread_rng().gen_range(1..4);
            self.timed(
                &mut l,
                &format!("/v1/orders/{order}/items"),
                Some(&token),
                json!({"sku": sku, "quantity": q}),
            )
            .await;
        }
        self.timed(
            &mut l,
            &format!("/v1/orders/{order}/place"),
            Some(&token),
            Value::Null,
        )
        .await;
        l
    }

    /// Sustained command load: `clients` customers running sessions back to back.
    pub async fn command_load(&self, skus: &[String], clients: usize, dur: Duration) -> Latencies {
        let api = self.clone();
        let skus = Arc::new(skus.to_vec());
        run_clients(clients, dur, move |_| {
            let api = api.clone();
            let skus = skus.clone();
            async move { api.session(&skus).await }
        })
        .await
    }

    /// A customer with `n` placed orders; returns its id once the customer
    /// view shows them.
    pub async fn customer_with_orders(&self, skus: &[String], n: usize) -> anyhow::Result<String> {
        let email = format!("{}@bench.example.com", uuid::Uuid::new_v4().simple());
        let (ok, user) = self
            .post(
                "/v1/users",
                None,
                json!({"email": email, "name": "Many Orders"}),
            )
            .await;
        anyhow::ensure!(ok, "register: {user}");
        let id = user["id"].as_str().context("id")?.to_string();
        let token = self.customer_token(&id);
        let mut position = 0;
        for i in 0..n {
            let (ok, order) = self
                .post(
                    "/v1/orders",
                    Some(&token),
                    json!({"customer_id": id, "currency": "EUR"}),
                )
                .await;
            anyhow::ensure!(ok, "order: {order}");
            let oid = order["id"].as_str().context("order id")?;
            let sku = &skus[i % skus.len()];
            self.post(
                &format!("/v1/orders/{oid}/items"),
                Some(&token),
                json!({"sku": sku, "quantity": 1}),
            )
            .await;
            let (ok, placed) = self
                .post(
                    &format!("/v1/orders/{oid}/place"),
                    Some(&token),
                    Value::Null,
                )
                .await;
            anyhow::ensure!(ok, "place: {placed}");
            position = placed["position"].as_i64().unwrap_or(position);
        }
        let (_, body) = self
            .graphql(CUSTOMER, json!({"id": id}), Some(position))
            .await;
        anyhow::ensure!(
            body["data"]["customer"]["orderCount"].as_i64() == Some(n as i64),
            "the customer view does not show {n} orders: {body}"
        );
        Ok(id)
    }

    async fn graphql(&self, query: &str, variables: Value, token: Option<i64>) -> (bool, Value) {
        let mut req = self
            .client
            .post(format!("{}/graphql", self.base))
            .bearer_auth(&self.admin)
            .json(&json!({"query": query, "variables": variables}));
        if let Some(p) = token {
            req = req.header("x-consistency-token", p.to_string());
        }
        match req.send().await {
            Ok(r) => {
                let ok = r.status().is_success();
                let v: Value = r.json().await.unwrap_or(Value::Null);
                (ok && v.get("errors").is_none(), v)
            }
            Err(_) => (false, Value::Null),
        }
    }

    async fn timed_graphql(&self, query: &'static str, variables: Value) -> Latencies {
        let mut l = Latencies::default();
        let t = Instant::now();
        let (ok, _) = self.graphql(query, variables, None).await;
        if ok {
            l.samples.push(t.elapsed());
        } else {
            l.errors += 1;
        }
        l
    }

    pub async fn graphql_customer_load(
        &self,
        id: &str,
        clients: usize,
        dur: Duration,
    ) -> Latencies {
        let api = self.clone();
        let id = id.to_string();
        run_clients(clients, dur, move |_| {
            let api = api.clone();
            let vars = json!({"id": id});
            async move { api.timed_graphql(CUSTOMER, vars).await }
        })
        .await
    }

    pub async fn analytics_load(&self, clients: usize, dur: Duration) -> Latencies {
        let api = self.clone();
        let to = chrono::Utc::now().date_naive();
        let from = to - chrono::Duration::days(365);
        run_clients(clients, dur, move |_| {
            let api = api.clone();
            let vars = json!({"from": from.to_string(), "to": to.to_string()});
            async move { api.timed_graphql(ANALYTICS, vars).await }
        })
        .await
    }

    /// Background sign-ups at about `rate` commands/s until stopped.
    pub fn paced_load(&self, skus: Vec<String>, rate: f64) -> Paced {
        let stop = Arc::new(AtomicBool::new(false));
        let result = Arc::new(Mutex::new(Latencies::default()));
        let api = self.clone();
        let started = Instant::now();
        let (s, r) = (stop.clone(), result.clone());
        let skus = Arc::new(skus);
        let task = tokio::spawn(async move {
            // Sessions are five commands.
            let mut tick = tokio::time::interval(Duration::from_secs_f64(5.0 / rate));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut running = Vec::new();
            while !s.load(Ordering::Relaxed) {
                tick.tick().await;
                let (api, r, skus) = (api.clone(), r.clone(), skus.clone());
                running.push(tokio::spawn(async move {
                    let l = api.session(&skus).await;
                    r.lock().await.merge(l);
                }));
                running.retain(|t| !t.is_finished());
            }
            for t in running {
                let _ = t.await;
            }
        });
        Paced {
            stop,
            result,
            task,
            started,
        }
    }

    /// Command acknowledged → visible through GraphQL: with the consistency
    /// token (one request that waits) and without (polling).
    pub async fn freshness(&self, probes: usize) -> (Latencies, Latencies) {
        let mut with_token = Latencies::default();
        let mut without = Latencies::default();
        for i in 0..probes {
            let email = format!(
                "fresh-{i}-{}@bench.example.com",
                uuid::Uuid::new_v4().simple()
            );
            let (ok, user) = self
                .post("/v1/users", None, json!({"email": email, "name": "Fresh"}))
                .await;
            let acked = Instant::now();
            if !ok {
                with_token.errors += 1;
                continue;
            }
            let id = user["id"].as_str().unwrap_or_default().to_string();
            let position = user["position"].as_i64();
            if i % 2 == 0 {
                let (ok, body) = self.graphql(VISIBLE, json!({"id": id}), position).await;
                if ok && body["extensions"]["consistency"]["stale"] == json!(false) {
                    with_token.samples.push(acked.elapsed());
                } else {
                    with_token.errors += 1;
                }
            } else {
                let deadline = acked + Duration::from_secs(10);
                loop {
                    let (ok, _) = self.graphql(VISIBLE, json!({"id": id}), None).await;
                    if ok {
                        without.samples.push(acked.elapsed());
                        break;
                    }
                    if Instant::now() > deadline {
                        without.errors += 1;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        (with_token, without)
    }
}

/// A running paced load.
pub struct Paced {
    stop: Arc<AtomicBool>,
    result: Arc<Mutex<Latencies>>,
    task: tokio::task::JoinHandle<()>,
    started: Instant,
}

impl Paced {
    pub async fn stop(self) -> Latencies {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        let mut l = self.result.lock().await.clone();
        l.elapsed = self.started.elapsed();
        l
    }
}

const CUSTOMER: &str = "query($id: ID!) { customer(id: $id) { id email name status orderCount \
    lifetimeSpend { amountMinor currency } orders(first: 20) { edges { node { id status \
    total { amountMinor currency } itemCount createdAt } } } } }";

const VISIBLE: &str = "query($id: ID!) { customer(id: $id) { id } }";

const ANALYTICS: &str = "query($from: NaiveDate!, $to: NaiveDate!) { analytics { \
    revenue(from: $from, to: $to, granularity: MONTH, currency: \"EUR\") { bucket amount { amountMinor } } \
    topProducts(from: $from, to: $to, by: REVENUE, limit: 10) { sku } \
    funnel(from: $from, to: $to) { created placed paid } } }";

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
    use axum::extract::{Path, State};
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(8)
        .connect(url)
        .await?;
    async fn customer(
        State(pool): State<sqlx::PgPool>,
        Path(id): Path<String>,
    ) -> axum::Json<Value> {
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
    let app = axum::Router::new()
        .route("/customer/{id}", axum::routing::get(customer))
        .with_state(pool.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/customer/{id}");
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
    pool.close().await;
    Ok(l)
}

/// Baseline for rebuilds: raw batched INSERT rows/s into a copy of the
/// live `order_view` table (500 rows per statement, one transaction per
/// 1000 rows, like a projection batch).
pub async fn raw_read_model_inserts(url: &str, rows: usize) -> anyhow::Result<f64> {
    let pool = sqlx::PgPool::connect(url).await?;
    let g: i64 =
        sqlx::query_scalar("SELECT generation FROM projection_live WHERE name = 'order_view'")
            .fetch_one(&pool)
            .await?;
    sqlx::query(&format!(
        "CREATE TABLE bench_order_view (LIKE order_view_g{g} INCLUDING ALL)"
    ))
    .execute(&pool)
    .await?;
    let doc = json!({"items": [{"sku": "TEE-1", "name": "Tee", "quantity": 2, "unit_price_minor": 1999, "line_total_minor": 3998}],
                     "history": [{"status": "placed", "at": "2026-03-14T09:26:53Z"}], "payment": null})
    .to_string();
    let started = Instant::now();
    let mut done = 0;
    while done < rows {
        let mut tx = pool.begin().await?;
        for _ in 0..2 {
            let mut sql = String::from(
                "INSERT INTO bench_order_view (order_id, customer_id, status, currency, total_minor, item_count, created_at, updated_at, doc) VALUES ",
            );
            let n = 500;
            for i in 0..n {
                let b = i * 9;
                if i > 0 {
                    sql.push(',');
                }
                sql.push_str(&format!(
                    "(${},${},${},${},${},${},${},${},${})",
                    b + 1,
                    b + 2,
                    b + 3,
                    b + 4,
                    b + 5,
                    b + 6,
                    b + 7,
                    b + 8,
                    b + 9
                ));
            }
            let mut q = sqlx::query(&sql);
            for _ in 0..n {
                q = q
                    .bind(uuid::Uuid::new_v4().to_string())
                    .bind(uuid::Uuid::new_v4().to_string())
                    .bind("placed")
                    .bind("EUR")
                    .bind(3998i32)
                    .bind(2i32)
                    .bind("2026-03-14T09:26:53.000000Z")
                    .bind("2026-03-14T09:26:53.000000Z")
                    .bind(&doc);
            }
            q.execute(&mut *tx).await?;
            done += n;
        }
        tx.commit().await?;
    }
    let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-9);
    sqlx::query("DROP TABLE bench_order_view")
        .execute(&pool)
        .await?;
    pool.close().await;
    Ok(rate)
}
