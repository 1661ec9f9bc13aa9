//! shopstream projectors: the projection engine and the read models
//! (customer view, order view, analytics).
//!
//! This crate is the home of the projection engine; the engine and its read
//! models are built by the projections issue. Until then the event log's
//! position-ordered reader ([`eventlog`'s `EventLog::read_from`]) is the
//! interface projections will consume.
//!
//! # Layout
//! - (empty until the projection engine lands)
