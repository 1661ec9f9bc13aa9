//! shopstream's telemetry, shared by every service: the Prometheus metrics
//! registry, the log and trace setup (pretty or JSON logs, OTLP/HTTP span
//! export), and the W3C trace context that travels with events.
//!
//! # Layout
//! - `metrics`: the registry every service records into and renders at `/metrics`.
//! - `trace`: [`init`] (subscriber and exporter), [`LogFormat`], and the
//!   `traceparent` helpers that continue a command's trace in the relay,
//!   the projectors and the saga.

pub mod metrics;
mod trace;

pub use trace::*;
