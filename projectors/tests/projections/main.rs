//! Projection tests on real databases (SQLite and PostgreSQL): incremental
//! folding equals a from-scratch rebuild, poison events stop one projection,
//! rebuilds swap atomically under load; the bulk fill spills and builds its
//! indexes; the tailers' linger batches bursts.

macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod postgres { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let t = eventlog::testing::TestDatabase::postgres().await;
                super::$name(&t).await;
                t.drop_database().await;
            }
        )* }
        mod sqlite { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let t = eventlog::testing::TestDatabase::sqlite().await;
                super::$name(&t).await;
            }
        )* }
    };
}

mod bulk;
mod engine;
mod horizon;
mod linger;

pub async fn read_db(t: &eventlog::testing::TestDatabase) -> readmodel::ReadDb {
    readmodel::ReadDb::connect(&t.url, 4)
        .await
        .expect("read-model pool")
        .with_keys(t.keys())
}
