//! A read held back by the safe horizon says so: a tailer that read all it
//! could learns that committed events wait behind an open transaction
//! (one that is no append, so no notification follows when it ends).
//!
//! The horizon is server-wide, so other tests' transactions can hold a
//! read back too: reads that should find an event retry for a while.

use std::time::Duration;

use eventlog::testing::TestDatabase;
use eventlog::{Cursor, Database, EventLog, Repository, StoredEvent};

use crate::helpers::create_product;

/// Reads after `after` until something is readable (10 s at most).
async fn read_some(log: &EventLog, after: Cursor) -> Vec<StoredEvent> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let events = log.read_from(after, 100).await.expect("read");
        if !events.is_empty() || std::time::Instant::now() > deadline {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_read_held_back_by_an_open_transaction_says_so() {
    let t = TestDatabase::postgres().await;
    let log = EventLog::new(t.db.clone());
    let repo = Repository::<domain::Product>::new(&t.db, 0, 0);
    create_product(&repo, "HOR-1").await.expect("append");
    let first = read_some(&log, Cursor::START).await;
    assert_eq!(first.len(), 1);
    let (seen, after) = (first[0].position, first[0].cursor());
    assert!(!log.held_back(seen).await.expect("held"), "all read");

    // A transaction with an id, open while another event is appended.
    let Database::Postgres(pool) = &t.db else {
        unreachable!("postgres test")
    };
    let mut holder = pool.begin().await.expect("begin");
    sqlx::query("SELECT pg_current_xact_id()")
        .execute(&mut *holder)
        .await
        .expect("an id");
    create_product(&repo, "HOR-2").await.expect("append");
    assert!(
        log.read_from(after, 100).await.expect("read").is_empty(),
        "the horizon hides the second event"
    );
    assert!(log.held_back(seen).await.expect("held"), "and says so");

    holder.rollback().await.expect("rollback");
    let second = read_some(&log, after).await;
    assert_eq!(second.len(), 1, "readable once the transaction ended");
    assert!(!log.held_back(second[0].position).await.expect("held"));
    t.drop_database().await;
}

#[tokio::test]
async fn sqlite_reads_are_never_held_back() {
    let t = TestDatabase::sqlite().await;
    let log = EventLog::new(t.db.clone());
    let repo = Repository::<domain::Product>::new(&t.db, 0, 0);
    create_product(&repo, "HOR-3").await.expect("append");
    assert!(!log.held_back(0).await.expect("held"));
}
