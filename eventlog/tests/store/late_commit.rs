//! Invariant 3: no tailer ever skips an event, even when the transaction
//! holding a lower position commits last.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use domain::Product;
use eventlog::testing::TestDatabase;
use eventlog::{Cursor, Database, EventLog, Repository};
use sqlx::{PgPool, Postgres, Transaction};

use crate::helpers::{create_product, read_eventually};

async fn insert(tx: &mut Transaction<'_, Postgres>, id: &str) -> i64 {
    // The statement postgres-es runs, plus RETURNING.
    sqlx::query_scalar(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         VALUES ('Probe', $1, 1, 'Probed', '1', '{}', '{}') RETURNING position",
    )
    .bind(id)
    .fetch_one(&mut **tx)
    .await
    .expect("insert")
}

fn ids(events: &[eventlog::StoredEvent]) -> Vec<&str> {
    events.iter().map(|e| e.aggregate_id.as_str()).collect()
}

fn pool(t: &TestDatabase) -> PgPool {
    match &t.db {
        Database::Postgres(p) => p.clone(),
        Database::Sqlite(_) => unreachable!("postgres test"),
    }
}

#[tokio::test]
async fn reader_waits_for_a_late_commit_and_survives_a_rollback() {
    let t = TestDatabase::postgres().await;
    let pool = pool(&t);
    let log = EventLog::new(t.db.clone());

    // The lower position is taken first and committed last.
    let mut low = pool.begin().await.expect("begin");
    let low_position = insert(&mut low, "low").await;
    let mut high = pool.begin().await.expect("begin");
    let high_position = insert(&mut high, "high").await;
    assert!(low_position < high_position);
    high.commit().await.expect("commit high");

    let seen = log.read_from(Cursor::START, 100).await.expect("read");
    assert!(
        seen.is_empty(),
        "reader passed an open transaction: {:?}",
        ids(&seen)
    );

    low.commit().await.expect("commit low");
    let seen = read_eventually(&log, Cursor::START, 2).await;
    assert_eq!(ids(&seen), ["low", "high"]);
    let after = seen.last().expect("events").cursor();

    // An open transaction that rolls back must not stall the reader.
    let mut doomed = pool.begin().await.expect("begin");
    insert(&mut doomed, "doomed").await;
    let mut later = pool.begin().await.expect("begin");
    insert(&mut later, "later").await;
    later.commit().await.expect("commit later");
    assert!(log.read_from(after, 100).await.expect("read").is_empty());
    doomed.rollback().await.expect("rollback");
    let seen = read_eventually(&log, after, 1).await;
    assert_eq!(ids(&seen), ["later"]);

    drop(log);
    t.drop_database().await;
}

/// Many concurrent appenders, one tailer reading small batches: the tailer
/// sees every committed event exactly once, in strictly increasing cursor order.
async fn tailer_sees_everything_once(t: &TestDatabase) {
    let repo = Arc::new(Repository::<Product>::new(&t.db, 0, 0));
    let log = EventLog::new(t.db.clone());
    let writers = 8;
    let per_writer = 40;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let repo = repo.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per_writer {
                create_product(&repo, &format!("W{w}-{i}"))
                    .await
                    .expect("append");
            }
        }));
    }
    let expected = writers * per_writer;
    let mut seen = HashSet::new();
    let mut cursor = Cursor::START;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while seen.len() < expected {
        assert!(
            tokio::time::Instant::now() < deadline,
            "tailer stalled at {} of {expected}",
            seen.len()
        );
        for event in log.read_from(cursor, 7).await.expect("read") {
            assert!(
                event.cursor() > cursor,
                "cursor went backwards: {:?} after {cursor:?}",
                event.cursor()
            );
            cursor = event.cursor();
            assert!(
                seen.insert(event.aggregate_id.clone()),
                "{} delivered twice",
                event.aggregate_id
            );
        }
        tokio::task::yield_now().await;
    }
    for task in tasks {
        task.await.expect("writer");
    }
    assert!(log.read_from(cursor, 100).await.expect("read").is_empty());
}

#[tokio::test]
async fn concurrent_appends_are_tailed_without_loss_on_postgres() {
    let t = TestDatabase::postgres().await;
    tailer_sees_everything_once(&t).await;
    t.drop_database().await;
}

#[tokio::test]
async fn concurrent_appends_are_tailed_without_loss_on_sqlite() {
    let t = TestDatabase::sqlite().await;
    tailer_sees_everything_once(&t).await;
}

/// Regression: the log order compares transaction ids as numbers. Sorted as
/// text, "10001" came before "9993" and a tailer that crossed a power of ten
/// went backwards and re-read events.
#[tokio::test]
async fn transaction_ids_order_as_numbers_not_text() {
    let t = TestDatabase::postgres().await;
    let pool = pool(&t);
    // Transaction ids either side of a power of ten, all already final
    // (below the server's current id, whatever its age).
    let current: String = sqlx::query_scalar("SELECT pg_current_xact_id()::text")
        .fetch_one(&pool)
        .await
        .expect("current xid");
    let current: u64 = current.parse().expect("xid");
    let mut power = 10u64;
    while power * 10 + 3 <= current {
        power *= 10;
    }
    assert!(
        power + 3 <= current,
        "the server is younger than 13 transactions"
    );
    let xids = [power - 7, power + 1, power + 2].map(|x| x.to_string());
    for (id, xid) in [
        ("first", &xids[0]),
        ("second", &xids[1]),
        ("third", &xids[2]),
    ] {
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, transaction_id) \
             VALUES ('Probe', $1, 1, 'Probed', '1', '{}', '{}', $2::text::xid8)",
        )
        .bind(id)
        .bind(xid)
        .execute(&pool)
        .await
        .expect("insert");
    }
    let log = EventLog::new(t.db.clone());
    let seen = read_eventually(&log, Cursor::START, 3).await;
    assert_eq!(ids(&seen), ["first", "second", "third"]);
    let after_first = log.read_from(seen[0].cursor(), 10).await.expect("read");
    assert_eq!(ids(&after_first), ["second", "third"]);
    drop(log);
    t.drop_database().await;
}
