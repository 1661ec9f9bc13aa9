//! Hostile input against the real `serve` process: deeply nested GraphQL
//! that used to overflow a worker's stack and abort the process, then a
//! bounded fuzz run (random and grammar-shaped GraphQL, random JSON for the
//! REST commands) after which the process must still be alive and every
//! answer must have been a well-formed result or error. The run lasts
//! `SHOPSTREAM_FUZZ_SECONDS` (default 20); its seed is printed so a failure
//! can be replayed with `SHOPSTREAM_FUZZ_SEED`.

use std::time::{Duration, Instant};

use futures::SinkExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::graphql::subscriptions::{connect, next_json};
use crate::helpers::{run_cli, Server};

/// The two media types a GraphQL answer may come in (by the client's `Accept`).
fn is_graphql_media(media: &str) -> bool {
    media == "application/json" || media == "application/graphql-response+json"
}

fn nested(open: &str, close: &str, depth: usize, inner: &str) -> String {
    format!("{}{inner}{}", open.repeat(depth), close.repeat(depth))
}

/// The GraphQL error code of an answer, asserting the GraphQL media type.
async fn code_of(server: &Server, body: String) -> (u16, String) {
    let resp = server
        .client()
        .post(format!("{}/graphql", server.base()))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("the server answers");
    let status = resp.status().as_u16();
    let media = crate::helpers::media_type(&resp);
    let doc: Value = resp.json().await.expect("a JSON answer");
    if status == 200 {
        assert!(is_graphql_media(&media), "{media} {doc}");
        let code = doc["errors"][0]["extensions"]["code"]
            .as_str()
            .unwrap_or("none")
            .to_string();
        (status, code)
    } else {
        assert!(media.starts_with("application/problem+json"), "{doc}");
        (status, doc["type"].as_str().unwrap_or_default().to_string())
    }
}

#[tokio::test]
async fn deeply_nested_graphql_input_is_refused_and_the_process_lives() {
    let data = tempfile::tempdir().expect("tempdir");
    let server = Server::start(data.path(), None).await;
    let list = nested("[", "]", 2000, "1");
    let object = nested("{a:", "}", 1300, "1");
    let mut fragments = String::from("{ ...F0 }\n");
    for i in 0..400 {
        fragments.push_str(&format!("fragment F{i} on Query {{ ...F{} }}\n", i + 1));
    }
    let queries = [
        format!("{{ __typename(x: {list}) }}"),
        format!("{{ __typename(x: {object}) }}"),
        format!("{{ customers(filter: {{emailPrefix: {list}}}) {{ nodes {{ id }} }} }}"),
        format!("{{ customer(id: {object}) {{ id }} }}"),
        format!("{{ __typename @skip(if: {list}) }}"),
        format!("query($x: [Int] = {list}) {{ __typename }}"),
        format!("{{ {} }}", nested("a {", "}", 1500, "b")),
        fragments,
    ];
    for q in &queries {
        let (status, code) = code_of(&server, json!({ "query": q }).to_string()).await;
        assert_eq!(
            (status, code.as_str()),
            (200, "BAD_USER_INPUT"),
            "{}",
            &q[..60]
        );
    }
    // Deep variables: within the JSON parser's own limit they are refused
    // by the input limit; beyond it the body is refused as malformed.
    let mut deep = json!(1);
    for _ in 0..100 {
        deep = json!([deep]);
    }
    let body = json!({"query": "query($x: Int) { __typename }", "variables": {"x": deep}});
    assert_eq!(
        code_of(&server, body.to_string()).await,
        (200, "BAD_USER_INPUT".to_string())
    );
    let raw = format!(
        "{{\"query\":\"{{ __typename }}\",\"variables\":{{\"x\":{}}}}}",
        nested("[", "]", 5000, "1")
    );
    assert_eq!(code_of(&server, raw).await.0, 400);

    // The subscription path over WebSocket.
    let admin = run_cli(data.path(), &["token", "--sub", "ops", "--role", "admin"]);
    let mut ws = connect(&server, &admin).await;
    let subscribe = json!({"id": "1", "type": "subscribe",
        "payload": {"query": format!("subscription {{ orderUpdated(id: {list}) {{ id }} }}")}});
    ws.send(Message::Text(subscribe.to_string().into()))
        .await
        .expect("subscribe");
    let refused = next_json(&mut ws).await;
    assert!(refused.to_string().contains("BAD_USER_INPUT"), "{refused}");

    assert_eq!(server.get("/livez").await.0, 200);
    server.stop().await;
}

/// Grammar-shaped GraphQL: valid structure most of the time, with random
/// depth, names, values, directives and fragments; sometimes broken.
struct GraphqlGen<'r> {
    rng: &'r mut StdRng,
}

const FIELDS: &[&str] = &[
    "me",
    "customer",
    "customers",
    "order",
    "orders",
    "analytics",
    "projections",
    "__typename",
    "__schema",
    "id",
    "email",
    "nodes",
    "items",
    "status",
    "name",
    "revenue",
    "x",
];

impl GraphqlGen<'_> {
    fn value(&mut self, depth: usize) -> String {
        let r = self.rng.gen_range(0..12);
        if depth == 0 {
            return "1".into();
        }
        match r {
            0 => format!("[{}]", self.value(depth - 1)),
            1 => format!(
                "{{a: {}, b: {}}}",
                self.value(depth - 1),
                self.value(depth / 2)
            ),
            2 => format!("\"{}\"", self.string()),
            3 => self.rng.gen::<i64>().to_string(),
            4 => "1e400".into(),
            5 => "99999999999999999999999999999".into(),
            6 => "$v".into(),
            7 => "null".into(),
            8 => "\"\"\"block \\\"\"\" string\"\"\"".into(),
            9 => "ENUM_VALUE".into(),
            10 => "true".into(),
            _ => format!("{}", self.rng.gen::<f64>()),
        }
    }

    fn string(&mut self) -> String {
        let n = self.rng.gen_range(0..20);
        (0..n)
            .map(|_| match self.rng.gen_range(0..6) {
                0 => '\\',
                1 => '{',
                2 => 'é',
                3 => '\u{1F600}',
                _ => self.rng.gen_range('a'..='z'),
            })
            .filter(|c| *c != '\\')
            .collect()
    }

    fn selection(&mut self, depth: usize) -> String {
        let n = self.rng.gen_range(1..4);
        let mut out = String::from("{ ");
        for _ in 0..n {
            out.push_str(FIELDS[self.rng.gen_range(0..FIELDS.len())]);
            if self.rng.gen_bool(0.4) {
                let d = self.rng.gen_range(0..90);
                out.push_str(&format!(
                    "(id: {}, filter: {})",
                    self.value(d),
                    self.value(2)
                ));
            }
            if self.rng.gen_bool(0.1) {
                out.push_str(&format!(" @skip(if: {})", self.value(3)));
            }
            if depth > 0 && self.rng.gen_bool(0.5) {
                out.push(' ');
                out.push_str(&self.selection(depth - 1));
            }
            out.push(' ');
        }
        if self.rng.gen_bool(0.1) {
            out.push_str("...F ");
        }
        out.push('}');
        out
    }

    fn document(&mut self) -> String {
        let depth = self.rng.gen_range(0..80);
        let mut doc = match self.rng.gen_range(0..5) {
            0 => format!(
                "query Q($v: [Int] = {}) {}",
                self.value(3),
                self.selection(depth)
            ),
            1 => format!("subscription {}", self.selection(2)),
            2 => format!(
                "{}\nfragment F on Query {}",
                self.selection(depth),
                self.selection(3)
            ),
            3 => format!("# comment {{[(\n{}", self.selection(depth)),
            // Far past any sane nesting: what once overflowed the stack.
            4 if self.rng.gen_bool(0.2) => {
                let deep = self.rng.gen_range(500..4000);
                format!("{{ __typename(x: {}) }}", nested("[", "]", deep, "1"))
            }
            _ => self.selection(depth),
        };
        // Break it sometimes: cut, duplicate or flip a byte.
        if self.rng.gen_bool(0.3) && !doc.is_empty() {
            let at = self.rng.gen_range(0..doc.len());
            if doc.is_char_boundary(at) {
                match self.rng.gen_range(0..3) {
                    0 => doc.truncate(at),
                    1 => doc.insert_str(at, "{[("),
                    _ => doc.insert(at, '"'),
                }
            }
        }
        doc
    }
}

/// Random JSON: wrong types, unknown fields, deep nesting, extreme numbers.
fn random_json(rng: &mut StdRng, depth: usize) -> Value {
    let keys = [
        "email",
        "name",
        "sku",
        "quantity",
        "unit_price",
        "amount_minor",
        "currency",
        "customer_id",
        "order_id",
        "payment_id",
        "amount",
        "reason",
        "x",
    ];
    match rng.gen_range(0..10) {
        _ if depth == 0 => json!(1),
        0 => json!(rng.gen::<i64>()),
        1 => json!(rng.gen::<f64>() * 1e300),
        2 => json!("a".repeat(rng.gen_range(0..3000))),
        3 => Value::Null,
        4 => json!(rng.gen_bool(0.5)),
        5 => json!([random_json(rng, depth - 1)]),
        6 => json!("EUR"),
        7 => json!(u64::MAX),
        _ => {
            let mut map = serde_json::Map::new();
            for _ in 0..rng.gen_range(0..5) {
                let k = keys[rng.gen_range(0..keys.len())];
                map.insert(k.to_string(), random_json(rng, depth - 1));
            }
            Value::Object(map)
        }
    }
}

async fn fuzz_worker(server: &Server, admin: &str, seed: u64, until: Instant) -> u64 {
    let mut rng = StdRng::seed_from_u64(seed);
    let client = reqwest::Client::new();
    let paths = [
        ("POST", "/v1/users"),
        ("PATCH", "/v1/users/00000000-0000-4000-8000-000000000000"),
        ("POST", "/v1/products"),
        ("PATCH", "/v1/products/TEE-1"),
        ("POST", "/v1/orders"),
        (
            "POST",
            "/v1/orders/00000000-0000-4000-8000-000000000000/items",
        ),
        (
            "PUT",
            "/v1/orders/00000000-0000-4000-8000-000000000000/items/TEE-1",
        ),
        ("POST", "/v1/payments"),
        (
            "POST",
            "/v1/payments/00000000-0000-4000-8000-000000000000/fail",
        ),
    ];
    let mut sent = 0;
    while Instant::now() < until {
        let (url, method, body, graphql) = if rng.gen_bool(0.5) {
            let query = GraphqlGen { rng: &mut rng }.document();
            let body = if rng.gen_bool(0.8) {
                json!({"query": query, "variables": random_json(&mut rng, 4)}).to_string()
            } else {
                query
            };
            (
                format!("{}/graphql", server.base()),
                "POST",
                body.into_bytes(),
                true,
            )
        } else {
            let (method, path) = paths[rng.gen_range(0..paths.len())];
            let body = match rng.gen_range(0..4) {
                0 => (0..rng.gen_range(0..200))
                    .map(|_| rng.gen::<u8>())
                    .collect(),
                1 => {
                    let deep = rng.gen_range(100..400);
                    format!("{}1{}", "[".repeat(deep), "]".repeat(deep)).into_bytes()
                }
                _ => random_json(&mut rng, 6).to_string().into_bytes(),
            };
            (format!("{}{path}", server.base()), method, body, false)
        };
        let mut req = client
            .request(method.parse().expect("method"), url)
            .header("content-type", "application/json")
            .body(body);
        if rng.gen_bool(0.5) {
            req = req.bearer_auth(admin);
        }
        if graphql && rng.gen_bool(0.5) {
            // The newer media type: request errors are 400 in it.
            req = req.header("accept", "application/graphql-response+json");
        }
        let resp = req.send().await.expect("the server answers every request");
        let status = resp.status().as_u16();
        let media = crate::helpers::media_type(&resp);
        let text = resp.text().await.expect("a body");
        assert!(status < 500, "seed {seed}: {status} {text}");
        let doc: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("seed {seed}: not JSON ({e}): {status} {text}"));
        if status >= 400 && !(graphql && is_graphql_media(&media)) {
            assert!(media.starts_with("application/problem+json"), "{text}");
            assert!(doc["type"].is_string(), "{text}");
        } else if graphql {
            assert!(is_graphql_media(&media), "{media} {text}");
            assert!(
                doc.get("data").is_some() || doc.get("errors").is_some(),
                "{text}"
            );
            if let Some(errors) = doc["errors"].as_array() {
                for e in errors {
                    assert!(e["message"].is_string(), "{text}");
                }
            }
        }
        sent += 1;
    }
    sent
}

#[tokio::test]
async fn fuzzed_graphql_and_rest_input_never_stops_the_process() {
    let data = tempfile::tempdir().expect("tempdir");
    let server = Server::start(data.path(), None).await;
    let admin = run_cli(data.path(), &["token", "--sub", "ops", "--role", "admin"]);
    let seconds: u64 = std::env::var("SHOPSTREAM_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let seed: u64 = std::env::var("SHOPSTREAM_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().gen());
    eprintln!("fuzz seed {seed} for {seconds} s (SHOPSTREAM_FUZZ_SEED to replay)");
    let until = Instant::now() + Duration::from_secs(seconds);
    let workers = (0..4u64).map(|i| fuzz_worker(&server, &admin, seed.wrapping_add(i), until));
    let sent: u64 = futures::future::join_all(workers).await.into_iter().sum();
    assert!(sent > 100, "only {sent} requests in {seconds} s");
    assert_eq!(server.get("/livez").await.0, 200);
    server.stop().await;
}
