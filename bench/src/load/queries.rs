//! GraphQL loads, freshness probes and the paced background load.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::Mutex;

use super::{run_clients, Api, Latencies};

impl Api {
    pub(super) async fn graphql(
        &self,
        query: &str,
        variables: Value,
        token: Option<i64>,
    ) -> (bool, Value) {
        let mut req = self
            .client
            .post(format!("{}/graphql", self.query_base))
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
        let from = to - chrono::Duration::days(364);
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

    /// Command acknowledged → visible through GraphQL: `probes` with the
    /// consistency token (one request that waits) and `probes` without
    /// (polling), alternated.
    pub async fn freshness(&self, probes: usize) -> (Latencies, Latencies) {
        let mut with_token = Latencies::default();
        let mut without = Latencies::default();
        for _ in 0..probes {
            for (token, into) in [(true, &mut with_token), (false, &mut without)] {
                match self.probe(token).await {
                    Some(took) => into.samples.push(took),
                    None => into.errors += 1,
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        (with_token, without)
    }

    /// One probe: a sign-up, then how long until GraphQL shows it (with
    /// the token: one request that waits; without: polling, 10 s at most).
    /// `None`: the command failed or the user never showed.
    pub async fn probe(&self, token: bool) -> Option<Duration> {
        let email = format!("fresh-{}@bench.example.com", uuid::Uuid::new_v4().simple());
        let (ok, user) = self
            .post("/v1/users", None, json!({"email": email, "name": "Fresh"}))
            .await;
        let acked = Instant::now();
        if !ok {
            return None;
        }
        let id = user["id"].as_str().unwrap_or_default().to_string();
        if token {
            let position = user["position"].as_i64();
            let (ok, body) = self.graphql(VISIBLE, json!({"id": id}), position).await;
            let fresh = ok && body["extensions"]["consistency"]["stale"] == json!(false);
            return fresh.then(|| acked.elapsed());
        }
        let deadline = acked + Duration::from_secs(10);
        loop {
            let (ok, _) = self.graphql(VISIBLE, json!({"id": id}), None).await;
            if ok {
                return Some(acked.elapsed());
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
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

pub(super) const CUSTOMER: &str =
    "query($id: ID!) { customer(id: $id) { id email name status orderCount \
    lifetimeSpend { amountMinor currency } orders(first: 20) { edges { node { id status \
    total { amountMinor currency } itemCount createdAt } } } } }";

const VISIBLE: &str = "query($id: ID!) { customer(id: $id) { id } }";

/// The console's dashboard query (`web/console/dashboard.js`), for a year.
const ANALYTICS: &str = "query($from: NaiveDate!, $to: NaiveDate!) { analytics { currencies \
    revenue(from: $from, to: $to, granularity: MONTH, currency: \"EUR\") { bucket amount { amountMinor currency } } \
    topProducts(from: $from, to: $to, by: REVENUE, limit: 10) { sku name quantity revenue { amountMinor currency } } \
    funnel(from: $from, to: $to) { created placed paid shipped delivered cancelled } \
    paymentOutcomes(from: $from, to: $to) { initiated authorized captured failed refunded successRate \
      failuresByReason { reason count } } \
    averageOrderValue(from: $from, to: $to, currency: \"EUR\") { amountMinor currency } \
    newCustomers(from: $from, to: $to) } }";
