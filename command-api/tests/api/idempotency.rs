//! `Idempotency-Key`: one execution per key, whatever the retries.

use futures::future::join_all;
use reqwest::Method;
use serde_json::json;

use crate::both_backends;
use crate::helpers::TestApp;

fn key(k: &str) -> [(&str, &str); 1] {
    [("idempotency-key", k)]
}

async fn a_retry_gets_the_first_response(app: &TestApp) {
    let body = json!({"email": "idem@example.com", "name": "Idem"});
    let first = app
        .send(
            Method::POST,
            "/v1/users",
            None,
            Some(body.clone()),
            &key("k-1"),
        )
        .await;
    assert_eq!(first.status.as_u16(), 201);
    let head = app.head().await;
    let again = app
        .send(Method::POST, "/v1/users", None, Some(body), &key("k-1"))
        .await;
    assert_eq!(again.status.as_u16(), 201);
    assert_eq!(again.body, first.body);
    assert_eq!(again.header("location"), first.header("location"));
    assert_eq!(again.header("etag"), first.header("etag"));
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(app.head().await, head, "the retry appended nothing");

    let other = app
        .send(
            Method::POST,
            "/v1/users",
            None,
            Some(json!({"email": "else@example.com", "name": "X"})),
            &key("k-1"),
        )
        .await;
    assert_eq!(
        other.problem(422)["type"],
        "urn:shopstream:problem:idempotency_key_reused"
    );
    app.send(
        Method::POST,
        "/v1/users",
        None,
        Some(json!({"email": "e@example.com", "name": "X"})),
        &key(""),
    )
    .await
    .problem(400);
    assert_eq!(app.head().await, head);
}

async fn rejections_are_replayed_too(app: &TestApp) {
    let (order, _, token) = app.draft_order("idem-reject@example.com").await;
    let place = format!("/v1/orders/{order}/place");
    let first = app
        .send(Method::POST, &place, Some(&token), None, &key("place-1"))
        .await;
    assert_eq!(first.problem(409)["rule"], "order_empty");
    let again = app
        .send(Method::POST, &place, Some(&token), None, &key("place-1"))
        .await;
    assert_eq!(again.problem(409)["rule"], "order_empty");
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
}

async fn concurrent_requests_with_one_key_execute_once(app: &TestApp) {
    let (customer, token) = app.register("idem-race@example.com").await;
    let body = json!({"customer_id": customer, "currency": "EUR"});
    let headers = key("order-once");
    let replies = join_all((0..10).map(|_| {
        app.send(
            Method::POST,
            "/v1/orders",
            Some(&token),
            Some(body.clone()),
            &headers,
        )
    }))
    .await;
    let ids: std::collections::HashSet<String> = replies.iter().map(|r| r.id()).collect();
    assert_eq!(ids.len(), 1, "all ten got the same order");
    let id = ids.into_iter().next().expect("id");
    assert_eq!(app.log.stream("Order", &id).await.expect("stream").len(), 1);
    // The key is scoped to the caller: another customer's identical key is theirs.
    let (other, other_token) = app.register("idem-other@example.com").await;
    let r = app
        .send(
            Method::POST,
            "/v1/orders",
            Some(&other_token),
            Some(json!({"customer_id": other, "currency": "EUR"})),
            &key("order-once"),
        )
        .await;
    assert_eq!(r.status.as_u16(), 201);
    assert_ne!(r.id(), id);
}

/// A process that died after appending but before storing its response
/// leaves the key pending; the retry is answered from the events.
async fn a_crash_between_append_and_response_is_recovered(app: &TestApp) {
    let body = json!({"email": "crash@example.com", "name": "Crash"});
    let first = app
        .send(
            Method::POST,
            "/v1/users",
            None,
            Some(body.clone()),
            &key("crash-1"),
        )
        .await;
    let id = first.id();
    // Rewind the key to "pending since an hour ago", as if the process died.
    let rewind_pg =
        "UPDATE idempotency_keys SET state = 'pending', status_code = NULL, response = NULL, \
                     created_at = clock_timestamp() - interval '1 hour'";
    let rewind_sqlite =
        "UPDATE idempotency_keys SET state = 'pending', status_code = NULL, response = NULL, \
                         created_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-1 hour')";
    match app.database() {
        eventlog::Database::Postgres(p) => sqlx_exec_pg(p, rewind_pg).await,
        eventlog::Database::Sqlite(p) => sqlx_exec_sqlite(p, rewind_sqlite).await,
    }
    let head = app.head().await;
    let retry = app
        .send(Method::POST, "/v1/users", None, Some(body), &key("crash-1"))
        .await;
    assert_eq!(retry.status.as_u16(), 201);
    assert_eq!(retry.id(), id);
    assert_eq!(app.head().await, head, "recovered, not executed twice");

    // A pending key whose request never appended anything executes on retry.
    let body = json!({"email": "crash2@example.com", "name": "Crash"});
    let fingerprint = command_api::idempotency::fingerprint(
        &Method::POST,
        "/v1/users",
        body.to_string().as_bytes(),
    );
    let insert = |old: &str| {
        format!(
            "INSERT INTO idempotency_keys (principal, key, fingerprint, state, created_at) \
                 VALUES ('anonymous', 'crash-2', '{fingerprint}', 'pending', {old})"
        )
    };
    match app.database() {
        eventlog::Database::Postgres(p) => {
            sqlx_exec_pg(p, &insert("clock_timestamp() - interval '1 hour'")).await
        }
        eventlog::Database::Sqlite(p) => {
            sqlx_exec_sqlite(
                p,
                &insert("strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-1 hour')"),
            )
            .await
        }
    }
    let head = app.head().await;
    let retry = app
        .client
        .post(app.url("/v1/users"))
        .header("idempotency-key", "crash-2")
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("send");
    let retry = crate::helpers::read(retry).await;
    assert_eq!(retry.status.as_u16(), 201, "{}", retry.body);
    assert_eq!(app.head().await, head + 1, "executed exactly once");
}

async fn sqlx_exec_pg(pool: &eventlog::PgPool, sql: &str) {
    eventlog::sqlx::query(sql).execute(pool).await.expect("sql");
}

async fn sqlx_exec_sqlite(pool: &eventlog::SqlitePool, sql: &str) {
    eventlog::sqlx::query(sql).execute(pool).await.expect("sql");
}

both_backends!(
    a_retry_gets_the_first_response,
    rejections_are_replayed_too,
    concurrent_requests_with_one_key_execute_once,
    a_crash_between_append_and_response_is_recovered,
);
