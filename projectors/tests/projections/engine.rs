use std::time::{Duration, Instant};

use eventlog::testing::TestDatabase;
use eventlog::{Cursor, EventLog, StoredEvent};
use projectors::engine::{apply_batch, ensure_live, Pace};
use projectors::rebuild::{self, Options};
use rand::Rng;
use readmodel::{
    status, Analytics, CustomerView, OrderViewProjection, Projection, ReadDb, Wake, NAMES,
};
use tokio::sync::watch;

use crate::read_db;
use projectors::testing::{rebuild_verified, Shop};

/// Up to `limit` events after `after`, read as a projector reads them
/// (below the safe horizon), waiting while the horizon holds them back.
///
/// The horizon is cluster-wide: a transaction another test holds open on
/// another database hides events that committed here, for a moment.
async fn read_some(log: &EventLog, after: Cursor, limit: u32) -> Vec<StoredEvent> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let events = log.read_from(after, limit).await.expect("read");
        if !events.is_empty() {
            return events;
        }
        assert!(
            Instant::now() < deadline,
            "events after {after:?} stayed hidden"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Folds the whole log into `P`'s live generation in random batch sizes,
/// up to its last event as committed now (the shop has finished writing).
pub(crate) async fn fold_in_random_batches<P: Projection>(
    log: &EventLog,
    db: &ReadDb,
    rng: &mut impl Rng,
) {
    let live = ensure_live::<P>(db).await.expect("live");
    let mut cursor = live.cursor;
    let end = log
        .read_settled_from(cursor, u32::MAX)
        .await
        .expect("read")
        .last()
        .map(StoredEvent::cursor);
    while end.is_some_and(|end| cursor < end) {
        let size = rng.gen_range(1..=40);
        let events = read_some(log, cursor, size).await;
        // Redelivery is normal: feed some events twice.
        let from = cursor;
        let applied = apply_batch::<P>(db, live.generation, from, &events)
            .await
            .expect("apply");
        cursor = applied.cursor;
        let again = apply_batch::<P>(db, live.generation, cursor, &events)
            .await
            .expect("redelivery");
        assert_eq!(again.events, 0, "redelivered events were applied again");
    }
}

/// Invariants 1 and 4: incremental folding in any batch sizes, with
/// redelivery, gives exactly the rows of a from-scratch rebuild.
async fn incremental_equals_rebuild(t: &TestDatabase) {
    let log = EventLog::new(t.db.clone());
    let db = read_db(t).await;
    for seed in [1u64, 2] {
        let mut shop = Shop::new(&t.db, seed);
        shop.activity(8, 25).await;
        let mut rng = rand::thread_rng();
        fold_in_random_batches::<CustomerView>(&log, &db, &mut rng).await;
        fold_in_random_batches::<OrderViewProjection>(&log, &db, &mut rng).await;
        fold_in_random_batches::<Analytics>(&log, &db, &mut rng).await;
        for name in NAMES {
            let report = rebuild_verified(name, &log, &db).await;
            assert!(report.swapped);
            assert!(
                report.diff.iter().all(|d| d.same()),
                "{name}: {:?}",
                report.diff
            );
            assert!(
                report.diff.iter().any(|d| d.live_rows > 0),
                "{name} built nothing"
            );
        }
    }
    db.close().await;
}

/// A spot check of the customer view against what the shop did.
async fn customer_view_adds_up(t: &TestDatabase) {
    let log = EventLog::new(t.db.clone());
    let db = read_db(t).await;
    let mut shop = Shop::new(&t.db, 7);
    shop.activity(3, 12).await;
    let mut rng = rand::thread_rng();
    fold_in_random_batches::<CustomerView>(&log, &db, &mut rng).await;
    fold_in_random_batches::<OrderViewProjection>(&log, &db, &mut rng).await;
    fold_in_random_batches::<Analytics>(&log, &db, &mut rng).await;
    let pool = db.pool();
    let customers: i64 = sqlx::query_scalar("SELECT count(*) FROM customer_view")
        .fetch_one(pool)
        .await
        .expect("count");
    assert_eq!(customers, 3);
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM order_view")
        .fetch_one(pool)
        .await
        .expect("count");
    assert_eq!(orders, 12);
    let counted: i64 =
        sqlx::query_scalar("SELECT CAST(sum(order_count) AS BIGINT) FROM customer_view")
            .fetch_one(pool)
            .await
            .expect("sum");
    assert_eq!(counted, 12);
    // Lifetime spend = captured - refunded = the analytics revenue.
    let revenue: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(sum(revenue_minor), 0) AS BIGINT) FROM analytics_daily",
    )
    .fetch_one(pool)
    .await
    .expect("revenue");
    let docs: Vec<String> = sqlx::query_scalar("SELECT doc FROM customer_view")
        .fetch_all(pool)
        .await
        .expect("docs");
    let spend: i64 = docs
        .iter()
        .map(|d| serde_json::from_str::<serde_json::Value>(d).expect("doc"))
        .map(|d| d["lifetime_spend"]["EUR"].as_i64().unwrap_or(0))
        .sum();
    assert_eq!(spend, revenue);
    let created: i64 = sqlx::query_scalar(
        "SELECT CAST(sum(count) AS BIGINT) FROM analytics_funnel WHERE stage = 'created'",
    )
    .fetch_one(pool)
    .await
    .expect("funnel");
    assert_eq!(created, 12);
    db.close().await;
}

/// A poison event stops the projections that cannot fold it, at its
/// position, and leaves the others running.
async fn poison_event_stops_only_its_projection(t: &TestDatabase) {
    let log = EventLog::new(t.db.clone());
    let db = read_db(t).await;
    let mut shop = Shop::new(&t.db, 3);
    shop.activity(2, 2).await;
    // A registration whose payload this code cannot read.
    let poison = "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
                  VALUES ('User', 'broken', 1, 'UserRegistered', '1', '{\"UserRegistered\": {\"nope\": 1}}', '{}')";
    match &t.db {
        eventlog::Database::Postgres(p) => {
            eventlog::sqlx::query(poison).execute(p).await.map(|_| ())
        }
        eventlog::Database::Sqlite(p) => eventlog::sqlx::query(poison).execute(p).await.map(|_| ()),
    }
    .expect("insert poison");
    let poison_position = log.head().await.expect("head");
    shop.activity(0, 2).await;
    let head = log.head().await.expect("head");

    let (stop, stopped) = watch::channel(false);
    let tasks = projectors::spawn_all(
        &log,
        &db,
        &Wake::default(),
        &Wake::default(),
        Pace::polling(Duration::from_millis(20)),
        &stopped,
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let statuses = loop {
        let s = status::all(&log, &db).await.expect("status");
        let order_view_done = s
            .iter()
            .any(|p| p.name == "order_view" && p.position == head);
        let failed = s.iter().filter(|p| p.state == "failed").count();
        if order_view_done && failed == 2 {
            break s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "projections did not settle: {s:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for s in statuses.iter().filter(|s| s.name != "order_view") {
        assert_eq!(
            (s.state.as_str(), s.error_position),
            ("failed", Some(poison_position)),
            "{s:?}"
        );
        assert!(
            s.error.as_deref().is_some_and(|e| e.contains("unreadable")),
            "{s:?}"
        );
        assert!(
            s.position < poison_position,
            "it must not pass the poison event"
        );
        assert!(s.lag_events > 0);
    }
    let _ = stop.send(true);
    for t in tasks {
        t.await.expect("task");
    }
    db.close().await;
}

/// Invariant 7: readers keep answering during a rebuild, see the old
/// generation until the swap and the new one after; the swapped-in
/// generation equals a fresh rebuild.
async fn rebuild_under_load_swaps_atomically(t: &TestDatabase) {
    let log = EventLog::new(t.db.clone());
    let db = read_db(t).await;
    let mut shop = Shop::new(&t.db, 11);
    shop.activity(5, 15).await;
    let wake = Wake::default();
    projectors::ensure_all(&db).await.expect("live generations");
    let (stop, stopped) = watch::channel(false);
    let tasks = projectors::spawn_all(
        &log,
        &db,
        &wake,
        &Wake::default(),
        // Under load the tailers linger, as they do in production.
        Pace {
            poll: Duration::from_millis(20),
            linger: projectors::engine::LINGER,
        },
        &stopped,
    );

    // Writers keep appending while a reader keeps reading.
    let writer_db = t.db.clone();
    let writer_wake = wake.clone();
    let writer = tokio::spawn(async move {
        let mut shop = Shop::new(&writer_db, 12);
        for _ in 0..10 {
            shop.activity(1, 2).await;
            writer_wake.notify();
        }
    });
    let reader_pool = db.pool().clone();
    let (reader_stop, reader_stopped) = watch::channel(false);
    let reader = tokio::spawn(async move {
        let mut reads = 0u32;
        let mut last = 0i64;
        while !*reader_stopped.borrow() {
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM order_view")
                .fetch_one(&reader_pool)
                .await
                .expect("reads never fail");
            // Never a half-built generation: the count only grows.
            assert!(n >= last, "order_view went from {last} to {n} rows");
            last = n;
            reads += 1;
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        reads
    });
    let mut progress = |_p: rebuild::Progress| {};
    let report = rebuild::rebuild("order_view", &log, &db, Options::new(false, &mut progress))
        .await
        .expect("rebuild");
    assert!(report.swapped);
    writer.await.expect("writer");
    let _ = reader_stop.send(true);
    assert!(reader.await.expect("reader") > 0);

    // Let the live runners catch up to the head on the new generation.
    let head = log.head().await.expect("head");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let s = status::all(&log, &db).await.expect("status");
        if s.iter().all(|p| p.position == head && p.state == "live") {
            assert_eq!(
                s.iter()
                    .find(|p| p.name == "order_view")
                    .and_then(|p| p.generation),
                Some(report.generation)
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "runners did not catch up: {s:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop.send(true);
    for t in tasks {
        t.await.expect("task");
    }
    // The generation that went live and kept folding equals a fresh rebuild.
    for name in NAMES {
        let verified = rebuild_verified(name, &log, &db).await;
        assert!(
            verified.diff.iter().all(|d| d.same()),
            "{name}: {:?}",
            verified.diff
        );
    }
    let _ = Cursor::START;
    db.close().await;
}

/// A rebuild killed halfway leaves its shadow generation; the next rebuild
/// resumes it (same generation, from its checkpoint) and finishes equal to
/// the live one. The live generation is untouched until the swap.
async fn killed_rebuild_resumes(t: &TestDatabase) {
    let log = EventLog::new(t.db.clone());
    let db = read_db(t).await;
    let mut shop = Shop::new(&t.db, 21);
    shop.activity(4, 10).await;
    let mut rng = rand::thread_rng();
    fold_in_random_batches::<OrderViewProjection>(&log, &db, &mut rng).await;
    let live_before = rebuild::live_checksums("order_view", &db)
        .await
        .expect("checksums");

    // What a rebuild does before it is killed: a shadow generation, half filled.
    let mut tx = db.begin().await.expect("tx");
    readmodel::registry::create_generation(
        &mut tx,
        "order_view",
        OrderViewProjection::VERSION,
        OrderViewProjection::SCHEMA,
        2,
        "rebuilding",
    )
    .await
    .expect("shadow");
    tx.commit().await.expect("commit");
    let half = read_some(&log, Cursor::START, 40).await;
    apply_batch::<OrderViewProjection>(&db, 2, Cursor::START, &half)
        .await
        .expect("half");
    assert_eq!(
        rebuild::live_checksums("order_view", &db)
            .await
            .expect("checksums"),
        live_before,
        "live untouched"
    );
    let status = status::all(&log, &db).await.expect("status");
    let order_view = status
        .iter()
        .find(|s| s.name == "order_view")
        .expect("order_view");
    assert_eq!(order_view.rebuilding.map(|r| r.0), Some(2));

    let report = rebuild_verified("order_view", &log, &db).await;
    assert_eq!(
        report.generation, 2,
        "the shadow was resumed, not restarted"
    );
    assert!(
        report.events < log.head().await.expect("head") as u64,
        "it resumed from its checkpoint"
    );
    assert!(report.diff.iter().all(|d| d.same()), "{:?}", report.diff);
    db.close().await;
}

/// A verified rebuild refuses to swap when one value of one live row
/// differs from what the log folds to (a text column, then an integer
/// one): the checksums see every column of every row. The live
/// generation stays live and unchanged.
async fn verification_refuses_a_changed_row(t: &TestDatabase) {
    let log = EventLog::new(t.db.clone());
    let db = read_db(t).await;
    let mut shop = Shop::new(&t.db, 23);
    shop.activity(4, 10).await;
    let mut rng = rand::thread_rng();
    fold_in_random_batches::<OrderViewProjection>(&log, &db, &mut rng).await;
    let live = ensure_live::<OrderViewProjection>(&db).await.expect("live");
    let table = format!("order_view_g{}", live.generation);
    for change in ["status = status || 'x'", "total_minor = total_minor + 1"] {
        let sql = format!(
            "UPDATE {table} SET {change} WHERE order_id = (SELECT min(order_id) FROM {table})"
        );
        let changed = sqlx::query(&sql)
            .execute(db.pool())
            .await
            .expect("change a live row")
            .rows_affected();
        assert_eq!(changed, 1, "{change}");
        let before = rebuild::live_checksums("order_view", &db)
            .await
            .expect("checksums");
        let mut quiet = |_p: rebuild::Progress| {};
        match rebuild::rebuild("order_view", &log, &db, Options::new(true, &mut quiet)).await {
            Err(rebuild::RebuildError::Differs(name, diff)) => {
                assert_eq!(name, "order_view");
                let view = diff
                    .iter()
                    .find(|d| d.table == "order_view")
                    .expect("order_view compared");
                assert_eq!(view.live_rows, view.rebuilt_rows, "{change}: same rows");
                assert_ne!(view.live_checksum, view.rebuilt_checksum, "{change}");
                assert!(
                    diff.iter().filter(|d| !d.same()).count() == 1,
                    "{change}: only the changed table differs: {diff:?}"
                );
            }
            Err(e) => panic!("{change}: {e}"),
            Ok(report) => panic!("{change}: swapped over a changed row: {:?}", report.diff),
        }
        let after = ensure_live::<OrderViewProjection>(&db).await.expect("live");
        assert_eq!(after.generation, live.generation, "{change}: not swapped");
        assert_eq!(
            rebuild::live_checksums("order_view", &db)
                .await
                .expect("checksums"),
            before,
            "{change}: the live rows untouched"
        );
    }
    db.close().await;
}

both_backends!(
    incremental_equals_rebuild,
    customer_view_adds_up,
    poison_event_stops_only_its_projection,
    rebuild_under_load_swaps_atomically,
    killed_rebuild_resumes,
    verification_refuses_a_changed_row,
);

async fn synchronous_commit(tx: &mut readmodel::db::Tx<'static>) -> String {
    sqlx::query_scalar("SELECT current_setting('synchronous_commit')")
        .fetch_one(&mut **tx)
        .await
        .expect("setting")
}

/// Read-model batches commit without waiting for the WAL flush on Postgres
/// (the store's appends do wait); other transactions keep the default.
#[tokio::test]
async fn only_batch_transactions_commit_asynchronously() {
    let t = eventlog::testing::TestDatabase::postgres().await;
    let db = crate::read_db(&t).await;
    let mut tx = db.begin_batch().await.expect("begin batch");
    assert_eq!(synchronous_commit(&mut tx).await, "off");
    tx.commit().await.expect("commit");
    for _ in 0..8 {
        // Whichever pooled connection comes next: the setting was local.
        let mut tx = db.begin().await.expect("begin");
        assert_eq!(synchronous_commit(&mut tx).await, "on");
        tx.commit().await.expect("commit");
    }
    db.close().await;
    t.drop_database().await;
}
