//! A tailer whose read the safe horizon held back reads again soon. The
//! transaction that held it back is no append, so no notification follows
//! when it ends: before, the events behind it waited for the next poll.

use std::time::Duration;

use eventlog::testing::TestDatabase;
use eventlog::EventLog;
use projectors::engine::Pace;
use projectors::testing::Shop;
use readmodel::{status, Wake};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::linger::all_at_head;
use crate::read_db;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_held_back_by_the_horizon_is_retried_before_the_poll() {
    let t = TestDatabase::postgres().await;
    let log = EventLog::new(t.db.clone());
    let db = read_db(&t).await;
    let mut shop = Shop::new(&t.db, 37);
    shop.catalog(2).await;
    projectors::ensure_all(&db).await.expect("live generations");
    let (wake, commits) = (Wake::default(), Wake::default());
    let (stop, stopped) = watch::channel(false);
    // Polls far apart: without a retry, only a wake-up makes them read.
    let pace = Pace {
        poll: Duration::from_secs(60),
        linger: Duration::ZERO,
    };
    let tasks = projectors::spawn_all(&log, &db, &wake, &commits, pace, &stopped);
    all_at_head(&log, &db).await;

    // A transaction with an id stays open while a customer signs up.
    let holder = t.hold_horizon().await;
    shop.customer().await;
    let head = log.head().await.expect("head");
    wake.notify();
    // Time for the tailers to read, find the event held back and start
    // retrying (the assertion below does not depend on how long).
    tokio::time::sleep(Duration::from_millis(400)).await;
    let held = status::all(&log, &db).await.expect("status");
    assert!(
        held.iter().all(|p| p.position < head),
        "nothing is readable behind the open transaction: {held:#?}"
    );

    // It ends (no append, no notification): the tailers read again well
    // before their poll (other tests' transactions can hold the
    // server-wide horizon a while longer; the retries back off meanwhile).
    let released = Instant::now();
    holder.rollback().await.expect("rollback");
    let folded = all_at_head(&log, &db).await;
    assert!(
        folded - released < Duration::from_secs(25),
        "the events behind the horizon waited {:?} (poll: 60 s)",
        folded - released
    );
    let _ = stop.send(true);
    for t in tasks {
        t.await.expect("task");
    }
    db.close().await;
    t.drop_database().await;
}
