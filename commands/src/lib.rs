//! shopstream's command core: commands in, `{id, version, position}`
//! ([`Done`]) or a [`CommandError`] out, whoever sends them. The REST API
//! maps errors to problem documents at its edge; the order–payment saga and
//! test helpers call the same functions, so every command sees the same
//! facts, rules and events.
//!
//! Each command loads its aggregate (from the per-process cache, proven by
//! the append), checks who may see it and the expected version, lets the
//! domain decide, and appends with optimistic concurrency; facts read from
//! other aggregates become guards the append checks. Every command's events
//! carry its correlation, causation, idempotency key and trace
//! ([`CommandContext`]).
//!
//! # Layout
//! - `run`: [`Commands`] (the repositories), [`Commands::run`] (the one retry
//!   policy), [`Attempt`] (the one attempt), [`Done`].
//! - `context`: [`CommandContext`], the metadata every command carries.
//! - `error`: [`CommandError`].
//! - `users`, `products`, `orders`, `payments`: the commands of each aggregate.

mod context;
mod error;
mod orders;
mod payments;
mod products;
mod run;
mod users;

pub use context::CommandContext;
pub use error::CommandError;
pub use run::{read, Attempt, Commands, Done, Mode, Stream};
pub use users::{IdentityDirectory, SignUp};
