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

async fn race<P: Projection>(db: &readmodel::ReadDb, partitions: i32, records: &[Incoming]) {
    for chunk in records.chunks(37) {
        let (a, b) = tokio::join!(
            apply_records::<P>(db, "events", Some(partitions), chunk),
            apply_records::<P>(db, "events", Some(partitions), chunk)
        );
        a.expect("first member");
        b.expect("second member");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_members_apply_each_record_once() {
    racing_members(1).await;
}

/// A batch spans several partitions: their positions are locked and stored
/// together, and the checkpoint waits for every partition's watermark.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_members_over_several_partitions() {
    racing_members(3).await;
}

async fn racing_members(partitions: i32) {
    let t = TestDatabase::postgres().await;
    let log = EventLog::new(t.db.clone());
    let db = read_db(&t).await;
    projectors::ensure_all(&db).await.expect("read models");
    let mut shop = Shop::new(&t.db, 5);
    shop.activity(6, 20).await;
    let events = eventlog::testing::read_all(&log).await;
    let head = events.last().map_or(Cursor::START, |e| e.cursor());
    // Events round the partitions, each partition's offsets dense, then a
    // watermark on every partition, as the relay writes them.
    let mut next = vec![0_i64; partitions as usize];
    let mut records = Vec::new();
    let mut push = |partition: i32, record: Record| {
        let offset = &mut next[partition as usize];
        records.push(Incoming {
            partition,
            offset: *offset,
            record: Some(Arc::new(record)),
        });
        *offset += 1;
    };
    for (i, e) in events.iter().enumerate() {
        push(i as i32 % partitions, Record::Event(Box::new(e.clone())));
    }
    for partition in 0..partitions {
        push(partition, Record::Watermark(head));
    }
    // Before the last partition's watermark the checkpoint is that
    // partition's last event: the lowest over all partitions.
    let last_partition = partitions - 1;
    let lowest = events
        .iter()
        .enumerate()
        .filter(|(i, _)| *i as i32 % partitions == last_partition)
        .map(|(_, e)| e.position)
        .next_back()
        .expect("an event on the last partition");
    let (before, last) = records.split_at(records.len() - 1);
    race::<Analytics>(&db, partitions, before).await;
    let status = readmodel::status::all(&log, &db).await.expect("status");
    let s = status
        .iter()
        .find(|s| s.name == Analytics::NAME)
        .expect("status");
    assert_eq!(s.position, lowest, "{s:?}");
    race::<Analytics>(&db, partitions, last).await;
    race::<CustomerView>(&db, partitions, &records).await;

    // Additive counters (analytics) show a double apply; the customer view
    // is checked too.
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
