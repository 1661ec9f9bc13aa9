//! Load generators and their baselines.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use auth::{Authenticator, Role, Secret};
use rand::Rng;
use serde_json::{json, Value};

mod baselines;
mod dashboard;
mod queries;
pub use queries::Paced;

pub use baselines::{bare_handler_load, raw_inserts};
pub use dashboard::bare_dashboard_load;
use queries::CUSTOMER;

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
pub(crate) async fn run_clients<F, Fut>(clients: usize, dur: Duration, step: F) -> Latencies
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
    /// Where GraphQL is (the same process, unless the query API runs alone).
    query_base: String,
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
            query_base: base.to_string(),
            auth: Arc::new(auth),
            admin,
        }
    }

    /// The same client, reading GraphQL from `query_base`.
    #[must_use]
    pub fn querying(mut self, query_base: &str) -> Self {
        self.query_base = query_base.to_string();
        self
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
}
