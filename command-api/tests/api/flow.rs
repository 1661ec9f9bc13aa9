//! Every endpoint's happy path, in the order a shop uses them.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both_backends;
use crate::helpers::TestApp;

async fn a_whole_order_flow(app: &TestApp) {
    let admin = app.admin();
    let service = app.service();

    // Catalog.
    app.product("TEE-1", 1999, "EUR").await;
    app.product("mug-2", 850, "EUR").await;
    let r = app
        .send(
            Method::PATCH,
            "/v1/products/MUG-2",
            Some(&admin),
            Some(json!({"unit_price": {"amount_minor": 900, "currency": "EUR"}})),
            &[],
        )
        .await;
    assert_eq!(
        (r.status, r.body["version"].as_u64()),
        (StatusCode::OK, Some(2)),
        "{}",
        r.body
    );
    app.product("OLD-1", 100, "EUR").await;
    assert_eq!(
        app.post_empty("/v1/products/OLD-1/retire", Some(&admin))
            .await
            .status,
        StatusCode::OK
    );

    // Sign-up and profile.
    let r = app
        .post(
            "/v1/users",
            None,
            json!({"email": "  Grace@Example.COM ", "name": "Grace"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let customer = r.id();
    assert_eq!(
        r.header("location"),
        Some(format!("/v1/users/{customer}").as_str())
    );
    assert_eq!(r.header("etag"), Some("\"1\""));
    let position = r.body["position"].as_i64().expect("position");
    assert!(position > 0);
    let token = app.customer(&customer);
    let r = app
        .send(Method::PATCH, &format!("/v1/users/{customer}"), Some(&token), Some(json!({
            "name": "Grace Hopper",
            "shipping_address": {"line1": "1 Navy Way", "city": "Arlington", "postal_code": "22201", "country": "us"}
        })), &[])
        .await;
    assert_eq!(
        (r.status, r.body["version"].as_u64()),
        (StatusCode::OK, Some(3)),
        "{}",
        r.body
    );
    assert!(
        r.body["position"].as_i64() > Some(position),
        "positions grow"
    );

    // Cart.
    let r = app
        .post(
            "/v1/orders",
            Some(&token),
            json!({"customer_id": customer, "currency": "EUR"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let order = r.id();
    let items = format!("/v1/orders/{order}/items");
    assert_eq!(
        app.post(&items, Some(&token), json!({"sku": "tee-1", "quantity": 2}))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        app.post(&items, Some(&token), json!({"sku": "MUG-2", "quantity": 1}))
            .await
            .status,
        StatusCode::OK
    );
    let r = app
        .send(
            Method::PUT,
            &format!("{items}/MUG-2"),
            Some(&token),
            Some(json!({"quantity": 3})),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        app.post(&items, Some(&token), json!({"sku": "OLD-1", "quantity": 1}))
            .await
            .problem(422)["rule"],
        "product_retired"
    );
    assert_eq!(
        app.send(
            Method::DELETE,
            &format!("{items}/MUG-2"),
            Some(&token),
            None,
            &[]
        )
        .await
        .status,
        StatusCode::OK
    );
    assert_eq!(
        app.post(&items, Some(&token), json!({"sku": "MUG-2", "quantity": 1}))
            .await
            .status,
        StatusCode::OK
    );
    let r = app
        .post_empty(&format!("/v1/orders/{order}/place"), Some(&token))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    // Payment: 2 × 19.99 + 1 × 9.00 = 48.98, taken from the catalog, not the client.
    let r = app
        .post("/v1/payments", Some(&token), json!({"order_id": order}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let payment = r.id();
    let pay = |step: &str| format!("/v1/payments/{payment}/{step}");
    assert_eq!(
        app.post(
            &pay("authorize"),
            Some(&service),
            json!({"amount_minor": 4898})
        )
        .await
        .status,
        StatusCode::OK
    );
    assert_eq!(
        app.post(
            &pay("capture"),
            Some(&service),
            json!({"amount_minor": 4899})
        )
        .await
        .problem(422)["rule"],
        "capture_exceeds_authorized"
    );
    assert_eq!(
        app.post(
            &pay("capture"),
            Some(&service),
            json!({"amount_minor": 4898})
        )
        .await
        .status,
        StatusCode::OK
    );
    let r = app
        .post(
            &format!("/v1/orders/{order}/mark-paid"),
            Some(&service),
            json!({"payment_id": payment}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    // Fulfilment.
    let r = app
        .post(
            &format!("/v1/orders/{order}/ship"),
            Some(&admin),
            json!({"carrier": "DHL", "tracking_number": "JD01"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        app.post_empty(&format!("/v1/orders/{order}/deliver"), Some(&service))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        app.post(
            &format!("/v1/orders/{order}/cancel"),
            Some(&token),
            json!({"reason": "late"})
        )
        .await
        .problem(409)["rule"],
        "order_already_shipped"
    );

    // Refunds, partial, never above the capture.
    assert_eq!(
        app.post(
            &pay("refund"),
            Some(&service),
            json!({"amount_minor": 898, "reason": "scratched mug"})
        )
        .await
        .status,
        StatusCode::OK
    );
    assert_eq!(
        app.post(
            &pay("refund"),
            Some(&admin),
            json!({"amount_minor": 4001, "reason": "x"})
        )
        .await
        .problem(422)["rule"],
        "refund_exceeds_captured"
    );

    // Account administration.
    assert_eq!(
        app.post_empty(&format!("/v1/users/{customer}/deactivate"), Some(&admin))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        app.post(
            "/v1/orders",
            Some(&token),
            json!({"customer_id": customer, "currency": "EUR"})
        )
        .await
        .problem(422)["rule"],
        "customer_not_active"
    );
    assert_eq!(
        app.post_empty(&format!("/v1/users/{customer}/reactivate"), Some(&admin))
            .await
            .status,
        StatusCode::OK
    );

    // The audit trail.
    let r = app
        .send(
            Method::GET,
            &format!("/v1/orders/{order}/events"),
            Some(&admin),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let types: Vec<&str> = r.body["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["event_type"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        types,
        [
            "OrderCreated",
            "OrderItemAdded",
            "OrderItemAdded",
            "OrderItemQuantityChanged",
            "OrderItemRemoved",
            "OrderItemAdded",
            "OrderPlaced",
            "OrderPaid",
            "OrderShipped",
            "OrderDelivered",
        ]
    );
    let placed = &r.body["events"][6];
    assert_eq!(
        placed["payload"]["OrderPlaced"]["total"],
        json!({"amount_minor": 4898, "currency": "EUR"})
    );
    assert_eq!(placed["metadata"]["actor"], format!("customer:{customer}"));
    assert!(placed["metadata"]["request_id"].is_string());
    let r = app
        .send(
            Method::GET,
            &format!("/v1/payments/{payment}/events"),
            Some(&admin),
            None,
            &[],
        )
        .await;
    assert_eq!(r.body["version"], 4);
    let r = app
        .send(
            Method::GET,
            "/v1/products/tee-1/events",
            Some(&admin),
            None,
            &[],
        )
        .await;
    assert_eq!(
        r.body["events"][0]["payload"]["ProductCreated"]["sku"],
        "TEE-1"
    );
    let r = app
        .send(
            Method::GET,
            &format!("/v1/users/{customer}/events"),
            Some(&admin),
            None,
            &[],
        )
        .await;
    // Personal data is sealed in the log: the stream shows ciphertext.
    let sealed = &r.body["events"][0]["payload"]["UserRegistered"]["email"]["sealed"];
    assert!(sealed.as_str().is_some_and(|s| s.len() > 20), "{}", r.body);
    assert!(!r.body.to_string().contains("grace@example.com"));
}

async fn health_and_request_ids(app: &TestApp) {
    let r = app.send(Method::GET, "/livez", None, None, &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    // Ready once the background ping has reached the store (on a loaded
    // machine, a moment after start).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let r = loop {
        let r = app
            .send(
                Method::GET,
                "/readyz",
                None,
                None,
                &[("x-request-id", "trace-me-42")],
            )
            .await;
        if r.status == StatusCode::OK || std::time::Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("x-request-id"), Some("trace-me-42"));
    let r = app.send(Method::GET, "/livez", None, None, &[]).await;
    assert!(
        r.header("x-request-id").is_some_and(|id| id.len() == 36),
        "generated request id"
    );
    let r = app.send(Method::GET, "/docs", None, None, &[]).await;
    assert_eq!(r.status, StatusCode::OK);
}

both_backends!(a_whole_order_flow, health_and_request_ids);
