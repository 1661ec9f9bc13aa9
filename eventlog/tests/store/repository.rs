//! Loading and committing aggregates on both backends, one behaviour.

use std::collections::HashMap;

use domain::product::ProductEvent;
use domain::Product;
use eventlog::testing::TestDatabase;
use eventlog::{Cursor, EventLog, Repository, StoreError};

use crate::helpers::{create, create_product, price_of, read_eventually, reprice};

async fn append_reports_version_and_position(t: &TestDatabase) {
    let repo = Repository::<Product>::new(&t.db, 0);
    let a = create_product(&repo, "A").await.expect("A");
    let b = create_product(&repo, "B").await.expect("B");
    assert_eq!((a.version, a.appended), (1, 1));
    assert!(b.position > a.position, "positions grow: {a:?} {b:?}");

    let loaded = repo.load("A").await.expect("load");
    assert_eq!(loaded.version(), 1);
    let events = repo
        .decide(&loaded, reprice(250), &())
        .await
        .expect("reprice");
    let c = repo
        .commit(loaded, events, HashMap::from([("k".into(), "v".into())]))
        .await
        .expect("commit");
    assert_eq!(c.version, 2);
    assert!(c.position > b.position);

    let log = EventLog::new(t.db.clone());
    let stream = log.stream("Product", "A").await.expect("stream");
    assert_eq!(
        stream.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(stream[1].event_type, "ProductRepriced");
    assert_eq!(stream[1].event_version, "1");
    assert_eq!(stream[1].metadata["k"], "v");
    let payload: ProductEvent = serde_json::from_value(stream[1].payload.clone()).expect("payload");
    assert_eq!(price_of(&payload), Some(250));
    let all = read_eventually(&log, Cursor::START, 3).await;
    assert_eq!(all.len(), 3);
    assert_eq!(log.head().await.expect("head"), c.position);
    let ids: std::collections::HashSet<_> = all.iter().map(|e| e.event_id).collect();
    assert_eq!(ids.len(), 3, "event ids are unique");
}

async fn a_stale_commit_conflicts(t: &TestDatabase) {
    let repo = Repository::<Product>::new(&t.db, 0);
    create_product(&repo, "A").await.expect("A");
    let first = repo.load("A").await.expect("load");
    let second = repo.load("A").await.expect("load");
    let e1 = repo.decide(&first, reprice(1), &()).await.expect("decide");
    let e2 = repo.decide(&second, reprice(2), &()).await.expect("decide");
    repo.commit(first, e1, HashMap::new())
        .await
        .expect("first wins");
    let lost = repo.commit(second, e2, HashMap::new()).await;
    assert!(matches!(lost, Err(StoreError::Conflict)), "{lost:?}");
    assert_eq!(
        EventLog::new(t.db.clone())
            .stream("Product", "A")
            .await
            .expect("stream")
            .len(),
        2
    );
}

async fn snapshots_load_the_same_state(t: &TestDatabase) {
    let snap = Repository::<Product>::new(&t.db, 2);
    let plain = Repository::<Product>::new(&t.db, 0);
    let loaded = snap.load("S").await.expect("load");
    let events = snap
        .decide(&loaded, create("S", 1), &())
        .await
        .expect("create");
    snap.commit(loaded, events, HashMap::new())
        .await
        .expect("commit");
    for price in 2..=7 {
        let loaded = snap.load("S").await.expect("load");
        let events = snap
            .decide(&loaded, reprice(price), &())
            .await
            .expect("reprice");
        let c = snap
            .commit(loaded, events, HashMap::new())
            .await
            .expect("commit");
        assert_eq!(c.version, price as u64);
    }
    let a = snap.load("S").await.expect("load");
    let b = plain.load("S").await.expect("load");
    assert_eq!(a.aggregate(), b.aggregate());
    assert_eq!(a.version(), 7);
    assert_eq!(a.aggregate().unit_price.map(|p| p.amount_minor), Some(7));
}

async fn rejected_commands_append_nothing(t: &TestDatabase) {
    let repo = Repository::<Product>::new(&t.db, 0);
    create_product(&repo, "A").await.expect("A");
    let loaded = repo.load("A").await.expect("load");
    let err = repo
        .decide(&loaded, create("A", 1), &())
        .await
        .expect_err("exists");
    assert_eq!(err.rule, "product_exists");
    assert_eq!(EventLog::new(t.db.clone()).head().await.expect("head"), 1);
}

crate::both_backends!(
    append_reports_version_and_position,
    a_stale_commit_conflicts,
    snapshots_load_the_same_state,
    rejected_commands_append_nothing
);
