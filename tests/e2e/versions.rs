//! Schema evolution through the real binary: events stored at version 1 (as
//! older releases wrote them) load aggregates and fold into the read models
//! through the upcasters; a version this release cannot read stops a start
//! (naming it, its count and first position) and, met while running, stops
//! the projection that needs it with the same words.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::SqlitePool;
use uuid::Uuid;

use crate::helpers::{cli, run_cli, Server};

const UNREADABLE: &str = "UserRegistered@9 cannot be read by this release";

async fn store(data: &Path) -> SqlitePool {
    let options = SqliteConnectOptions::new()
        .filename(data.join("shopstream.db"))
        .busy_timeout(Duration::from_secs(5));
    SqlitePool::connect_with(options)
        .await
        .expect("the SQLite file")
}

/// Appends a `UserRegistered` of `version` with `fields`, as a release that
/// wrote that version would have.
async fn append_registered(pool: &SqlitePool, user: Uuid, version: &str, fields: Value) {
    let payload = json!({ "UserRegistered": fields });
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
         payload, metadata) VALUES ('User', $1, 1, 'UserRegistered', $2, $3, '{}')",
    )
    .bind(user.to_string())
    .bind(version)
    .bind(payload.to_string())
    .execute(pool)
    .await
    .expect("append");
}

fn v1_fields(user: Uuid, email: &str) -> Value {
    json!({"user_id": user, "email": email, "name": "Old Release", "at": "2025-01-02T03:04:05Z"})
}

#[tokio::test]
async fn a_release_refuses_a_store_holding_events_it_cannot_read() {
    let data = tempfile::tempdir().expect("tempdir");
    run_cli(data.path(), &["migrate"]);
    let pool = store(data.path()).await;
    let (old, new) = (Uuid::new_v4(), Uuid::new_v4());
    append_registered(&pool, old, "1", v1_fields(old, "old@example.com")).await;
    let mut v9 = v1_fields(new, "new@example.com");
    v9["loyalty_tier"] = json!("gold");
    append_registered(&pool, new, "9", v9).await;
    pool.close().await;

    let census = run_cli(data.path(), &["events", "census"]);
    assert!(census.contains("v1→v2: adds locale"), "{census}");
    assert!(census.contains("UNREADABLE by this release"), "{census}");
    let rows: Value =
        serde_json::from_str(&run_cli(data.path(), &["events", "census", "--json"])).expect("json");
    let v9 = rows
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["event_version"] == "9")
        .expect("the v9 row");
    assert_eq!(
        (v9["count"].as_i64(), v9["first_position"].as_i64()),
        (Some(1), Some(2))
    );

    for args in [
        &["serve", "--listen", "127.0.0.1:0"][..],
        &["projections", "rebuild", "--all"][..],
    ] {
        let out = cli(data.path(), args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{args:?} started on unreadable events"
        );
        assert!(
            stderr.contains("UserRegistered@9: 1 events, first at position 2"),
            "{args:?}: {stderr}"
        );
        assert!(stderr.contains(UNREADABLE), "{args:?}: {stderr}");
    }
}

#[tokio::test]
async fn old_versions_are_upcast_and_a_newer_one_met_while_running_is_a_poison_event() {
    let data = tempfile::tempdir().expect("tempdir");
    run_cli(data.path(), &["migrate"]);
    let pool = store(data.path()).await;
    let old = Uuid::new_v4();
    append_registered(&pool, old, "1", v1_fields(old, "old@example.com")).await;
    let server = Server::start(data.path(), None).await;
    let admin = run_cli(data.path(), &["token", "--sub", "ops", "--role", "admin"]);

    // The v1 user's aggregate loads through the upcaster: it takes commands.
    let resp = server
        .client()
        .patch(format!("{}/v1/users/{old}", server.base()))
        .bearer_auth(&admin)
        .json(&json!({"name": "Renamed"}))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 200);
    let position = resp.json::<Value>().await.expect("body")["position"].as_i64();
    // New registrations are written at version 2, with what v2 added.
    let body = json!({"email": "v2@example.com", "name": "New", "locale": "de-AT",
                      "marketing_consent": true});
    let (status, created) = server.post("/v1/users", None, body).await;
    assert_eq!(status, 201, "{created}");
    let (_, page) = server
        .graphql(
            Some(&admin),
            created["position"].as_i64().max(position),
            "{ customers(first: 10, orderBy: EMAIL_ASC) { nodes { email name } } }",
            Value::Null,
        )
        .await;
    assert_eq!(
        page["data"]["customers"]["nodes"],
        json!([{"email": "old@example.com", "name": "Renamed"},
               {"email": "v2@example.com", "name": "New"}]),
        "{page}"
    );
    let versions: Vec<(String, String)> = sqlx::query_as(
        "SELECT event_type, event_version FROM events WHERE event_type = 'UserRegistered' \
         ORDER BY position",
    )
    .fetch_all(&pool)
    .await
    .expect("versions");
    assert_eq!(versions[1].1, "3", "{versions:?}");

    // A newer release writes a version this one cannot read, while it runs.
    let newer = Uuid::new_v4();
    append_registered(&pool, newer, "9", v1_fields(newer, "newer@example.com")).await;
    let body = json!({"email": "wake@example.com", "name": "Wake"});
    server.post("/v1/users", None, body).await;
    let mut stopped = None;
    for _ in 0..100 {
        let (_, status) = server.get_auth("/v1/admin/projections", &admin).await;
        stopped = status["projections"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == "customer_view"))
            .filter(|p| p["error"].as_str().is_some_and(|e| e.contains(UNREADABLE)))
            .cloned();
        if stopped.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stopped = stopped.expect("customer_view stopped on the unreadable event");
    assert_eq!(stopped["state"], "failed", "{stopped}");
    pool.close().await;
    server.stop().await;
}
