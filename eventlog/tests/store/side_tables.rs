//! Idempotency keys and e-mail reservations on both backends.

use std::time::Duration;

use eventlog::testing::TestDatabase;
use eventlog::{EmailRegistry, IdempotencyStore, KeyState, Reservation};
use serde_json::json;

async fn idempotency_key_lifecycle(t: &TestDatabase) {
    let store = IdempotencyStore::new(t.db.clone());
    assert_eq!(
        store.begin("p", "k", "f1").await.expect("begin"),
        KeyState::Started
    );
    let KeyState::Existing(pending) = store.begin("p", "k", "f1").await.expect("begin") else {
        panic!("second claim must not start")
    };
    assert_eq!(pending.response, None);
    assert_eq!(pending.fingerprint, "f1");
    // Other principals have their own key space.
    assert_eq!(
        store.begin("q", "k", "f1").await.expect("begin"),
        KeyState::Started
    );

    store
        .complete("p", "k", 201, &json!({"id": "x"}))
        .await
        .expect("complete");
    let KeyState::Existing(done) = store.begin("p", "k", "f2").await.expect("begin") else {
        panic!("key is taken")
    };
    assert_eq!(done.response, Some((201, json!({"id": "x"}))));
    assert_eq!(done.fingerprint, "f1");

    // Only a stale pending key can be taken over, and only once.
    assert!(!store
        .take_over("q", "k", Duration::from_secs(60))
        .await
        .expect("take over"));
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(store
        .take_over("q", "k", Duration::from_millis(1))
        .await
        .expect("take over"));
    store.abandon("q", "k").await.expect("abandon");
    assert_eq!(
        store.begin("q", "k", "f").await.expect("begin"),
        KeyState::Started
    );

    assert_eq!(
        store
            .purge_older_than(Duration::from_secs(3600))
            .await
            .expect("purge"),
        0
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        store
            .purge_older_than(Duration::from_millis(1))
            .await
            .expect("purge"),
        2
    );
}

async fn emails_have_one_owner_even_when_racing(t: &TestDatabase) {
    let registry = EmailRegistry::new(t.db.clone());
    let mut tasks = Vec::new();
    for i in 0..20 {
        let registry = registry.clone();
        tasks.push(tokio::spawn(async move {
            registry.reserve("ada@example.com", &format!("u{i}")).await
        }));
    }
    let mut winners = 0;
    for task in tasks {
        if task.await.expect("task").expect("reserve") == Reservation::Reserved {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
    let Reservation::Taken { user_id, .. } = registry
        .reserve("ada@example.com", "late")
        .await
        .expect("reserve")
    else {
        panic!("taken")
    };
    assert!(!registry
        .transfer("ada@example.com", "nobody", "late")
        .await
        .expect("transfer"));
    assert!(registry
        .transfer("ada@example.com", &user_id, "late")
        .await
        .expect("transfer"));
    registry
        .release("ada@example.com", "late")
        .await
        .expect("release");
    assert_eq!(
        registry
            .reserve("ada@example.com", "x")
            .await
            .expect("reserve"),
        Reservation::Reserved
    );
}

crate::both_backends!(
    idempotency_key_lifecycle,
    emails_have_one_owner_even_when_racing
);
