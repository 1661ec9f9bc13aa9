//! The GraphQL query API through the real binary: read models filled by the
//! real path (commands → events → projectors), read with and without
//! consistency tokens, every authorization rule, every limit.

use serde_json::{json, Value};

use crate::helpers::{run_cli, Server};

const CUSTOMER: &str = "query($id: ID!, $after: String) { customer(id: $id) { id email name status orderCount
    lifetimeSpend { amountMinor currency }
    orders(first: 2, after: $after) { edges { cursor node { id status itemCount total { amountMinor currency } } }
      pageInfo { hasNextPage endCursor } } } }";
const ORDER: &str = "query($id: ID!) { order(id: $id) { id status customerId total { amountMinor currency }
    items { sku name quantity unitPrice { amountMinor currency } lineTotal { amountMinor currency } }
    payment { status authorizedMinor capturedMinor refundedMinor }
    history { status at } } }";
const ANALYTICS: &str = "{ analytics {
    revenue(from: \"2020-01-01\", to: \"2099-12-31\", granularity: MONTH, currency: \"EUR\") { bucket amount { amountMinor currency } }
    topProducts(from: \"2020-01-01\", to: \"2099-12-31\", by: REVENUE, limit: 5) { sku name quantity revenue { amountMinor currency } }
    ordersByStatus { status count }
    averageOrderValue(from: \"2020-01-01\", to: \"2099-12-31\", currency: \"EUR\") { amountMinor currency }
    paymentOutcomes(from: \"2020-01-01\", to: \"2099-12-31\") { captured failed successRate failuresByReason { reason count } }
    newCustomers(from: \"2020-01-01\", to: \"2099-12-31\")
    funnel(from: \"2020-01-01\", to: \"2099-12-31\") { created placed paid } } }";

fn code(body: &Value) -> Option<&str> {
    body["errors"][0]["extensions"]["code"].as_str()
}

struct Shop<'a> {
    server: &'a Server,
    admin: String,
    service: String,
}

impl Shop<'_> {
    async fn customer(&self, email: &str, data: &std::path::Path) -> (String, String) {
        let (s, user) = self
            .server
            .post("/v1/users", None, json!({"email": email, "name": "Reader"}))
            .await;
        assert_eq!(s, 201);
        let id = user["id"].as_str().expect("id").to_string();
        (
            id.clone(),
            run_cli(data, &["token", "--sub", &id, "--role", "customer"]),
        )
    }

    /// A placed, paid order of `quantity` tees; returns (order id, last position).
    async fn paid_order(&self, customer: &str, token: &str, quantity: u32) -> (String, i64) {
        let (_, order) = self
            .server
            .post(
                "/v1/orders",
                Some(token),
                json!({"customer_id": customer, "currency": "EUR"}),
            )
            .await;
        let id = order["id"].as_str().expect("order").to_string();
        self.server
            .post(
                &format!("/v1/orders/{id}/items"),
                Some(token),
                json!({"sku": "TEE-9", "quantity": quantity}),
            )
            .await;
        self.server
            .post(&format!("/v1/orders/{id}/place"), Some(token), json!(null))
            .await;
        let (_, payment) = self
            .server
            .post("/v1/payments", Some(token), json!({"order_id": id}))
            .await;
        let pid = payment["id"].as_str().expect("payment").to_string();
        let total = 1000 * i64::from(quantity);
        self.server
            .post(
                &format!("/v1/payments/{pid}/authorize"),
                Some(&self.service),
                json!({"amount_minor": total}),
            )
            .await;
        self.server
            .post(
                &format!("/v1/payments/{pid}/capture"),
                Some(&self.service),
                json!({"amount_minor": total}),
            )
            .await;
        let (s, paid) = self
            .server
            .post(
                &format!("/v1/orders/{id}/mark-paid"),
                Some(&self.service),
                json!({"payment_id": pid}),
            )
            .await;
        assert_eq!(s, 200, "{paid}");
        (id, paid["position"].as_i64().expect("position"))
    }
}

#[tokio::test]
async fn graphql_reads_the_read_models_safely() {
    let data = tempfile::tempdir().expect("tempdir");
    let server = Server::start(data.path(), None).await;
    let admin = run_cli(data.path(), &["token", "--sub", "ops", "--role", "admin"]);
    let service = run_cli(data.path(), &["token", "--sub", "psp", "--role", "service"]);
    let analyst = run_cli(data.path(), &["token", "--sub", "bi", "--role", "analyst"]);
    let shop = Shop {
        server: &server,
        admin: admin.clone(),
        service,
    };
    let (s, _) = server.post("/v1/products", Some(&shop.admin), json!({"sku": "TEE-9", "name": "Tee", "unit_price": {"amount_minor": 1000, "currency": "EUR"}})).await;
    assert_eq!(s, 201);
    let (ada, ada_token) = shop.customer("ada@example.com", data.path()).await;
    let (bob, bob_token) = shop.customer("bob@example.com", data.path()).await;
    let (first, _) = shop.paid_order(&ada, &ada_token, 1).await;
    shop.paid_order(&ada, &ada_token, 2).await;
    let (last, position) = shop.paid_order(&ada, &ada_token, 3).await;

    // Read your writes: the token makes the answer include the last command.
    let (s, body) = server
        .graphql(Some(&ada_token), Some(position), ORDER, json!({"id": last}))
        .await;
    assert_eq!(s, 200);
    assert_eq!(body["extensions"]["consistency"]["stale"], false, "{body}");
    assert!(body["extensions"]["consistency"]["position"].as_i64() >= Some(position));
    let order = &body["data"]["order"];
    assert_eq!(order["status"], "paid", "{body}");
    assert_eq!(
        order["total"],
        json!({"amountMinor": 3000, "currency": "EUR"})
    );
    assert_eq!(
        order["items"][0],
        json!({"sku": "TEE-9", "name": "Tee", "quantity": 3,
        "unitPrice": {"amountMinor": 1000, "currency": "EUR"}, "lineTotal": {"amountMinor": 3000, "currency": "EUR"}})
    );
    assert_eq!(
        order["payment"],
        json!({"status": "captured", "authorizedMinor": 3000, "capturedMinor": 3000, "refundedMinor": 0})
    );
    let history: Vec<&str> = order["history"]
        .as_array()
        .expect("history")
        .iter()
        .filter_map(|h| h["status"].as_str())
        .collect();
    assert_eq!(history, ["draft", "placed", "paid"]);

    // The customer, and a Relay connection over their orders, page by page.
    let (_, body) = server
        .graphql(
            Some(&ada_token),
            Some(position),
            CUSTOMER,
            json!({"id": ada}),
        )
        .await;
    let c = &body["data"]["customer"];
    assert_eq!(
        (c["email"].as_str(), c["orderCount"].as_i64()),
        (Some("ada@example.com"), Some(3)),
        "{body}"
    );
    assert_eq!(
        c["lifetimeSpend"],
        json!([{"amountMinor": 6000, "currency": "EUR"}])
    );
    assert_eq!(c["orders"]["edges"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        c["orders"]["edges"][0]["node"]["id"],
        last.as_str(),
        "newest first"
    );
    assert_eq!(c["orders"]["pageInfo"]["hasNextPage"], true);
    let cursor = c["orders"]["pageInfo"]["endCursor"].clone();
    let (_, body) = server
        .graphql(
            Some(&ada_token),
            None,
            CUSTOMER,
            json!({"id": ada, "after": cursor}),
        )
        .await;
    let page = &body["data"]["customer"]["orders"];
    assert_eq!(page["edges"].as_array().map(Vec::len), Some(1), "{body}");
    assert_eq!(page["edges"][0]["node"]["id"], first.as_str());
    assert_eq!(page["pageInfo"]["hasNextPage"], false);
    let (_, body) = server
        .graphql(
            Some(&ada_token),
            None,
            CUSTOMER,
            json!({"id": ada, "after": "not-a-cursor"}),
        )
        .await;
    assert_eq!(code(&body), Some("BAD_USER_INPUT"));

    // Another customer's things answer as not found, also through connections.
    let (_, body) = server
        .graphql(Some(&bob_token), None, ORDER, json!({"id": last}))
        .await;
    assert_eq!(
        (code(&body), &body["data"]),
        (Some("NOT_FOUND"), &Value::Null),
        "{body}"
    );
    let (_, body) = server
        .graphql(Some(&bob_token), None, CUSTOMER, json!({"id": ada}))
        .await;
    assert_eq!(code(&body), Some("NOT_FOUND"));
    let (_, body) = server
        .graphql(
            Some(&bob_token),
            None,
            "query($c: ID) { orders(customerId: $c) { edges { node { id } } } }",
            json!({"c": ada}),
        )
        .await;
    assert_eq!(body["data"]["orders"]["edges"], json!([]), "{body}");
    let (_, body) = server
        .graphql(
            Some(&bob_token),
            None,
            "{ me { id orderCount } }",
            json!({}),
        )
        .await;
    assert_eq!(body["data"]["me"], json!({"id": bob, "orderCount": 0}));
    // Roles.
    for token in [Some(bob_token.as_str()), None] {
        let (_, body) = server
            .graphql(
                token,
                None,
                "{ customers { edges { node { id } } } }",
                json!({}),
            )
            .await;
        assert!(
            matches!(code(&body), Some("FORBIDDEN" | "UNAUTHENTICATED")),
            "{body}"
        );
        let (_, body) = server
            .graphql(
                token,
                None,
                "{ analytics { ordersByStatus { status } } }",
                json!({}),
            )
            .await;
        assert!(
            matches!(code(&body), Some("FORBIDDEN" | "UNAUTHENTICATED")),
            "{body}"
        );
    }
    let (_, body) = server
        .graphql(Some("forged.token.here"), None, "{ me { id } }", json!({}))
        .await;
    assert_eq!(code(&body), Some("UNAUTHENTICATED"));
    let (_, body) = server.graphql(Some(&admin), None, "{ customers(first: 10, filter: {emailPrefix: \"AD\"}, orderBy: EMAIL_ASC) { edges { node { email } } } }", json!({})).await;
    assert_eq!(
        body["data"]["customers"]["edges"],
        json!([{"node": {"email": "ada@example.com"}}]),
        "{body}"
    );

    // Analytics for analysts, in the contract's shapes.
    let (_, body) = server
        .graphql(Some(&analyst), Some(position), ANALYTICS, json!({}))
        .await;
    let a = &body["data"]["analytics"];
    assert_eq!(
        a["revenue"][0]["amount"],
        json!({"amountMinor": 6000, "currency": "EUR"}),
        "{body}"
    );
    assert_eq!(
        a["topProducts"][0],
        json!({"sku": "TEE-9", "name": "Tee", "quantity": 6, "revenue": {"amountMinor": 6000, "currency": "EUR"}})
    );
    assert_eq!(a["ordersByStatus"], json!([{"status": "paid", "count": 3}]));
    assert_eq!(
        a["averageOrderValue"],
        json!({"amountMinor": 2000, "currency": "EUR"})
    );
    assert_eq!(a["paymentOutcomes"]["captured"], 3);
    assert_eq!(a["newCustomers"], 2);
    assert_eq!(a["funnel"], json!({"created": 3, "placed": 3, "paid": 3}));
    let (_, body) = server
        .graphql(
            Some(&admin),
            None,
            "{ projections { name state lagEvents } }",
            json!({}),
        )
        .await;
    assert_eq!(
        body["data"]["projections"].as_array().map(Vec::len),
        Some(3),
        "{body}"
    );

    // A token nobody reaches: answered anyway, flagged stale.
    let (_, body) = server
        .graphql(
            Some(&ada_token),
            Some(position + 1000),
            "{ me { id } }",
            json!({}),
        )
        .await;
    assert_eq!(body["extensions"]["consistency"]["stale"], true, "{body}");
    assert_eq!(body["data"]["me"]["id"], ada.as_str());
    let r = server
        .client()
        .post(format!("{}/graphql", server.base()))
        .bearer_auth(&ada_token)
        .header("x-consistency-token", "soon")
        .json(&json!({"query": "{ me { id } }"}))
        .send()
        .await
        .expect("send");
    let body: Value = r.json().await.expect("json");
    assert_eq!(code(&body), Some("BAD_USER_INPUT"));

    // Limits: depth, aliases/complexity, page size, batching.
    let mut nested = String::from("id");
    for _ in 0..50 {
        nested = format!("me {{ {nested} }}");
    }
    let (_, body) = server
        .graphql(
            Some(&ada_token),
            None,
            &format!("{{ {nested} }}"),
            json!({}),
        )
        .await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.to_lowercase().contains("depth") || m.contains("me")),
        "{body}"
    );
    assert_eq!(body["data"], Value::Null);
    let aliases: String = (0..1000).map(|i| format!("a{i}: me {{ id }} ")).collect();
    let (_, body) = server
        .graphql(
            Some(&ada_token),
            None,
            &format!("{{ {aliases} }}"),
            json!({}),
        )
        .await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.to_lowercase().contains("complex")),
        "{body}"
    );
    let (_, body) = server
        .graphql(
            Some(&ada_token),
            None,
            "{ orders(first: 100000) { edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&body), Some("BAD_USER_INPUT"), "{body}");
    let (status, text) = server
        .graphql_raw(json!([{"query": "{ me { id } }"}, {"query": "{ me { id } }"}]).to_string())
        .await;
    assert!(
        status >= 400 || text.contains("error"),
        "batches are refused: {status} {text}"
    );
    let (status, _) = server
        .graphql_raw(format!("{{\"query\": \"{}\"}}", "x".repeat(70 * 1024)))
        .await;
    assert_eq!(status, 413);
    // Without a token the reported position is remembered only briefly:
    // a later command's position shows up without any token at all.
    let (s, more) = server
        .post(
            "/v1/orders",
            Some(&ada_token),
            json!({"customer_id": ada, "currency": "EUR"}),
        )
        .await;
    assert_eq!(s, 201, "{more}");
    let later = more["position"].as_i64().expect("position");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, b) = server
            .graphql(Some(&ada_token), None, ORDER, json!({"id": last}))
            .await;
        let reported = b["extensions"]["consistency"]["position"].as_i64();
        if reported >= Some(later) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the position without a token never moved past {reported:?} to {later}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    server.stop().await;
}

pub(crate) mod subscriptions {
    use std::time::Duration;

    use futures::{SinkExt, StreamExt};
    use serde_json::{json, Value};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;

    use crate::helpers::{run_cli, Server};

    pub(crate) type Socket = tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >;

    pub(crate) async fn connect(server: &Server, token: &str) -> Socket {
        let url = format!("{}/graphql/ws", server.base().replace("http://", "ws://"));
        let mut request = url.into_client_request().expect("request");
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            "graphql-transport-ws".parse().expect("header"),
        );
        let (mut ws, _) = tokio_tungstenite::connect_async(request)
            .await
            .expect("connect");
        let init = json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {token}")}});
        ws.send(Message::Text(init.to_string().into()))
            .await
            .expect("init");
        let ack = next_json(&mut ws).await;
        assert_eq!(ack["type"], "connection_ack", "{ack}");
        ws
    }

    pub(crate) async fn next_json(ws: &mut Socket) -> Value {
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
                .await
                .expect("a message in time")
                .expect("open")
                .expect("frame");
            if let Message::Text(t) = msg {
                return serde_json::from_str(&t).expect("json");
            }
        }
    }

    #[tokio::test]
    async fn order_updates_are_pushed_to_their_owner_only() {
        let data = tempfile::tempdir().expect("tempdir");
        let server = Server::start(data.path(), None).await;
        let admin = run_cli(data.path(), &["token", "--sub", "ops", "--role", "admin"]);
        server.post("/v1/products", Some(&admin), json!({"sku": "SUB-1", "name": "Sub", "unit_price": {"amount_minor": 500, "currency": "EUR"}})).await;
        let (_, user) = server
            .post(
                "/v1/users",
                None,
                json!({"email": "sub@example.com", "name": "Sub"}),
            )
            .await;
        let id = user["id"].as_str().expect("id").to_string();
        let token = run_cli(data.path(), &["token", "--sub", &id, "--role", "customer"]);
        let (_, other) = server
            .post(
                "/v1/users",
                None,
                json!({"email": "other@example.com", "name": "Other"}),
            )
            .await;
        let other_token = run_cli(
            data.path(),
            &[
                "token",
                "--sub",
                other["id"].as_str().expect("id"),
                "--role",
                "customer",
            ],
        );
        let (_, order) = server
            .post(
                "/v1/orders",
                Some(&token),
                json!({"customer_id": id, "currency": "EUR"}),
            )
            .await;
        let order_id = order["id"].as_str().expect("order").to_string();
        let query = "subscription($id: ID!) { orderUpdated(id: $id) { id status itemCount } }";
        // Wait until the order is in the read model before subscribing.
        let (_, seen) = server
            .graphql(
                Some(&token),
                order["position"].as_i64(),
                "query($id: ID!) { order(id: $id) { id } }",
                json!({"id": order_id}),
            )
            .await;
        assert_eq!(seen["data"]["order"]["id"], order_id.as_str());

        let mut intruder = connect(&server, &other_token).await;
        let subscribe = json!({"id": "1", "type": "subscribe", "payload": {"query": query, "variables": {"id": order_id}}});
        intruder
            .send(Message::Text(subscribe.to_string().into()))
            .await
            .expect("subscribe");
        let refused = next_json(&mut intruder).await;
        assert!(
            refused.to_string().contains("NOT_FOUND"),
            "another customer must not subscribe: {refused}"
        );

        let mut ws = connect(&server, &token).await;
        ws.send(Message::Text(subscribe.to_string().into()))
            .await
            .expect("subscribe");
        // The current state arrives first: the subscription is live from here.
        let initial = next_json(&mut ws).await;
        assert_eq!(
            initial["payload"]["data"]["orderUpdated"],
            json!({"id": order_id, "status": "draft", "itemCount": 0}),
            "{initial}"
        );
        server
            .post(
                &format!("/v1/orders/{order_id}/items"),
                Some(&token),
                json!({"sku": "SUB-1", "quantity": 2}),
            )
            .await;
        let update = next_json(&mut ws).await;
        assert_eq!(update["type"], "next", "{update}");
        assert_eq!(
            update["payload"]["data"]["orderUpdated"],
            json!({"id": order_id, "status": "draft", "itemCount": 2})
        );
        server
            .post(
                &format!("/v1/orders/{order_id}/place"),
                Some(&token),
                json!(null),
            )
            .await;
        let update = next_json(&mut ws).await;
        assert_eq!(
            update["payload"]["data"]["orderUpdated"]["status"], "placed",
            "{update}"
        );
        server.stop().await;
    }
}
