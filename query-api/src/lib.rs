//! shopstream query API: the GraphQL schema over the read models.
//!
//! The schema is built by the GraphQL issue, on top of the read models that
//! the `projectors` crate maintains.
//!
//! # Layout
//! - (empty until the GraphQL schema lands)
