//! The Kafka source's bookkeeping without a broker: the records exactly as
//! the relay writes them (events, then a watermark), applied by two members
//! racing over the same partition, as happens while ownership changes hands.

use std::sync::Arc;

use eventlog::testing::TestDatabase;
use eventlog::{Cursor, EventLog};
use projectors::testing::Shop;
use readmodel::{Analytics, CustomerView, Projection};
use relay::kafka::Record;
use relay::source::{apply_records, Incoming};

use crate::read_db;

async fn race<P: Projection>(db: &readmodel::ReadDb, records: &[Incoming]) {
    for chunk in records.chunks(37) {
        let (a, b) = tokio::join!(
            apply_records::<P>(db, "events", Some(1), chunk),
            apply_records::<P>(db, "events", Some(1), chunk)
        );
        a.expect("first member");
        b.expect("second member");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_members_apply_each_record_once() {
    let t = TestDatabase::postgres().await;
    let log = EventLog::new(t.db.clone());
    let db = read_db(&t).await;
    projectors::ensure_all(&db).await.expect("read models");
    let mut shop = Shop::new(&t.db, 5);
    shop.activity(6, 20).await;
    let mut events = Vec::new();
    let mut head = Cursor::START;
    loop {
        let batch = log.read_from(head, 1000).await.expect("read");
        let Some(last) = batch.last() else { break };
        head = last.cursor();
        events.extend(batch);
    }
    let mut records: Vec<Incoming> = events
        .iter()
        .enumerate()
        .map(|(i, e)| Incoming {
            partition: 0,
            offset: i as i64,
            record: Some(Arc::new(Record::Event(Box::new(e.clone())))),
        })
        .collect();
    records.push(Incoming {
        partition: 0,
        offset: records.len() as i64,
        record: Some(Arc::new(Record::Watermark(head))),
    });
    // Additive counters (analytics) show a double apply; the customer view
    // is checked too.
    race::<Analytics>(&db, &records).await;
    race::<CustomerView>(&db, &records).await;

    let status = readmodel::status::all(&log, &db).await.expect("status");
    for name in [Analytics::NAME, CustomerView::NAME] {
        let s = status.iter().find(|s| s.name == name).expect("status");
        assert_eq!(s.source, "kafka", "{s:?}");
        assert_eq!(s.position, head.position, "{s:?}");
        let report = projectors::testing::rebuild_verified(name, &log, &db).await;
        assert!(
            report.diff.iter().all(|d| d.same()),
            "{name}: {:?}",
            report.diff
        );
        assert!(
            report.diff.iter().any(|d| d.live_rows > 0),
            "{name} is empty"
        );
    }
    db.close().await;
    t.drop_database().await;
}
