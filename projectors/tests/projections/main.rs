//! Projection tests on real databases (SQLite and PostgreSQL): incremental
//! folding equals a from-scratch rebuild, poison events stop one projection,
//! rebuilds swap atomically under load.

mod engine;
mod kafka_source;

pub async fn read_db(t: &eventlog::testing::TestDatabase) -> projectors::ReadDb {
    projectors::ReadDb::connect(&t.url, 4)
        .await
        .expect("read-model pool")
}
