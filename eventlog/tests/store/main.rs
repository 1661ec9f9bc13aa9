//! Event store tests against real databases: a fresh Postgres database or
//! SQLite file per test.

/// Runs a test body (`async fn(&TestDatabase)`) on a fresh Postgres
/// database and on a fresh SQLite file.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),*) => {
        mod postgres { $(
            #[tokio::test]
            async fn $name() {
                let t = eventlog::testing::TestDatabase::postgres().await;
                super::$name(&t).await;
                t.drop_database().await;
            }
        )* }
        mod sqlite { $(
            #[tokio::test]
            async fn $name() {
                let t = eventlog::testing::TestDatabase::sqlite().await;
                super::$name(&t).await;
            }
        )* }
    };
}

mod archive;
mod group;
mod helpers;
mod horizon;
mod keys;
mod late_commit;
mod repository;
mod side_tables;
