//! shopstream's read models: the contract between the projections that
//! write them and the query API that reads them.
//!
//! Each read model is a folder: its rows and documents (`types`), its pure
//! fold (`fold`: events → row changes) and its SQL (`store`). The query side
//! deserializes the same types the fold writes, so a field renamed in a fold
//! fails to compile on the read side instead of reading as 0. The projection
//! engine (crate `projectors`) runs the folds; this crate knows nothing of
//! tailing, Kafka or rebuilds.
//!
//! Each build of a projection's tables is a *generation*; readers query views
//! that point at the live generation (see `registry`).
//!
//! # Layout
//! - `projection`: the [`Projection`] trait a read model implements, and its [`WorkingSet`].
//! - `models`: the read models — `customer` (customer_view), `orders` (order_view), `analytics`.
//! - `db`: [`ReadDb`], the read-model pool, and the generic row operations (documents, counters, checksums).
//! - `doc`: [`Doc`], a row's document as the query side holds it, parsed into its type on first use.
//! - `registry`: generations, checkpoints, states, the atomic swap (SQL).
//! - `offsets`: the Kafka source's per-partition positions (SQL).
//! - `status`: per-projection version, checkpoint, lag and state.
//! - `wake`: [`Wake`], wake-ups for tailers and readers; [`listen_postgres`] feeds them from `NOTIFY`.
//! - `error`: [`ProjectionError`], [`FoldError`].

pub mod db;
mod doc;
mod error;
pub mod models;
pub mod offsets;
mod projection;
pub mod registry;
pub mod status;
mod wake;

pub use db::{ReadDb, Tx};
pub use doc::{Doc, DocError};
pub use error::{FoldError, ProjectionError};
pub use models::analytics::Analytics;
pub use models::customer::CustomerView;
pub use models::orders::OrderViewProjection;
pub use projection::{Batch, Projection, WorkingSet};
pub use wake::{listen_postgres, Wake};

/// The names of every projection, in the order operators see them.
pub const NAMES: &[&str] = &[
    CustomerView::NAME,
    OrderViewProjection::NAME,
    Analytics::NAME,
];
