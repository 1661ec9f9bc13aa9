//! Every error class: a problem document, the right status, nothing appended.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both_backends;
use crate::helpers::{read, TestApp};

async fn malformed_and_invalid_bodies(app: &TestApp) {
    let before = app.head().await;
    let raw = |body: &'static str, content_type: &'static str| {
        app.client
            .post(app.url("/v1/users"))
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    read(raw("{\"email\": ", "application/json").await.expect("send"))
        .await
        .problem(400);
    read(raw("not json", "application/json").await.expect("send"))
        .await
        .problem(400);
    read(
        raw("{\"email\":\"a@b.co\",\"name\":\"A\"}", "text/plain")
            .await
            .expect("send"),
    )
    .await
    .problem(415);
    let r = read(
        app.client
            .post(app.url("/v1/users"))
            .body("{}")
            .send()
            .await
            .expect("send"),
    )
    .await;
    r.problem(415);

    let r = app
        .post(
            "/v1/users",
            None,
            json!({"email": "a@b.co", "name": "A", "admin": true}),
        )
        .await;
    let p = r.problem(422);
    assert_eq!(
        (
            p["errors"][0]["field"].as_str(),
            p["errors"][0]["rule"].as_str()
        ),
        (Some("admin"), Some("unknown_field"))
    );
    let r = app
        .post("/v1/users", None, json!({"email": 42, "name": "A"}))
        .await;
    assert_eq!(r.problem(422)["errors"][0]["field"], "email");
    let r = app.post("/v1/users", None, json!({"name": "A"})).await;
    assert_eq!(r.problem(422)["errors"][0]["rule"], "required");
    // Every broken field is named at once.
    let r = app
        .post("/v1/users", None, json!({"email": "nope", "name": " "}))
        .await;
    let fields: Vec<&str> = r.problem(422)["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert_eq!(fields, ["email", "name"]);

    let huge = json!({"email": "a@b.co", "name": "x".repeat(70 * 1024)});
    app.post("/v1/users", None, huge).await.problem(413);
    assert_eq!(
        app.head().await,
        before,
        "rejected requests appended events"
    );
}

async fn authentication_and_authorization(app: &TestApp) {
    app.product("P-1", 500, "EUR").await;
    let (order, customer, token) = app.draft_order("owner@example.com").await;
    let (_, other_token) = app.register("other@example.com").await;
    let before = app.head().await;
    let items = format!("/v1/orders/{order}/items");
    let body = json!({"sku": "P-1", "quantity": 1});

    let r = app.post(&items, None, body.clone()).await;
    r.problem(401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    app.post(&items, Some("garbage"), body.clone())
        .await
        .problem(401);
    let expired = app.auth.mint(
        &customer,
        command_api::auth::Role::Customer,
        chrono::Duration::seconds(-10),
    );
    app.post(&items, Some(&expired), body.clone())
        .await
        .problem(401);
    let forged = command_api::auth::Authenticator::new(command_api::auth::Secret::new(
        "another-secret-another-secret-another",
    ))
    .mint(
        "ops",
        command_api::auth::Role::Admin,
        chrono::Duration::hours(1),
    );
    app.post(
        "/v1/products",
        Some(&forged),
        json!({"sku": "X", "name": "X", "unit_price": {"amount_minor": 1, "currency": "EUR"}}),
    )
    .await
    .problem(401);

    // Another customer's order does not exist for them.
    app.post(&items, Some(&other_token), body.clone())
        .await
        .problem(404);
    app.post_empty(&format!("/v1/orders/{order}/place"), Some(&other_token))
        .await
        .problem(404);
    app.post(
        "/v1/orders",
        Some(&other_token),
        json!({"customer_id": customer, "currency": "EUR"}),
    )
    .await
    .problem(404);
    app.send(
        Method::PATCH,
        &format!("/v1/users/{customer}"),
        Some(&other_token),
        Some(json!({"name": "Mallory"})),
        &[],
    )
    .await
    .problem(404);
    // Roles.
    app.post(
        "/v1/products",
        Some(&token),
        json!({"sku": "X", "name": "X", "unit_price": {"amount_minor": 1, "currency": "EUR"}}),
    )
    .await
    .problem(403);
    app.post_empty(&format!("/v1/users/{customer}/deactivate"), Some(&token))
        .await
        .problem(403);
    app.post_empty(&format!("/v1/orders/{order}/deliver"), Some(&token))
        .await
        .problem(403);
    app.send(
        Method::GET,
        &format!("/v1/orders/{order}/events"),
        Some(&token),
        None,
        &[],
    )
    .await
    .problem(403);
    app.post(&items, Some(&app.admin()), body.clone())
        .await
        .problem(403);
    assert_eq!(app.head().await, before, "refused requests appended events");
}

async fn unknown_things_and_broken_rules(app: &TestApp) {
    let admin = app.admin();
    let (order, _, token) = app.draft_order("rules@example.com").await;
    let before = app.head().await;
    let unknown = uuid::Uuid::new_v4();
    app.post_empty(&format!("/v1/orders/{unknown}/place"), Some(&admin))
        .await
        .problem(404);
    app.post_empty("/v1/orders/not-a-uuid/place", Some(&admin))
        .await
        .problem(404);
    app.post_empty("/v1/products/NOPE/retire", Some(&admin))
        .await
        .problem(404);
    app.post_empty(&format!("/v1/users/{unknown}/deactivate"), Some(&admin))
        .await
        .problem(404);
    app.send(
        Method::GET,
        &format!("/v1/payments/{unknown}/events"),
        Some(&admin),
        None,
        &[],
    )
    .await
    .problem(404);
    app.post("/v1/payments", Some(&admin), json!({"order_id": unknown}))
        .await
        .problem(404);
    app.send(Method::GET, "/v1/nothing-here", None, None, &[])
        .await
        .problem(404);
    app.send(Method::DELETE, "/v1/users", None, None, &[])
        .await
        .problem(405);

    // Rules name themselves.
    let r = app
        .post_empty(&format!("/v1/orders/{order}/place"), Some(&token))
        .await;
    assert_eq!(r.problem(409)["rule"], "order_empty");
    app.product("Q-1", 100, "EUR").await;
    app.product("USD-1", 100, "USD").await;
    let before = before + 2;
    let items = format!("/v1/orders/{order}/items");
    let r = app
        .post(&items, Some(&token), json!({"sku": "Q-1", "quantity": 0}))
        .await;
    assert_eq!(r.problem(422)["rule"], "quantity_out_of_range");
    assert_eq!(r.body["errors"][0]["field"], "quantity");
    app.post(
        &items,
        Some(&token),
        json!({"sku": "Q-1", "quantity": 1001}),
    )
    .await
    .problem(422);
    app.post(&items, Some(&token), json!({"sku": "Q-1", "quantity": -1}))
        .await
        .problem(422);
    app.post(&items, Some(&token), json!({"sku": "Q-1", "quantity": 1.5}))
        .await
        .problem(422);
    assert_eq!(
        app.post(&items, Some(&token), json!({"sku": "USD-1", "quantity": 1}))
            .await
            .problem(422)["rule"],
        "currency_mismatch"
    );
    assert_eq!(
        app.post(
            &items,
            Some(&token),
            json!({"sku": "NO-SUCH", "quantity": 1})
        )
        .await
        .problem(422)["errors"][0]["rule"],
        "unknown_product"
    );
    app.post("/v1/payments", Some(&token), json!({"order_id": order}))
        .await
        .problem(422);
    let r = app.post("/v1/products", Some(&admin), json!({"sku": "q-1", "name": "Dup", "unit_price": {"amount_minor": 1, "currency": "EUR"}})).await;
    assert_eq!(r.problem(409)["rule"], "product_exists");
    let r = app.post("/v1/products", Some(&admin), json!({"sku": "F-1", "name": "Float", "unit_price": {"amount_minor": 9.99, "currency": "EUR"}})).await;
    assert_eq!(
        r.problem(422)["errors"][0]["field"],
        "unit_price.amount_minor"
    );
    let r = app.post("/v1/products", Some(&admin), json!({"sku": "F-1", "name": "Float", "unit_price": {"amount_minor": 999, "currency": "EURO"}})).await;
    assert_eq!(r.problem(422)["errors"][0]["field"], "unit_price.currency");
    assert_eq!(
        app.head().await,
        before,
        "rejected commands appended events"
    );
}

async fn if_match_guards_against_lost_updates(app: &TestApp) {
    let (customer, token) = app.register("etag@example.com").await;
    let path = format!("/v1/users/{customer}");
    let r = app
        .send(
            Method::PATCH,
            &path,
            Some(&token),
            Some(json!({"name": "One"})),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.header("etag"), Some("\"2\""));
    let before = app.head().await;
    let r = app
        .send(
            Method::PATCH,
            &path,
            Some(&token),
            Some(json!({"name": "Two"})),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(r.problem(412)["current_version"], 2);
    app.send(
        Method::PATCH,
        &path,
        Some(&token),
        Some(json!({"name": "Two"})),
        &[("if-match", "yesterday")],
    )
    .await
    .problem(400);
    assert_eq!(app.head().await, before);
    let r = app
        .send(
            Method::PATCH,
            &path,
            Some(&token),
            Some(json!({"name": "Two"})),
            &[("if-match", "\"2\"")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
}

both_backends!(
    malformed_and_invalid_bodies,
    authentication_and_authorization,
    unknown_things_and_broken_rules,
    if_match_guards_against_lost_updates,
);
