//! A working set kept across batches (a bulk rebuild) freezes the changed
//! rows no batch touched for a few batches: they leave the parsed map, take
//! less memory, come back parsed when a batch touches them again, and are
//! written out with exactly the values they would have had parsed.

use eventlog::testing::TestDatabase;
use readmodel::db::bulk::{Collected, Part};
use readmodel::db::{doc_values, BulkTable, Rows, SqlValue};
use readmodel::models::orders::{Item, OrderView, PaymentSummary};
use readmodel::ReadDb;

fn order(i: usize) -> OrderView {
    OrderView {
        order_id: format!("order-{i:04}"),
        customer_id: "c-1".into(),
        status: "placed".into(),
        currency: "EUR".into(),
        items: (0..8)
            .map(|n| Item {
                sku: format!("SKU-{n:05}"),
                name: format!("Product {n}"),
                quantity: 1,
                unit_price_minor: 999,
                line_total_minor: 999,
            })
            .collect(),
        total_minor: 7992,
        item_count: 8,
        created_at: "2026-03-14T09:01:00.000000Z".into(),
        updated_at: "2026-03-14T09:02:00.000000Z".into(),
        history: Vec::new(),
        payment: PaymentSummary::default(),
        carrier: None,
        tracking_number: Some(format!("TRK{i}")),
        cancel_reason: None,
    }
}

/// Every changed row drained, by key.
fn drain_all(rows: &mut Rows<OrderView>) -> Vec<Vec<SqlValue>> {
    rows.split(0);
    let mut out = Vec::new();
    for part in [Part::New, Part::Stored] {
        while rows.has(part) {
            let mut sink = Collected::default();
            let more = rows.drain(part, &mut sink).expect("drain");
            out.extend(sink.0);
            if !more {
                break;
            }
        }
    }
    out.sort_by(|a, b| format!("{:?}", a[0]).cmp(&format!("{:?}", b[0])));
    out
}

#[tokio::test]
async fn untouched_rows_freeze_thaw_when_touched_and_write_out_unchanged() {
    let t = TestDatabase::sqlite().await;
    let db = ReadDb::connect(&t.url, 1).await.expect("read db");
    let mut rows: Rows<OrderView> = Rows::default();
    rows.keep(false);
    for i in 0..100 {
        rows.insert(format!("order-{i:04}"), order(i));
    }
    rows.tick(true);
    let parsed = rows.estimated_bytes();
    assert_eq!(rows.len(), 100);
    // Untouched for a few batches: frozen, and smaller.
    for _ in 0..8 {
        rows.tick(true);
    }
    assert_eq!(rows.len(), 0, "every untouched row is cold");
    let cold = rows.estimated_bytes();
    assert!(
        cold * 2 < parsed,
        "cold rows take {cold} bytes, parsed {parsed}"
    );
    assert!(rows.is_dirty(), "cold rows are still to be written");

    // A batch that touches one thaws it (no read from the table: this fill
    // never wrote it) and the fold sees it whole.
    let mut tx = db.begin().await.expect("tx");
    rows.load(&mut tx, 1, ["order-0007".to_string()])
        .await
        .expect("load");
    tx.rollback().await.expect("rollback");
    assert_eq!(rows.len(), 1);
    let thawed = rows.get_mut("order-0007").expect("thawed");
    assert_eq!(*thawed, order(7));
    thawed.status = "paid".into();
    // A replaced cold row is not written twice.
    rows.insert("order-0008".into(), order(1008));

    let mut expected: Vec<Vec<SqlValue>> = (0..100)
        .map(|i| {
            let key = format!("order-{i:04}");
            let mut row = match i {
                8 => order(1008),
                _ => order(i),
            };
            if i == 7 {
                row.status = "paid".into();
            }
            doc_values(key, &row).expect("values")
        })
        .collect();
    expected.sort_by(|a, b| format!("{:?}", a[0]).cmp(&format!("{:?}", b[0])));
    assert_eq!(drain_all(&mut rows), expected);
    rows.written();
    assert!(!rows.is_dirty());
    assert_eq!(rows.estimated_bytes(), 0);
    db.close().await;
}

#[tokio::test]
async fn rows_touched_every_batch_stay_parsed() {
    let mut rows: Rows<OrderView> = Rows::default();
    rows.keep(false);
    rows.insert("hot".into(), order(1));
    rows.insert("cold".into(), order(2));
    for _ in 0..10 {
        rows.get_mut("hot").expect("hot").item_count += 1;
        rows.tick(true);
    }
    assert!(rows.contains_key("hot"));
    assert!(!rows.contains_key("cold"));
    assert_eq!(rows["hot"].item_count, 8 + 10);
}

#[tokio::test]
async fn rows_freeze_only_while_memory_is_short() {
    let mut rows: Rows<OrderView> = Rows::default();
    rows.keep(false);
    rows.insert("early".into(), order(1));
    for _ in 0..8 {
        rows.tick(false);
    }
    rows.insert("late".into(), order(2));
    rows.tick(false);
    assert_eq!(rows.len(), 2, "memory is not short: nothing frozen");
    // Short from now on: the first look freezes what aged meanwhile, the
    // rest freezes once it has aged too.
    rows.tick(true);
    assert!(!rows.contains_key("early"));
    assert!(rows.contains_key("late"));
    for _ in 0..8 {
        rows.tick(true);
    }
    assert_eq!(rows.len(), 0);
    assert_eq!(drain_all(&mut rows).len(), 2);
}
