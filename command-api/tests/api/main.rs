//! Command API tests through a port-0 server on a fresh database: every
//! endpoint, every error class, concurrency, idempotency, the OpenAPI document.

mod helpers;

mod concurrency;
mod errors;
mod flow;
mod idempotency;
mod openapi;
mod processes;
