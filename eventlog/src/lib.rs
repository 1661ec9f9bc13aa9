//! shopstream's event log: the event store behind both backends (Postgres
//! through postgres-es, SQLite through sqlite-es) with one behaviour.
//!
//! Every appended event gets a global position, an event id and a recording
//! time. [`EventLog::read_from`] tails the whole store in log order without
//! ever skipping an event whose transaction commits late (ARCHITECTURE
//! invariant 3). Every event read is decoded once, here, into the domain's
//! typed [`domain::Event`] ([`StoredEvent::event`]); nobody downstream reads
//! a payload by name. Kafka, telemetry and HTTP live elsewhere (crates
//! `relay`, `telemetry`, `command-api`).
//!
//! # Layout
//! - `db`: [`Database`]: connecting (URL picks the backend), migrating, pinging.
//! - `error`: [`StoreError`], the one error type of this crate.
//! - `health`: [`Health`]: the store pinged in the background, for readiness probes.
//! - `log`: [`EventLog`], [`StoredEvent`], [`Cursor`]: reading the log and streams.
//! - `horizon`: [`EventLog::held_back`], [`HeldBack`]: tailers read again soon when the safe horizon held a read back.
//! - `repository`: [`Repository`]: loading (cqrs-es, behind a per-process cache) and appending aggregates.
//! - `signal`: [`AppendSignal`]: `NOTIFY` tailers in other processes after appends.
//! - `cache`: the aggregate cache in front of the repository.
//! - `idempotency`: [`IdempotencyStore`]: durable idempotency keys.
//! - `emails`: [`Reservations`]: one user per e-mail address ([`EmailRegistry`]) and per provider identity.
//! - `protect`: [`Keyring`]: per-user data keys sealing personal fields (crypto-shredding).
//! - `import`: [`import`]: the bulk path (seeding), many events per statement.
//! - `testing` (feature `testing`): a fresh Postgres database or SQLite file per test.

pub mod archive;
mod cache;
pub mod census;
pub mod copy;
mod db;
mod emails;
mod error;
mod health;
pub mod horizon;
mod idempotency;
mod import;
mod log;
mod log_rows;
pub mod protect;
mod repository;
mod signal;
#[cfg(feature = "testing")]
pub mod testing;
/// The SQL toolkit, for tests that set up unusual database states.
#[cfg(feature = "testing")]
pub use sqlx;
#[cfg(feature = "testing")]
pub use sqlx::{PgPool, SqlitePool};

pub use db::{sqlite_write_turn, values_rows, Backend, Database, DatabaseOptions, IDLE_CHECK};
pub use emails::{EmailRegistry, Reservation, Reservations};
pub use error::{is_unreachable, StoreError};
pub use health::{Health, HealthState};
pub use horizon::HeldBack;
pub use idempotency::{IdempotencyRecord, IdempotencyStore, KeyState};
pub use import::{import, ImportedEvent, IMPORT_CHUNK};
pub use log::{Cursor, EventLog, StoredEvent};
pub use log_rows::RawBatch;
pub use protect::{Keyring, MasterKeys, NewKey};
pub use repository::{AppendGroup, Committed, Guard, Loaded, Repository, Source};
pub use signal::{AppendSignal, EVENTS_CHANNEL};
