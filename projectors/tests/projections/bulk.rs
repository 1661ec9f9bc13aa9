//! The bulk fill of a rebuild: with room for every working set it writes
//! each table once (short of memory, keeping untouched rows compressed); at a tiny memory bound it writes out after every read
//! batch (spills), keeps the most recently changed rows in memory, copies
//! rows it never wrote straight in and merges the others into what it
//! wrote before (a row evicted and changed again is read back). Either way the
//! result equals the incrementally folded live generation, and the
//! secondary indexes it dropped for the load are back.

use eventlog::testing::TestDatabase;
use eventlog::EventLog;
use projectors::rebuild::{self, Options, Progress};
use projectors::testing::Shop;
use readmodel::{
    registry, Analytics, CustomerView, OrderViewProjection, Projection, ReadDb, NAMES,
};

use crate::engine::fold_in_random_batches;
use crate::read_db;

/// Whether index `name` exists.
async fn index_exists(db: &ReadDb, name: &str) -> bool {
    let sql = if db.is_postgres() {
        "SELECT count(*) FROM pg_indexes WHERE indexname = $1"
    } else {
        "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = $1"
    };
    let n: i64 = sqlx::query_scalar(sql)
        .bind(name)
        .fetch_one(db.pool())
        .await
        .expect("catalog");
    n == 1
}

fn schema(name: &str) -> &'static str {
    match name {
        n if n == CustomerView::NAME => CustomerView::SCHEMA,
        n if n == OrderViewProjection::NAME => OrderViewProjection::SCHEMA,
        _ => Analytics::SCHEMA,
    }
}

/// Rebuilds every projection in one bulk fill with `memory` and 16 events
/// per read; asserts each swapped, equals the live one, has its indexes,
/// and spilled (or not) as expected.
async fn rebuild_all_checked(
    log: &EventLog,
    db: &ReadDb,
    memory: usize,
    spills: bool,
    freeze: bool,
) {
    let mut quiet = |_p: Progress| {};
    let mut options = Options::new(true, &mut quiet).memory(memory).read_batch(16);
    options.freeze_always = freeze;
    let outcomes = rebuild::rebuild_many(NAMES, log, db, options)
        .await
        .expect("read the log");
    assert_eq!(outcomes.len(), NAMES.len());
    for (name, outcome) in outcomes {
        let report = outcome.unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert!(report.swapped, "{name}");
        assert!(
            report.diff.iter().all(|d| d.same()),
            "{name}: {:?}",
            report.diff
        );
        assert!(
            report.diff.iter().any(|d| d.live_rows > 0),
            "{name} is empty"
        );
        assert_eq!(
            report.spills > 0,
            spills,
            "{name}: {} spills",
            report.spills
        );
        for (index, _) in registry::indexes(schema(&name), report.generation) {
            assert!(
                index_exists(db, &index).await,
                "{name}: index {index} missing"
            );
        }
    }
}

async fn bulk_fill_equals_live_with_and_without_spills(t: &TestDatabase) {
    let log = EventLog::new(t.db.clone());
    let db = read_db(t).await;
    let mut shop = Shop::new(&t.db, 5);
    shop.activity(8, 25).await;
    let mut rng = rand::thread_rng();
    fold_in_random_batches::<CustomerView>(&log, &db, &mut rng).await;
    fold_in_random_batches::<OrderViewProjection>(&log, &db, &mut rng).await;
    fold_in_random_batches::<Analytics>(&log, &db, &mut rng).await;
    // Room for everything: one write per table, no spill.
    rebuild_all_checked(&log, &db, rebuild::DEFAULT_MEMORY, false, false).await;
    // Memory short: untouched rows kept compressed, thawed when touched.
    rebuild_all_checked(&log, &db, rebuild::DEFAULT_MEMORY, false, true).await;
    // No room at all: every read batch is written out and merged.
    rebuild_all_checked(&log, &db, 1, true, false).await;
    db.close().await;
}

both_backends!(bulk_fill_equals_live_with_and_without_spills);
