//! `shopstream`: the binary a user runs. All roles in one process
//! (`serve`), plus the operator commands (`migrate`, `token`, `openapi`).
//!
//! # Layout
//! - `cli`: the command line (clap), one variant per subcommand.
//! - `config`: settings from flags and `SHOPSTREAM_*` variables, the data
//!   directory and the JWT secret kept in it.
//! - `serve`: starts the platform and prints where it listens.
//! - `projections`: the projection role, `projections status|rebuild`, the admin endpoint.
//! - `saga`: the order–payment saga and the simulated payment provider.
//! - `seed`: realistic, deterministic demo data (`shopstream seed`).

/// Every shopstream binary allocates through mimalloc: request handling,
/// JSON and row decoding allocate many short-lived objects, which glibc's
/// allocator served at a tenth of the server's CPU in profiles.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod cli;
pub mod config;
pub mod projections;
pub mod saga;
pub mod seed;
pub mod serve;
