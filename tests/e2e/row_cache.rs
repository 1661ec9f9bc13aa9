//! The customer and order rows a query service keeps between projection
//! commits never answer older than a request is owed: after each command,
//! a query carrying its position as the consistency token sees the change
//! at once — through the process that ran the command (`serve`) and through
//! a separate `query-api` process on the same PostgreSQL, which hears of
//! commits only through `LISTEN`. Without a token, once the projections
//! have committed, the kept row is gone within moments: well before the
//! age limit that backs up a lost signal.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::{run_cli, Server};

const CUSTOMER: &str = "query($id: ID!) { customer(id: $id) { status orderCount \
    orders(first: 5) { edges { node { id } } } } }";

async fn customer(server: &Server, token: &str, id: &str, position: Option<i64>) -> Value {
    let (s, body) = server
        .graphql(Some(token), position, CUSTOMER, json!({"id": id}))
        .await;
    assert_eq!(s, 200, "{body}");
    body
}

/// The customer view's checkpoint, read from the registry (not through any
/// cache).
async fn checkpoint(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT s.cursor_position FROM projection_state s JOIN projection_live l \
         ON s.name = l.name AND s.generation = l.generation WHERE s.name = 'customer_view'",
    )
    .fetch_one(pool)
    .await
    .expect("checkpoint")
}

#[tokio::test]
async fn kept_rows_follow_every_commit_across_processes() {
    let db = eventlog::testing::TestDatabase::postgres().await;
    let data = tempfile::tempdir().expect("tempdir");
    let server = Server::start(data.path(), Some(&db.url)).await;
    let reads = Server::start_bin(
        env!("CARGO_BIN_EXE_query-api"),
        &[],
        data.path(),
        Some(&db.url),
    )
    .await;
    let pool = sqlx::PgPool::connect(&db.url).await.expect("pool");
    let admin = run_cli(data.path(), &["token", "--sub", "ops", "--role", "admin"]);
    let (s, user) = server
        .post(
            "/v1/users",
            None,
            json!({"email": "rows@example.com", "name": "Rows"}),
        )
        .await;
    assert_eq!(s, 201, "{user}");
    let id = user["id"].as_str().expect("id").to_string();
    let mut position = user["position"].as_i64();
    let mut active = true;
    let mut orders = 0;
    for round in 0..6 {
        let status = if active { "active" } else { "deactivated" };
        // Both processes answer the current row (and keep it) several times.
        for api in [&server, &reads] {
            let body = customer(api, &admin, &id, position).await;
            assert_eq!(
                body["data"]["customer"]["status"], status,
                "round {round}: {body}"
            );
            for _ in 0..3 {
                let body = customer(api, &admin, &id, None).await;
                assert!(body["data"]["customer"].is_object(), "{body}");
            }
        }
        // A new order (an active customer's), then the customer row twice.
        let (s, done) = if round % 3 != 0 {
            let action = if active { "deactivate" } else { "reactivate" };
            active = !active;
            let path = format!("/v1/users/{id}/{action}");
            server.post(&path, Some(&admin), Value::Null).await
        } else {
            orders += 1;
            let body = json!({"customer_id": id, "currency": "EUR"});
            server.post("/v1/orders", Some(&admin), body).await
        };
        assert!(s == 200 || s == 201, "round {round}: {s} {done}");
        position = done["position"].as_i64();
        let status = if active { "active" } else { "deactivated" };
        for api in [&server, &reads] {
            let body = customer(api, &admin, &id, position).await;
            let c = &body["data"]["customer"];
            assert_eq!(
                c["status"], status,
                "round {round}: a kept row served past the token: {body}"
            );
            assert_eq!(c["orderCount"], orders, "round {round}: {body}");
            let edges = c["orders"]["edges"].as_array().map_or(0, Vec::len);
            assert_eq!(
                edges, orders,
                "round {round}: a kept page served past the token: {body}"
            );
            assert_eq!(body["extensions"]["consistency"]["stale"], false, "{body}");
        }
    }
    // Without a token: keep the row, change it, and once the projections
    // have committed the change the kept row is gone. (First every row
    // kept so far ages out, so the one read next is kept from now on.)
    tokio::time::sleep(query_api::rows::MAX_AGE).await;
    let status = if active { "active" } else { "deactivated" };
    let body = customer(&reads, &admin, &id, None).await;
    assert_eq!(body["data"]["customer"]["status"], status, "{body}");
    let kept_at = Instant::now();
    let action = if active { "deactivate" } else { "reactivate" };
    let (s, done) = server
        .post(
            &format!("/v1/users/{id}/{action}"),
            Some(&admin),
            Value::Null,
        )
        .await;
    assert_eq!(s, 200, "{done}");
    let written = done["position"].as_i64().expect("position");
    while checkpoint(&pool).await < written {
        assert!(kept_at.elapsed() < Duration::from_secs(10), "never folded");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let changed = if active { "deactivated" } else { "active" };
    loop {
        let body = customer(&reads, &admin, &id, None).await;
        if body["data"]["customer"]["status"] == changed {
            break;
        }
        // An old row says it is from before the change.
        let claimed = body["extensions"]["consistency"]["position"].as_i64();
        assert!(
            claimed < Some(written),
            "an old row claims a later position: {body}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Aged out, it would have shown only at MAX_AGE.
    let margin = Duration::from_millis(250);
    assert!(
        kept_at.elapsed() < query_api::rows::MAX_AGE - margin,
        "the commit signal did not reach the kept row ({:?})",
        kept_at.elapsed()
    );
    pool.close().await;
    reads.stop().await;
    server.stop().await;
    db.drop_database().await;
}
