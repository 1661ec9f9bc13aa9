//! Statements whose text grows with a batch (multi-row upserts, `IN`
//! lists) stay prepared on their connection only while they are small or
//! a full chunk: any other size is prepared for its one use, so a
//! projector folding batches of every size does not keep hundreds of them
//! (and their thousands of parameters) in its heap and on the server.

use std::collections::{hash_map::RandomState, HashMap};

use eventlog::testing::TestDatabase;
use readmodel::db::bulk::Merge;
use readmodel::db::{doc_shape, doc_values, load_docs, DocRow, CHUNK, KEEP_PREPARED};
use readmodel::ReadDb;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Note {
    id: String,
    text: String,
}

impl DocRow for Note {
    const TABLE: &'static str = "probe";
    const KEY: &'static str = "id";
}

fn notes(range: std::ops::Range<usize>) -> Vec<Note> {
    range
        .map(|i| Note {
            id: format!("n-{i:04}"),
            text: format!("note {i}"),
        })
        .collect()
}

/// Upserts `rows` and loads them back, in `tx`.
async fn round_trip(tx: &mut readmodel::Tx<'_>, rows: &[Note]) -> HashMap<String, Note> {
    let values = rows
        .iter()
        .map(|n| doc_values(n.id.clone(), n).expect("values"))
        .collect();
    doc_shape::<Note>()
        .upsert(tx, 1, values)
        .await
        .expect("upsert");
    let keys: Vec<String> = rows.iter().map(|n| n.id.clone()).collect();
    load_docs::<Note, RandomState>(tx, "probe", "id", 1, &keys)
        .await
        .expect("load")
}

#[tokio::test]
async fn large_batch_statements_are_not_kept_prepared() {
    let t = TestDatabase::postgres().await;
    // One connection: every statement below runs in the session whose
    // prepared statements are listed.
    let db = ReadDb::connect(&t.url, 1).await.expect("read db");
    let shape = doc_shape::<Note>();
    assert_eq!(
        (shape.table, shape.keys.clone(), shape.merge),
        ("probe", vec!["id"], Merge::Replace)
    );
    let mut tx = db.begin().await.expect("begin");
    sqlx::query("CREATE TABLE probe_g1 (id TEXT PRIMARY KEY, doc TEXT NOT NULL)")
        .persistent(false)
        .execute(&mut *tx)
        .await
        .expect("table");

    let small = notes(0..3);
    let large = notes(100..100 + 3 * KEEP_PREPARED);
    let full = notes(1000..1000 + CHUNK);
    for batch in [&small, &large, &full] {
        let loaded = round_trip(&mut tx, batch).await;
        assert_eq!(loaded.len(), batch.len());
        for n in batch.iter() {
            assert_eq!(loaded.get(&n.id), Some(n));
        }
    }
    // The same statements again: the small ones are reused, the large
    // ones prepared again, and both still give the rows back.
    let again = round_trip(&mut tx, &large).await;
    assert_eq!(again.len(), large.len());

    let kept: Vec<String> = sqlx::query_scalar("SELECT statement FROM pg_prepared_statements")
        .fetch_all(&mut *tx)
        .await
        .expect("prepared statements");
    // Each kept statement on the probe table, by kind and parameters.
    let mut probe: Vec<(&str, usize)> = kept
        .iter()
        .filter(|s| s.contains("probe_g1"))
        .map(|s| {
            let kind = if s.starts_with("INSERT") {
                "upsert"
            } else {
                "in"
            };
            (kind, s.matches('$').count())
        })
        .collect();
    probe.sort_unstable();
    // Three rows (an upsert of 6 parameters, 3 keys) and a full chunk are
    // kept; the 48 rows between are not.
    assert_eq!(
        probe,
        vec![
            ("in", 3),
            ("in", CHUNK),
            ("upsert", 6),
            ("upsert", 2 * CHUNK)
        ],
        "{kept:?}"
    );
    tx.rollback().await.expect("rollback");
}

/// SQLite takes the same statements, kept or not.
#[tokio::test]
async fn large_batch_statements_work_on_sqlite() {
    let t = TestDatabase::sqlite().await;
    let db = ReadDb::connect(&t.url, 1).await.expect("read db");
    let mut tx = db.begin().await.expect("begin");
    sqlx::query("CREATE TABLE probe_g1 (id TEXT PRIMARY KEY, doc TEXT NOT NULL)")
        .execute(&mut *tx)
        .await
        .expect("table");
    for batch in [notes(0..3), notes(100..100 + 3 * KEEP_PREPARED)] {
        let loaded = round_trip(&mut tx, &batch).await;
        assert_eq!(loaded.len(), batch.len());
    }
    let changed = notes(100..100 + 3 * KEEP_PREPARED)
        .into_iter()
        .map(|mut n| {
            n.text.push_str(" (edited)");
            n
        })
        .collect::<Vec<_>>();
    let loaded = round_trip(&mut tx, &changed).await;
    assert!(loaded.values().all(|n| n.text.ends_with("(edited)")));
}
