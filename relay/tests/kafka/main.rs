//! Relay-crate tests on real databases: the Kafka source's bookkeeping.

mod source;

pub async fn read_db(t: &eventlog::testing::TestDatabase) -> readmodel::ReadDb {
    readmodel::ReadDb::connect(&t.url, 4)
        .await
        .expect("read-model pool")
        .with_keys(t.keys())
}
