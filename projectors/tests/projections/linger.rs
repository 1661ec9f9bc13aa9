//! The tailers' linger: an event after a quiet spell is folded at once; a
//! burst that follows it is folded in one batch per projection once the
//! linger has passed, not one per wake-up.

use std::time::Duration;

use eventlog::testing::TestDatabase;
use eventlog::EventLog;
use projectors::engine::Pace;
use projectors::testing::Shop;
use readmodel::{status, ReadDb, Wake};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::read_db;

const LINGER: Duration = Duration::from_millis(1500);

/// Waits until every projection has folded the whole log; returns when.
pub(crate) async fn all_at_head(log: &EventLog, db: &ReadDb) -> Instant {
    let head = log.head().await.expect("head");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = status::all(log, db).await.expect("status");
        if s.iter().all(|p| p.position == head) {
            return Instant::now();
        }
        assert!(Instant::now() < deadline, "projections lag: {s:#?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn linger_batches_a_burst(t: &TestDatabase) {
    let log = EventLog::new(t.db.clone());
    let db = read_db(t).await;
    let mut shop = Shop::new(&t.db, 31);
    shop.catalog(6).await;
    projectors::ensure_all(&db).await.expect("live generations");
    let (wake, commits) = (Wake::default(), Wake::default());
    let (stop, stopped) = watch::channel(false);
    // Polls far apart: only wake-ups make the tailers read.
    let pace = Pace {
        poll: Duration::from_secs(30),
        linger: LINGER,
    };
    let tasks = projectors::spawn_all(&log, &db, &wake, &commits, pace, &stopped);
    all_at_head(&log, &db).await;
    // A quiet spell longer than the linger, then one customer.
    tokio::time::sleep(LINGER + Duration::from_millis(200)).await;
    let appended = Instant::now();
    shop.customer().await;
    wake.notify();
    let folded = all_at_head(&log, &db).await;
    assert!(
        folded - appended < LINGER,
        "an event after a quiet spell waited {:?}",
        folded - appended
    );

    // A burst of five wake-ups inside the linger.
    let before = commits.version();
    for _ in 0..5 {
        shop.customer().await;
        wake.notify();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    all_at_head(&log, &db).await;
    let batches = commits.version().wrapping_sub(before);
    assert!(
        (3..=6).contains(&batches),
        "three projections folded the burst in {batches} batches (one or two each expected)"
    );
    let _ = stop.send(true);
    for t in tasks {
        t.await.expect("task");
    }
    db.close().await;
}

both_backends!(linger_batches_a_burst);
