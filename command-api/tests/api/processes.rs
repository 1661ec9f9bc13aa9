//! Two command API processes over one store, each with its own aggregate
//! cache: neither ever acts on a state the other has moved past.

use reqwest::Method;
use serde_json::json;

use crate::both_backends;
use crate::helpers::TestApp;

async fn a_second_process_never_acts_on_a_stale_state(app: &TestApp) {
    let other = app.second_process().await;
    let admin = app.admin();
    app.product("P-1", 1000, "EUR").await;
    app.product("P-2", 2000, "EUR").await;
    let (order, customer, token) = app.draft_order("two-processes@example.com").await;
    let items = format!("/v1/orders/{order}/items");
    let r = app
        .post(&items, Some(&token), json!({"sku": "P-1", "quantity": 1}))
        .await;
    assert!(r.status.is_success(), "{}", r.body);

    // A fact read from another aggregate: the other process reprices P-2,
    // which this process has cached at its old price.
    let r = other
        .send(
            Method::PATCH,
            "/v1/products/P-2",
            Some(&admin),
            Some(json!({"unit_price": {"amount_minor": 2500, "currency": "EUR"}})),
            &[],
        )
        .await;
    assert!(r.status.is_success(), "{}", r.body);
    let r = app
        .post(&items, Some(&token), json!({"sku": "P-2", "quantity": 1}))
        .await;
    assert!(r.status.is_success(), "{}", r.body);
    let stream = app.log.stream("Order", &order).await.expect("stream");
    let added = stream
        .iter()
        .find(|e| e.event_type == "OrderItemAdded" && e.payload.to_string().contains("P-2"))
        .expect("P-2 added");
    assert!(
        added.payload.to_string().contains("2500"),
        "the line has the current price: {}",
        added.payload
    );

    // The other process places the order; this one still caches the draft.
    let r = other
        .post_empty(&format!("/v1/orders/{order}/place"), Some(&token))
        .await;
    assert!(r.status.is_success(), "{}", r.body);
    let placed = app.log.stream("Order", &order).await.expect("stream").len();
    let r = app
        .send(
            Method::PUT,
            &format!("/v1/orders/{order}/items/P-1"),
            Some(&token),
            Some(json!({"quantity": 3})),
            &[],
        )
        .await;
    assert_eq!(r.problem(409)["rule"], "order_not_editable", "{}", r.body);
    let r = app
        .post(&items, Some(&token), json!({"sku": "P-1", "quantity": 1}))
        .await;
    assert_eq!(r.problem(409)["rule"], "order_not_editable", "{}", r.body);
    assert_eq!(
        app.log.stream("Order", &order).await.expect("stream").len(),
        placed,
        "refused commands append nothing"
    );

    // If-Match with the version the other process returned is current,
    // whatever this process cached.
    let path = format!("/v1/users/{customer}");
    let r = other
        .send(
            Method::PATCH,
            &path,
            Some(&token),
            Some(json!({"name": "Renamed"})),
            &[],
        )
        .await;
    assert_eq!(r.body["version"], 2, "{}", r.body);
    let r = app
        .send(
            Method::PATCH,
            &path,
            Some(&token),
            Some(json!({"name": "Again"})),
            &[("if-match", "\"2\"")],
        )
        .await;
    assert!(r.status.is_success(), "{}", r.body);
    assert_eq!(r.body["version"], 3);
    let r = app
        .send(
            Method::PATCH,
            &path,
            Some(&token),
            Some(json!({"name": "Late"})),
            &[("if-match", "\"2\"")],
        )
        .await;
    assert_eq!(r.problem(412)["current_version"], 3, "{}", r.body);

    // A product the other process created is no "unknown product" here.
    let r = other
        .post(
            "/v1/products",
            Some(&admin),
            json!({"sku": "P-3", "name": "Three", "unit_price": {"amount_minor": 300, "currency": "EUR"}}),
        )
        .await;
    assert!(r.status.is_success(), "{}", r.body);
    let r = app
        .post(
            "/v1/products",
            Some(&admin),
            json!({"sku": "P-3", "name": "Again", "unit_price": {"amount_minor": 300, "currency": "EUR"}}),
        )
        .await;
    assert_eq!(r.problem(409)["rule"], "product_exists", "{}", r.body);
    other.stop().await;
}

both_backends!(a_second_process_never_acts_on_a_stale_state);
