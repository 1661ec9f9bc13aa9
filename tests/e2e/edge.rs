//! GraphQL at the edge: one media type for every answer, tokens past the
//! maximum lifetime refused, and live subscriptions capped per WebSocket
//! connection and in total.

use futures::SinkExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::graphql::subscriptions::{connect, next_json};
use crate::helpers::{run_cli, Server};

const BIN: &str = env!("CARGO_BIN_EXE_shopstream");

async fn graphql_with(
    server: &Server,
    auth: Option<&str>,
    headers: &[(&str, &str)],
) -> (String, Value) {
    let mut req = server
        .client()
        .post(format!("{}/graphql", server.base()))
        .json(&json!({"query": "{ __typename }"}));
    // The newer media type unless the test names another.
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("accept"))
    {
        req = req.header("accept", "application/graphql-response+json");
    }
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("answer");
    assert_eq!(resp.status(), 200);
    let media = crate::helpers::media_type(&resp);
    (media, resp.json().await.expect("json"))
}

#[tokio::test]
async fn graphql_answers_share_one_media_type_and_refuse_long_lived_tokens() {
    let data = tempfile::tempdir().expect("tempdir");
    let args = ["serve", "--max-token-lifetime", "1h"];
    let server = Server::start_bin(BIN, &args, data.path(), None).await;
    let fine = run_cli(
        data.path(),
        &["token", "--sub", "ops", "--role", "admin", "--ttl", "30m"],
    );
    let long = run_cli(
        data.path(),
        &["token", "--sub", "ops", "--role", "admin", "--ttl", "2h"],
    );
    let media = "application/graphql-response+json";

    let (m, ok) = graphql_with(&server, Some(&format!("Bearer {fine}")), &[]).await;
    assert_eq!(
        (m.as_str(), &ok["data"]["__typename"]),
        (media, &json!("Query"))
    );
    for (auth, headers, code) in [
        (Some(format!("Bearer {long}")), vec![], "UNAUTHENTICATED"),
        (
            Some("Bearer garbage".to_string()),
            vec![],
            "UNAUTHENTICATED",
        ),
        (None, vec![("x-consistency-token", "-1")], "BAD_USER_INPUT"),
    ] {
        let (m, doc) = graphql_with(&server, auth.as_deref(), &headers).await;
        assert_eq!(m, media, "{doc}");
        assert_eq!(doc["errors"][0]["extensions"]["code"], code, "{doc}");
    }
    // GraphQL over HTTP: a client that accepts only application/json gets it.
    let (m, doc) = graphql_with(&server, None, &[("accept", "application/json")]).await;
    assert_eq!(m, "application/json", "{doc}");
    assert_eq!(doc["data"]["__typename"], "Query");
    let refused = |accept: Option<&'static str>, content_type: Option<&'static str>| {
        let mut req = server
            .client()
            .post(format!("{}/graphql", server.base()))
            .body("{\"query\":\"{ __typename }\"}");
        if let Some(a) = accept {
            req = req.header("accept", a);
        }
        if let Some(c) = content_type {
            req = req.header("content-type", c);
        }
        async move {
            let r = req.send().await.expect("answer");
            (r.status().as_u16(), crate::helpers::media_type(&r))
        }
    };
    let (s, m) = refused(Some("text/html"), Some("application/json")).await;
    assert_eq!(s, 406);
    assert!(m.starts_with("application/problem+json"), "{m}");
    let (s, m) = refused(None, None).await;
    assert_eq!(s, 415, "a POST without a content type is refused");
    assert!(m.starts_with("application/problem+json"), "{m}");
    let (_, doc) = graphql_with(&server, Some(&format!("Bearer {long}")), &[]).await;
    assert!(
        doc["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("maximum token lifetime")),
        "{doc}"
    );
    server.stop().await;
}

/// The code of the first error a subscription answered with.
async fn first_code(ws: &mut crate::graphql::subscriptions::Socket) -> String {
    let msg = next_json(ws).await;
    msg["payload"][0]["extensions"]["code"]
        .as_str()
        .or_else(|| msg["payload"]["errors"][0]["extensions"]["code"].as_str())
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn live_subscriptions_are_capped_per_connection_and_in_total() {
    let data = tempfile::tempdir().expect("tempdir");
    let args = [
        "serve",
        "--subscriptions-per-connection",
        "2",
        "--max-subscriptions",
        "3",
    ];
    let server = Server::start_bin(BIN, &args, data.path(), None).await;
    // An admin's subscription to an unknown customer stays open (NOT_FOUND
    // comes per event), so use a real customer the admin may watch.
    let (id, admin) =
        crate::helpers::visible_customer(&server, data.path(), "cap@example.com").await;
    let sub = |n: &str| {
        let query = "subscription($id: ID!) { customerUpdated(id: $id) { id } }";
        Message::Text(
            json!({"id": n, "type": "subscribe", "payload": {"query": query, "variables": {"id": id}}})
                .to_string()
                .into(),
        )
    };

    let mut first = connect(&server, &admin).await;
    for n in ["1", "2"] {
        first.send(sub(n)).await.expect("subscribe");
        let live = next_json(&mut first).await;
        assert_eq!(live["type"], "next", "{live}");
    }
    // A third on the same connection: over the per-connection cap.
    first.send(sub("3")).await.expect("subscribe");
    assert_eq!(first_code(&mut first).await, "TOO_MANY_SUBSCRIPTIONS");

    let mut second = connect(&server, &admin).await;
    second.send(sub("1")).await.expect("subscribe");
    assert_eq!(next_json(&mut second).await["type"], "next");
    // A fourth in the process: over the total cap.
    second.send(sub("2")).await.expect("subscribe");
    assert_eq!(first_code(&mut second).await, "TOO_MANY_SUBSCRIPTIONS");

    // Closing a connection frees its slots.
    drop(first);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut n = 10;
    loop {
        n += 1;
        second.send(sub(&n.to_string())).await.expect("subscribe");
        let msg = next_json(&mut second).await;
        if msg["type"] == "next" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "slots never came back: {msg}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    server.stop().await;
}

#[tokio::test]
async fn callers_over_their_rate_limit_get_429_and_change_nothing() {
    let data = tempfile::tempdir().expect("tempdir");
    let args = [
        "serve",
        "--rate-limit-signups",
        "3",
        "--rate-limit-commands",
        "5",
        "--rate-limit-graphql",
        "10",
        "--trusted-proxy",
        "127.0.0.1",
    ];
    let server = Server::start_bin(BIN, &args, data.path(), None).await;
    let client = server.client().clone();
    let signup = |from: &'static str, email: String| {
        let client = client.clone();
        let url = format!("{}/v1/users", server.base());
        async move {
            let r = client
                .post(url)
                .header("x-forwarded-for", from)
                .json(&json!({"email": email, "name": "Rate"}))
                .send()
                .await
                .expect("answer");
            let retry = r.headers().get("retry-after").is_some();
            let media = crate::helpers::media_type(&r);
            (r.status().as_u16(), retry, media)
        }
    };
    // Sign-ups: per client address, named by the trusted proxy.
    for i in 0..3 {
        let (s, _, _) = signup("203.0.113.7", format!("r{i}@example.com")).await;
        assert_eq!(s, 201);
    }
    let (s, retry, media) = signup("203.0.113.7", "over@example.com".into()).await;
    assert_eq!((s, retry), (429, true));
    assert!(media.starts_with("application/problem+json"), "{media}");
    // Another address is unaffected, and the refused sign-up left nothing:
    // its address registers now.
    let (s, _, _) = signup("198.51.100.9", "over@example.com".into()).await;
    assert_eq!(s, 201);

    // Commands: per subject.
    let one = run_cli(data.path(), &["token", "--sub", "ops-1", "--role", "admin"]);
    let two = run_cli(data.path(), &["token", "--sub", "ops-2", "--role", "admin"]);
    let product = |sku: String| json!({"sku": sku, "name": "Rate", "unit_price": {"amount_minor": 100, "currency": "EUR"}});
    for i in 0..5 {
        let (s, body) = server
            .post("/v1/products", Some(&one), product(format!("RATE-{i}")))
            .await;
        assert_eq!(s, 201, "{body}");
    }
    let (s, body) = server
        .post("/v1/products", Some(&one), product("RATE-OVER".into()))
        .await;
    assert_eq!(s, 429, "{body}");
    assert_eq!(body["type"], "urn:shopstream:problem:rate_limited");
    let (s, _) = server.get_auth("/v1/products/RATE-OVER/events", &two).await;
    assert_eq!(s, 404, "a refused command appended events");
    let (s, _) = server
        .post("/v1/products", Some(&two), product("RATE-TWO".into()))
        .await;
    assert_eq!(s, 201, "another subject is unaffected");

    // GraphQL: each operation costs its complexity out of 10 a minute, so a
    // cheap query fits ten times and a larger one fewer.
    let answers_until_limited = |token: String, query: &'static str| {
        let client = client.clone();
        let url = format!("{}/graphql", server.base());
        async move {
            for n in 0..20 {
                let resp = client
                    .post(&url)
                    .header("accept", "application/graphql-response+json")
                    .bearer_auth(&token)
                    .json(&json!({ "query": query }))
                    .send()
                    .await
                    .expect("answer");
                if resp.status() == 429 {
                    assert!(resp.headers().contains_key("retry-after"));
                    assert_eq!(
                        crate::helpers::media_type(&resp),
                        "application/graphql-response+json"
                    );
                    let doc: Value = resp.json().await.expect("json");
                    assert_eq!(
                        doc["errors"][0]["extensions"]["code"], "RATE_LIMITED",
                        "{doc}"
                    );
                    return n;
                }
                assert_eq!(resp.status(), 200);
            }
            20
        }
    };
    let cheap = answers_until_limited(one.clone(), "{ __typename }").await;
    assert_eq!(cheap, 10, "a cost-1 query fits the budget of 10 exactly");
    let big = "{ customers(first: 10) { nodes { id email name status orderCount } } }";
    let costly = answers_until_limited(two.clone(), big).await;
    assert!(
        (1..10).contains(&costly),
        "a larger query must cost more: {costly}"
    );
    let three = run_cli(data.path(), &["token", "--sub", "ops-3", "--role", "admin"]);
    let (s, ok) = server.graphql(Some(&three), None, big, json!({})).await;
    assert_eq!(s, 200, "another subject is unaffected: {ok}");
    assert!(ok["errors"].is_null(), "{ok}");
    server.stop().await;
}

#[tokio::test]
async fn refused_websocket_upgrades_are_problem_documents() {
    let data = tempfile::tempdir().expect("tempdir");
    let server = Server::start(data.path(), None).await;
    let upgrade = |origin: Option<&'static str>, auth: Option<&'static str>| {
        let mut req = server
            .client()
            .get(format!("{}/graphql/ws", server.base()))
            .header("connection", "Upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .header("sec-websocket-protocol", "graphql-transport-ws");
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        async move {
            let r = req.send().await.expect("answer");
            let status = r.status().as_u16();
            let media = crate::helpers::media_type(&r);
            let body: Value = r.json().await.unwrap_or_default();
            (status, media, body)
        }
    };
    let (s, m, body) = upgrade(Some("http://evil.example"), None).await;
    assert_eq!(s, 403, "{body}");
    assert!(m.starts_with("application/problem+json"), "{m}");
    assert_eq!(body["type"], "urn:shopstream:problem:origin_not_allowed");
    let (s, m, body) = upgrade(None, Some("Bearer not-a-token")).await;
    assert_eq!(s, 401, "{body}");
    assert!(m.starts_with("application/problem+json"), "{m}");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("malformed")),
        "{body}"
    );
    server.stop().await;
}
