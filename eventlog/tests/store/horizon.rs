//! A read held back by the safe horizon says so: a tailer that read all it
//! could learns that committed events wait behind an open transaction
//! (one that is no append, so no notification follows when it ends).
//!
//! The horizon is server-wide, so other tests' transactions can hold a
//! read back too: reads that must find events use `read_all`, which reads
//! up to the committed head.

use eventlog::testing::{read_all, TestDatabase};
use eventlog::{EventLog, Repository};

use crate::helpers::create_product;

#[tokio::test]
async fn a_read_held_back_by_an_open_transaction_says_so() {
    let t = TestDatabase::postgres().await;
    let log = EventLog::new(t.db.clone());
    let repo = Repository::<domain::Product>::new(&t.db, 0, 0);
    create_product(&repo, "HOR-1").await.expect("append");
    let first = read_all(&log).await;
    assert_eq!(first.len(), 1);
    let (seen, after) = (first[0].position, first[0].cursor());
    assert!(!log.held_back(seen).await.expect("held"), "all read");

    // A transaction with an id stays open while another event is appended.
    let holder = t.hold_horizon().await;
    create_product(&repo, "HOR-2").await.expect("append");
    assert!(
        log.read_from(after, 100).await.expect("read").is_empty(),
        "the horizon hides the second event"
    );
    assert!(log.held_back(seen).await.expect("held"), "and says so");

    holder.rollback().await.expect("rollback");
    let all = read_all(&log).await;
    assert_eq!(all.len(), 2, "readable once the transaction ended");
    assert!(!log.held_back(all[1].position).await.expect("held"));
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
