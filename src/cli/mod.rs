//! The command line: one subcommand per role or operator task, each taking
//! only the setting groups it uses (`shopstream token --help` lists no
//! Kafka flag).

//!
//! # Layout
//! - `mod.rs`: [`Cli`], [`Command`], what each subcommand runs.
//! - `args`: each subcommand's arguments, made of the `config` groups.
//! - `tasks`: the subcommands that run once and exit (`token`, `seed`).
//! - `role`: [`role_binary`], the command line of the role binaries.

mod args;
mod role;
mod tasks;

use std::io::Write;

use anyhow::Context;
use clap::{Parser, Subcommand};

pub use args::*;
pub use role::role_binary;

use crate::config::{LogArgs, Settings};
use crate::platform::{self, Roles};

/// shopstream: an event-sourced CQRS platform for commerce back ends.
///
/// Without a subcommand, `serve` runs: the whole platform in one process on
/// the embedded SQLite store (the flags below are `serve`'s).
#[derive(Debug, Parser)]
#[command(name = "shopstream", version, about, long_about = None, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub serve: ServeArgs,
}

/// What to do.
// Parsed once at start; boxing the larger argument groups would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every role in one process (the default).
    Serve(ServeArgs),
    /// Apply the event store's migrations and exit.
    Migrate(Target),
    /// Mint a bearer token with the configured secret; prints only the token.
    Token(TokenArgs),
    /// Print the command API's OpenAPI document.
    Openapi,
    /// Print the GraphQL schema (SDL).
    GraphqlSchema,
    /// Run only the projectors (what the `projectors` binary runs); with
    /// --kafka-brokers they consume Kafka in a consumer group.
    Project(ProjectArgs),
    /// Run only the relay: store → Kafka (needs --kafka-brokers and Postgres).
    Relay(RelayArgs),
    /// Serve only the command REST API (what the `command-api` binary runs).
    Commands(CommandsArgs),
    /// Serve only the GraphQL query API (what the `query-api` binary runs).
    Query(QueryArgs),
    /// Run only the order–payment saga (and, with --simulate-payments, the
    /// simulated payment provider).
    Saga(SagaRoleArgs),
    /// Write realistic, deterministic shop data (customers, catalog, orders,
    /// payments) spread over a date range.
    Seed(SeedArgs),
    /// Probe this instance's `/livez` (at --operations-listen when set, else --listen)
    /// and exit 0 when it answers 200: the container HEALTHCHECK, since the
    /// image has no curl.
    Healthcheck(HealthcheckArgs),
    /// Inspect and rebuild the read models.
    Projections {
        #[command(subcommand)]
        action: ProjectionsAction,
    },
    /// Inspect the event log.
    Events {
        #[command(subcommand)]
        action: EventsAction,
    },
    /// Move the whole store.
    Store {
        #[command(subcommand)]
        action: StoreAction,
    },
    /// The data protection keys that seal personal data.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
}

/// Operator commands for the data protection keys.
#[derive(Debug, Subcommand)]
pub enum KeysAction {
    /// How many users' data keys each master key wraps, whether the key
    /// file holds it, and how many users were forgotten.
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Put a new master key first in the key file (older keys stay, so what
    /// they wrapped still opens) and re-wrap every data key with it. Safe
    /// while the platform runs: processes reading the same file wrap new
    /// keys with the new master within a second.
    Rotate {
        #[command(flatten)]
        target: Target,
    },
}

/// Operator commands for the store as a whole.
#[derive(Debug, Subcommand)]
pub enum StoreAction {
    /// Copy every event (ids, sequences, times, log order), the idempotency
    /// keys, e-mail and identity reservations and the saga's state from the
    /// store of --database-url (default: the embedded SQLite file) into an
    /// empty one; rerun to resume a stopped or killed copy; verifies count
    /// and checksum at the end. Read models are rebuilt on the target.
    Copy(StoreCopyArgs),
}

/// Operator commands for the event log.
#[derive(Debug, Subcommand)]
pub enum EventsAction {
    /// Per event type and version: how many, first and last position, and
    /// how this release reads it (current, an upcaster chain, or not at all).
    Census {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Write every event to an NDJSON archive (gzip when the name ends in
    /// `.gz`; `-` for stdout), closed by its count and checksum.
    Export {
        /// The archive to write.
        #[arg(long)]
        to: std::path::PathBuf,
        #[command(flatten)]
        target: Target,
    },
    /// Check an archive's count and checksum, append its events to an empty
    /// store (or resume into one holding a prefix of it), and verify the store.
    Import {
        /// The archive to read (a file: it is read twice).
        #[arg(long)]
        from: std::path::PathBuf,
        #[command(flatten)]
        target: Target,
    },
}

/// Operator commands for projections.
#[derive(Debug, Subcommand)]
pub enum ProjectionsAction {
    /// Version, checkpoint, head, lag and state of every projection.
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Rebuild a projection into a shadow generation from position 0, then swap it in.
    Rebuild {
        /// customer_view, order_view or analytics.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        name: Option<String>,
        /// Rebuild every projection.
        #[arg(long)]
        all: bool,
        /// Refuse to swap when a same-version rebuild differs from the live one.
        #[arg(long)]
        verify: bool,
        /// Memory the rebuild's working sets and read-ahead may take (what
        /// the process grows by), e.g. 256MiB, 1GiB; near the bound the
        /// largest working set is written out early. At least 48MiB.
        #[arg(long = "rebuild-memory", env = "SHOPSTREAM_REBUILD_MEMORY",
              default_value = "256MiB", value_parser = parse_memory)]
        memory: usize,
        #[command(flatten)]
        target: Target,
    },
}

/// A memory size (`256MiB`, `1 GiB`, `512MB`), at least the least a
/// rebuild takes.
fn parse_memory(text: &str) -> Result<usize, String> {
    let size: bytesize::ByteSize = text.trim().parse()?;
    let bytes = usize::try_from(size.as_u64()).map_err(|_| format!("{text} is too large"))?;
    let least = projectors::rebuild::MIN_MEMORY;
    if bytes < least {
        return Err(format!(
            "{text} is below the least a rebuild takes ({} MiB)",
            least >> 20
        ));
    }
    Ok(bytes)
}

impl Command {
    /// The role's name, as in `service.name` (`shopstream-<role>`).
    pub fn role(&self) -> &'static str {
        match self {
            Self::Serve(_) => "serve",
            Self::Migrate(_) => "migrate",
            Self::Token(_) => "token",
            Self::Openapi => "openapi",
            Self::GraphqlSchema => "graphql-schema",
            Self::Project(_) => "projectors",
            Self::Relay(_) => "relay",
            Self::Commands(_) => "command-api",
            Self::Query(_) => "query-api",
            Self::Saga(_) => "saga",
            Self::Seed(_) => "seed",
            Self::Projections { .. } => "projections",
            Self::Events { .. } => "events",
            Self::Store { .. } => "store",
            Self::Keys { .. } => "keys",
            Self::Healthcheck(_) => "healthcheck",
        }
    }

    /// The roles a serving subcommand starts, with its settings; any other
    /// subcommand comes back as a task.
    fn plan(self) -> Plan {
        Plan::Platform(match self {
            Self::Serve(a) => {
                let log = a.base.target.log.clone();
                let roles = Roles::all(a.saga || a.saga_settings.simulate_payments);
                (roles, a.settings(), log)
            }
            Self::Project(a) => {
                let log = a.base.target.log.clone();
                let mut s = a.base.settings();
                s.kafka = Some(a.kafka);
                s.projectors = Some(a.projectors);
                (Roles::PROJECTORS, s, log)
            }
            Self::Relay(a) => {
                let log = a.base.target.log.clone();
                let mut s = a.base.settings();
                s.listen = Some(a.listen.listen);
                s.kafka = Some(a.kafka);
                (Roles::RELAY, s, log)
            }
            Self::Commands(a) => {
                let log = a.base.target.log.clone();
                let mut s = a.api.settings(a.base);
                s.commands = Some(a.commands);
                (Roles::COMMANDS, s, log)
            }
            Self::Query(a) => {
                let log = a.base.target.log.clone();
                let mut s = a.api.settings(a.base);
                s.graphql = Some(a.graphql);
                (Roles::QUERY, s, log)
            }
            Self::Saga(a) => {
                let log = a.base.target.log.clone();
                let mut s = a.base.settings();
                s.repositories = Some(a.repositories);
                s.saga = Some(a.saga);
                (Roles::SAGA, s, log)
            }
            other => return Plan::Task(other),
        })
    }

    /// Runs the subcommand.
    ///
    /// # Errors
    /// Whatever stops it, with context for the operator.
    pub async fn run(self) -> anyhow::Result<()> {
        let role = self.role();
        let command = match self.plan() {
            Plan::Platform((roles, settings, log)) => {
                // A mistyped origin must stop the start, not silently allow nothing.
                settings.origins()?;
                let _telemetry = log.init(role)?;
                return platform::run(&settings, roles).await;
            }
            Plan::Task(command) => command,
        };
        match command {
            Self::Healthcheck(a) => {
                // No telemetry: the probe runs every few seconds and says
                // nothing but its exit code (and why, on failure).
                let address = a.operations.operations_listen.unwrap_or(a.listen.listen);
                crate::healthcheck::probe(address, &a.path).await
            }
            Self::Migrate(a) => {
                let _telemetry = a.log.init(role)?;
                a.open().await?;
                tracing::info!("migrations applied");
                Ok(())
            }
            Self::Token(a) => tasks::token(&a),
            Self::Seed(a) => {
                let _telemetry = a.target.log.init(role)?;
                tasks::seed(a).await
            }
            Self::Projections { action } => crate::projections::operate(action, role).await,
            Self::Events { action } => tasks::events(action, role).await,
            Self::Keys { action } => tasks::keys(action, role).await,
            Self::Store {
                action: StoreAction::Copy(a),
            } => {
                let _telemetry = a.target.log.init(role)?;
                tasks::store_copy(&a).await
            }
            Self::Openapi => writeln!(std::io::stdout(), "{}", command_api::openapi::document())
                .context("cannot write"),
            Self::GraphqlSchema => {
                write!(std::io::stdout(), "{}", query_api::sdl()).context("cannot write")
            }
            other => anyhow::bail!("`{}` runs on the platform", other.role()),
        }
    }
}

/// What a subcommand does: start roles on the platform, or run a task.
enum Plan {
    Platform((Roles, Settings, LogArgs)),
    Task(Command),
}

impl Cli {
    /// Runs the chosen subcommand (`serve` without one).
    ///
    /// # Errors
    /// Whatever stops it.
    pub async fn run(self) -> anyhow::Result<()> {
        self.command
            .unwrap_or(Command::Serve(self.serve))
            .run()
            .await
    }
}
