//! Event store tests against real databases: a fresh Postgres database or
//! SQLite file per test.

mod helpers;
mod late_commit;
mod repository;
mod side_tables;
