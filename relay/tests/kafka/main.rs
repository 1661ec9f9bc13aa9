//! Relay-crate tests on real databases: the Kafka source's bookkeeping.

mod source;

pub async fn read_db(t: &eventlog::testing::TestDatabase) -> readmodel::ReadDb {
    readmodel::ReadDb::connect(&t.url, 4)
        .await
        .expect("read-model pool")
}

/// A verified rebuild of `name` (rows must equal the live generation's).
pub async fn rebuild_verified(
    name: &str,
    log: &eventlog::EventLog,
    db: &readmodel::ReadDb,
) -> projectors::rebuild::Report {
    let mut progress = |_p: projectors::rebuild::Progress| {};
    projectors::rebuild::rebuild(
        name,
        log,
        db,
        projectors::rebuild::Options {
            verify: true,
            progress: &mut progress,
        },
    )
    .await
    .expect("verified rebuild")
}
