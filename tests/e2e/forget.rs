//! The right to be forgotten (crypto-shredding), end to end: after
//! `POST /v1/users/{id}/forget`, a plain-text scan of the whole store (the
//! SQLite file; `pg_dump` of PostgreSQL) and of every record in the Kafka
//! topic finds none of the user's e-mail, name or address, while another
//! user's data is intact and readable; analytics are unchanged and a full
//! rebuild shows only the placeholder.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{run_cli, Server};

/// What Ada gives the shop: every string must vanish.
const ADA: [&str; 5] = [
    "ada.forget@example.com",
    "Ada Forgetme",
    "Forgotten Lane 7",
    "Shadowtown",
    "ZX-4711",
];
/// What Bob gives: must stay readable.
const BOB: [&str; 3] = ["bob.keep@example.com", "Bob Keepme", "Kept Street 9"];

const CUSTOMER: &str = "query($id: ID!) { customer(id: $id) {
    email name status shippingAddress { line1 city postalCode } } }";
const ANALYTICS: &str = "{ analytics {
    newCustomers(from: \"2000-01-01\", to: \"2100-01-01\")
    ordersByStatus { status count } } }";

async fn send(
    server: &Server,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Value,
) -> (u16, Value) {
    let r = server
        .client()
        .request(method, format!("{}{path}", server.base()))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    let ct = crate::helpers::media_type(&r);
    let body = r.json().await.unwrap_or(Value::Null);
    if status >= 400 {
        assert_eq!(ct, "application/problem+json", "{body}");
    }
    (status, body)
}

/// A customer with an address and a placed order; returns (id, position).
async fn customer(server: &Server, data: &Path, who: &[&str], postal: &str) -> (String, i64) {
    let (s, user) = server
        .post("/v1/users", None, json!({"email": who[0], "name": who[1]}))
        .await;
    assert_eq!(s, 201, "{user}");
    let id = user["id"].as_str().expect("id").to_string();
    let token = run_cli(data, &["token", "--sub", &id, "--role", "customer"]);
    let address = json!({"shipping_address": {"line1": who[2], "city": who.get(3).unwrap_or(&"Keepville"),
                                              "postal_code": postal, "country": "DE"}});
    let (s, body) = send(
        server,
        reqwest::Method::PATCH,
        &format!("/v1/users/{id}"),
        &token,
        address,
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let order = json!({"customer_id": id, "currency": "EUR"});
    let (s, order) = send(server, reqwest::Method::POST, "/v1/orders", &token, order).await;
    assert_eq!(s, 201, "{order}");
    let order_id = order["id"].as_str().expect("order id");
    let item = json!({"sku": "FORGET-1", "quantity": 2});
    let path = format!("/v1/orders/{order_id}/items");
    let (s, _) = send(server, reqwest::Method::POST, &path, &token, item).await;
    assert_eq!(s, 200);
    let path = format!("/v1/orders/{order_id}/place");
    let (s, placed) = send(server, reqwest::Method::POST, &path, &token, json!({})).await;
    assert_eq!(s, 200, "{placed}");
    (id, placed["position"].as_i64().expect("position"))
}

async fn ask(server: &Server, admin: &str, at: Option<i64>, query: &str, vars: Value) -> Value {
    let (s, body) = server.graphql(Some(admin), at, query, vars).await;
    assert_eq!(s, 200, "{body}");
    assert!(body.get("errors").is_none(), "{body}");
    body["data"].clone()
}

/// Until the customer view shows `status` for `id` (projections are async).
async fn until_status(server: &Server, admin: &str, id: &str, status: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let c = ask(server, admin, None, CUSTOMER, json!({"id": id})).await["customer"].clone();
        if c["status"] == status {
            return c;
        }
        assert!(tokio::time::Instant::now() < deadline, "customer {id}: {c}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Everything up to the scan: both customers, the forget, its refusals,
/// analytics before and after, and a rebuild. Returns Bob's id and Ada's.
async fn forget_story(server: &Server, data: &Path) -> (String, String) {
    let admin = run_cli(data, &["token", "--sub", "ops", "--role", "admin"]);
    let product = json!({"sku": "FORGET-1", "name": "Tee", "unit_price": {"amount_minor": 1500, "currency": "EUR"}});
    let (s, _) = server.post("/v1/products", Some(&admin), product).await;
    assert_eq!(s, 201);
    let (ada, _) = customer(server, data, &ADA, ADA[4]).await;
    let (bob, position) = customer(server, data, &BOB, "10115").await;
    let seen = ask(server, &admin, Some(position), CUSTOMER, json!({"id": ada})).await;
    assert_eq!(seen["customer"]["email"], ADA[0], "{seen}");
    assert_eq!(
        seen["customer"]["shippingAddress"]["line1"], ADA[2],
        "{seen}"
    );
    let before = ask(server, &admin, Some(position), ANALYTICS, Value::Null).await;

    // Only an admin forgets; unknown users are 404; a repeat is 409.
    let customer_token = run_cli(data, &["token", "--sub", &ada, "--role", "customer"]);
    let path = format!("/v1/users/{ada}/forget");
    let (s, _) = send(
        server,
        reqwest::Method::POST,
        &path,
        &customer_token,
        json!({}),
    )
    .await;
    assert_eq!(s, 403);
    let unknown = format!("/v1/users/{}/forget", uuid::Uuid::new_v4());
    let (s, _) = send(server, reqwest::Method::POST, &unknown, &admin, json!({})).await;
    assert_eq!(s, 404);
    let (s, done) = send(server, reqwest::Method::POST, &path, &admin, json!({})).await;
    assert_eq!(s, 200, "{done}");
    let (s, again) = send(server, reqwest::Method::POST, &path, &admin, json!({})).await;
    assert_eq!(s, 409, "{again}");
    assert_eq!(again["rule"], "user_already_forgotten", "{again}");
    // A forgotten user takes no command.
    let change = json!({"name": "Ada Again"});
    let (s, refused) = send(
        server,
        reqwest::Method::PATCH,
        &format!("/v1/users/{ada}"),
        &admin,
        change,
    )
    .await;
    assert_eq!(s, 409, "{refused}");

    let gone = until_status(server, &admin, &ada, "forgotten").await;
    assert_eq!(gone["email"], "(forgotten)", "{gone}");
    assert_eq!(gone["name"], "(forgotten)", "{gone}");
    assert_eq!(gone["shippingAddress"], Value::Null, "{gone}");
    let kept = ask(server, &admin, None, CUSTOMER, json!({"id": bob})).await;
    assert_eq!(kept["customer"]["email"], BOB[0], "{kept}");
    assert_eq!(
        kept["customer"]["shippingAddress"]["line1"], BOB[2],
        "{kept}"
    );
    let after = ask(
        server,
        &admin,
        done["position"].as_i64(),
        ANALYTICS,
        Value::Null,
    )
    .await;
    assert_eq!(
        before, after,
        "analytics do not change when a person is forgotten"
    );

    // A full rebuild of the customer view: the placeholder, never the data.
    crate::helpers::rebuild_and_wait(server, &admin, "customer_view").await;
    let rebuilt = until_status(server, &admin, &ada, "forgotten").await;
    assert_eq!(rebuilt["email"], "(forgotten)", "{rebuilt}");
    let kept = ask(server, &admin, None, CUSTOMER, json!({"id": bob})).await;
    assert_eq!(kept["customer"]["name"], BOB[1], "{kept}");
    (bob, ada)
}

/// Which of `needles` occur in `haystack`.
fn found<'a>(haystack: &[u8], needles: &[&'a str]) -> Vec<&'a str> {
    needles
        .iter()
        .copied()
        .filter(|n| haystack.windows(n.len()).any(|w| w == n.as_bytes()))
        .collect()
}

/// The address is free again once the scan is done.
async fn address_is_free(server: &Server) {
    let (s, body) = server
        .post(
            "/v1/users",
            None,
            json!({"email": ADA[0], "name": "A new person"}),
        )
        .await;
    assert_eq!(s, 201, "the forgotten address signs up anew: {body}");
}

#[tokio::test]
async fn a_forgotten_user_leaves_no_plain_text_in_the_embedded_store() {
    let data = tempfile::tempdir().expect("tempdir");
    let server = Server::start(data.path(), None).await;
    forget_story(&server, data.path()).await;
    server.stop().await;
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(data.path()).expect("data dir") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.starts_with("shopstream.db") {
            bytes.extend(std::fs::read(&path).expect("read the store"));
        }
    }
    assert!(bytes.len() > 10_000);
    assert_eq!(
        found(&bytes, &ADA),
        Vec::<&str>::new(),
        "Ada is in the SQLite file"
    );
    assert_eq!(
        found(&bytes, &BOB),
        BOB.to_vec(),
        "the scan sees plain text"
    );
    let server = Server::start(data.path(), None).await;
    address_is_free(&server).await;
}

#[tokio::test]
async fn a_forgotten_user_leaves_no_plain_text_in_postgres_or_kafka() {
    let _serial = crate::kafka::SERIAL.lock().await;
    let t = eventlog::testing::TestDatabase::postgres().await;
    let mut broker = crate::kafka::Broker::new();
    broker.start().await;
    let data = tempfile::tempdir().expect("tempdir");
    let topic = format!("shopstream.forget.{}", uuid::Uuid::new_v4().simple());
    let server = Server::start_bin(
        crate::helpers::BIN,
        &[
            "serve",
            "--kafka-brokers",
            &broker.address(),
            "--kafka-topic",
            &topic,
        ],
        data.path(),
        Some(&t.url),
    )
    .await;
    forget_story(&server, data.path()).await;

    let dump = std::process::Command::new("pg_dump")
        .args(["--data-only", &t.url])
        .output()
        .expect("pg_dump");
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    assert_eq!(
        found(&dump.stdout, &ADA),
        Vec::<&str>::new(),
        "Ada is in pg_dump"
    );
    assert_eq!(
        found(&dump.stdout, &BOB),
        BOB.to_vec(),
        "the scan sees plain text"
    );

    let records = crate::kafka::all_records(&broker.address(), &topic).await;
    assert!(records.len() >= 12, "{} records", records.len());
    let all: Vec<u8> = records.concat();
    assert_eq!(found(&all, &ADA), Vec::<&str>::new(), "Ada is in the topic");
    // Bob's records hold ciphertext too: the topic never had plain text.
    assert_eq!(found(&all, &BOB), Vec::<&str>::new());
    assert!(found(&all, &["\"sealed\""]).len() == 1);
    address_is_free(&server).await;
    server.stop().await;
    t.drop_database().await;
}
