//! Group commit: many commands appending at once through one process.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use domain::Product;
use eventlog::testing::TestDatabase;
use eventlog::{EventLog, Repository, StoreError};

use crate::helpers::{create_product, reprice};

/// 48 creations and 8 racing updates of one product, all at once: every
/// creation lands with its own position, exactly one update wins, the
/// others conflict, and nothing else is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_at_once_keep_their_own_outcomes() {
    let t = TestDatabase::postgres().await;
    let repo = Arc::new(Repository::<Product>::new(&t.db, 0, 0));
    create_product(&repo, "HOT").await.expect("HOT");
    // All eight decide on version 1.
    let mut racing = Vec::new();
    for _ in 0..8 {
        racing.push(repo.load("HOT").await.expect("load"));
    }
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..48 {
        let repo = repo.clone();
        tasks.spawn(async move { (true, create_product(&repo, &format!("P{i}")).await) });
    }
    for (price, loaded) in (0..).zip(racing) {
        let repo = repo.clone();
        tasks.spawn(async move {
            let events = repo
                .decide(&loaded, reprice(200 + price), &())
                .await
                .expect("decide");
            (
                false,
                repo.commit(loaded, events, HashMap::new(), &[]).await,
            )
        });
    }
    let (mut created, mut won, mut lost, mut positions) = (0, 0, 0, HashSet::new());
    while let Some(done) = tasks.join_next().await {
        match done.expect("task") {
            (true, Ok(c)) => {
                created += 1;
                assert!(
                    positions.insert(c.position),
                    "position {} twice",
                    c.position
                );
            }
            (false, Ok(c)) => {
                won += 1;
                assert_eq!(c.version, 2);
                assert!(positions.insert(c.position));
            }
            (false, Err(StoreError::Conflict)) => lost += 1,
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!((created, won, lost), (48, 1, 7));
    let log = EventLog::new(t.db.clone());
    assert_eq!(log.stream("Product", "HOT").await.expect("HOT").len(), 2);
    for i in 0..48 {
        let stream = log.stream("Product", &format!("P{i}")).await.expect("P");
        assert_eq!(stream.len(), 1);
        assert!(positions.contains(&stream[0].position));
    }
    drop(repo);
    t.drop_database().await;
}
