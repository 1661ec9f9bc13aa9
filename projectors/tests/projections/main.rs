//! Projection tests on real databases (SQLite and PostgreSQL): incremental
//! folding equals a from-scratch rebuild, poison events stop one projection,
//! rebuilds swap atomically under load.

mod engine;

pub async fn read_db(t: &eventlog::testing::TestDatabase) -> readmodel::ReadDb {
    readmodel::ReadDb::connect(&t.url, 4)
        .await
        .expect("read-model pool")
        .with_keys(t.keys())
}
