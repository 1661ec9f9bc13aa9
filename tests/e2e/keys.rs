//! Master-key rotation under write load: `shopstream keys rotate` runs
//! while users sign up; afterwards every data key is wrapped by the new
//! master, and a platform holding only the new master key reads everyone.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{run_cli, Server};

/// Signs users up until `stop`; returns (id, e-mail) of each.
async fn sign_ups(
    server: Arc<Server>,
    stop: Arc<AtomicBool>,
    writer: usize,
) -> Vec<(String, String)> {
    let mut users = Vec::new();
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let email = format!("rotate{writer}.{n}@example.com");
        let (s, body) = server
            .post(
                "/v1/users",
                None,
                json!({"email": email, "name": format!("Rotating {n}")}),
            )
            .await;
        assert_eq!(s, 201, "{body}");
        users.push((body["id"].as_str().expect("id").to_string(), email));
    }
    users
}

async fn key_status(data: &std::path::Path, url: &str) -> Vec<Value> {
    let out = run_cli(data, &["keys", "status", "--json", "--database-url", url]);
    serde_json::from_str(&out).expect("status json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_the_master_key_under_write_load_loses_nothing() {
    let t = eventlog::testing::TestDatabase::postgres().await;
    let data = tempfile::tempdir().expect("tempdir");
    let server = Arc::new(Server::start(data.path(), Some(&t.url)).await);
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..3)
        .map(|w| tokio::spawn(sign_ups(server.clone(), stop.clone(), w)))
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let old = std::fs::read_to_string(data.path().join("data-protection-key")).expect("key file");
    let dir = data.path().to_path_buf();
    let url = t.url.clone();
    let rotated = tokio::task::spawn_blocking(move || {
        run_cli(&dir, &["keys", "rotate", "--database-url", &url])
    })
    .await
    .expect("rotate");
    assert!(rotated.contains("is current"), "{rotated}");
    // Writes go on after the rotation, too.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut users = Vec::new();
    for w in writers {
        users.extend(w.await.expect("writer"));
    }
    assert!(users.len() > 20, "{} sign-ups", users.len());

    // Every key (each user's and the e-mail index's) is under the new master.
    let status = key_status(data.path(), &t.url).await;
    let held: Vec<&Value> = status
        .iter()
        .filter(|s| !s["master_key"].is_null())
        .collect();
    assert_eq!(held.len(), 1, "{status:?}");
    assert_eq!(held[0]["current"], true, "{status:?}");
    assert_eq!(held[0]["keys"], users.len() + 1, "{status:?}");

    // Only the new key now: a platform that never saw the old one reads everyone.
    let new = std::fs::read_to_string(data.path().join("data-protection-key")).expect("key file");
    let keys: Vec<&str> = new.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(keys.len(), 2, "the new key first, the old one kept");
    assert!(old.contains(keys[1]));
    let only_new = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        only_new.path().join("data-protection-key"),
        format!("{}\n", keys[0]),
    )
    .expect("write");
    std::fs::copy(
        data.path().join("jwt-secret"),
        only_new.path().join("jwt-secret"),
    )
    .expect("secret");
    drop(server);
    let server = Server::start(only_new.path(), Some(&t.url)).await;
    let admin = run_cli(
        only_new.path(),
        &["token", "--sub", "ops", "--role", "admin"],
    );
    crate::helpers::rebuild_and_wait(&server, &admin, "customer_view").await;
    for (id, email) in &users {
        let (_, body) = server
            .graphql(
                Some(&admin),
                None,
                "query($id: ID!) { customer(id: $id) { email } }",
                json!({"id": id}),
            )
            .await;
        assert_eq!(body["data"]["customer"]["email"], email.as_str(), "{body}");
    }
    server.stop().await;
    t.drop_database().await;
}
