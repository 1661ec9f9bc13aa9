//! The command line.

use std::io::Write;

use anyhow::Context;
use auth::{Authenticator, Role};
use clap::{Parser, Subcommand};
use eventlog::{Database, DatabaseOptions};

use crate::config::Settings;
use crate::serve;

/// shopstream: an event-sourced CQRS platform for commerce back ends.
///
/// Without a subcommand, `serve` runs: the whole platform in one process on
/// the embedded SQLite store.
#[derive(Debug, Parser)]
#[command(name = "shopstream", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub settings: Settings,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every role in one process (the default).
    Serve,
    /// Apply the event store's migrations and exit.
    Migrate,
    /// Mint a bearer token with the configured secret; prints only the token.
    Token {
        /// Subject: the user id for customers, any name for admins and services.
        #[arg(long)]
        sub: String,
        /// customer, admin, service or analyst.
        #[arg(long)]
        role: Role,
        /// Lifetime, e.g. 30m, 1h, 7d.
        #[arg(long, default_value = "1h", value_parser = parse_ttl)]
        ttl: chrono::Duration,
    },
    /// Print the command API's OpenAPI document.
    Openapi,
    /// Print the GraphQL schema (SDL).
    GraphqlSchema,
    /// Run only the projectors (what the `projectors` binary runs); with
    /// --kafka-brokers they consume Kafka in a consumer group.
    Project,
    /// Run only the relay: store → Kafka (needs --kafka-brokers and Postgres).
    Relay,
    /// Serve only the command REST API (what the `command-api` binary runs).
    Commands,
    /// Serve only the GraphQL query API (what the `query-api` binary runs).
    Query,
    /// Run only the order–payment saga (and, with --simulate-payments, the
    /// simulated payment provider).
    Saga,
    /// Write realistic, deterministic shop data (customers, catalog, orders,
    /// payments) spread over a date range.
    Seed {
        /// Customers to register.
        #[arg(long, default_value_t = 1000)]
        customers: usize,
        /// Orders to create.
        #[arg(long, default_value_t = 5000)]
        orders: usize,
        /// Random seed: the same seed writes the same data.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Days of history, ending today.
        #[arg(long, default_value_t = 365)]
        days: u32,
    },
    /// Probe this instance's `/livez` (at --operations-listen when set, else --listen)
    /// and exit 0 when it answers 200: the container HEALTHCHECK, since the
    /// image has no curl.
    Healthcheck {
        /// The path to probe.
        #[arg(long, default_value = "/livez")]
        path: String,
    },
    /// Inspect and rebuild the read models.
    Projections {
        #[command(subcommand)]
        action: ProjectionsAction,
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
    },
}

fn parse_ttl(raw: &str) -> Result<chrono::Duration, String> {
    let raw = raw.trim();
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (n, unit) = raw.split_at(split);
    let n: i64 = n
        .parse()
        .map_err(|_| format!("'{raw}' is not a duration like 30m, 1h or 7d"))?;
    let seconds = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "" => return Err(format!("'{raw}' has no unit: write 30m, 1h or 7d")),
        "d" => n * 86400,
        _ => return Err(format!("unknown unit in '{raw}': use s, m, h or d")),
    };
    if seconds <= 0 || seconds > 366 * 86400 {
        return Err("the lifetime must be between 1s and 366d".into());
    }
    Ok(chrono::Duration::seconds(seconds))
}

impl Command {
    /// The role's name, as in `service.name` (`shopstream-<role>`).
    pub fn role(&self) -> &'static str {
        match self {
            Self::Serve => "serve",
            Self::Migrate => "migrate",
            Self::Token { .. } => "token",
            Self::Openapi => "openapi",
            Self::GraphqlSchema => "graphql-schema",
            Self::Project => "projectors",
            Self::Relay => "relay",
            Self::Commands => "command-api",
            Self::Query => "query-api",
            Self::Saga => "saga",
            Self::Seed { .. } => "seed",
            Self::Projections { .. } => "projections",
            Self::Healthcheck { .. } => "healthcheck",
        }
    }
}

impl Cli {
    /// Runs the chosen subcommand.
    ///
    /// # Errors
    /// Whatever stops it, with context for the operator.
    pub async fn run(self) -> anyhow::Result<()> {
        let command = self.command.unwrap_or(Command::Serve);
        if let Command::Healthcheck { path } = &command {
            // No telemetry: the probe runs every few seconds and says
            // nothing but its exit code (and why, on failure).
            let address = self
                .settings
                .operations_listen
                .unwrap_or(self.settings.listen);
            return crate::healthcheck::probe(address, path).await;
        }
        // A mistyped origin must stop the start, not silently allow nothing.
        self.settings.origins()?;
        let _telemetry = telemetry::init(&telemetry::TelemetryOptions {
            log_format: self.settings.log_format,
            otlp_endpoint: self
                .settings
                .otlp_endpoint
                .clone()
                .filter(|e| !e.is_empty()),
            service_name: format!("shopstream-{}", command.role()),
        })?;
        match command {
            Command::Serve => serve::run(&self.settings).await,
            Command::Migrate => {
                let db = connect(&self.settings).await?;
                db.migrate().await.context("migration failed")?;
                tracing::info!("migrations applied");
                Ok(())
            }
            Command::Token { sub, role, ttl } => {
                let secret = self.settings.jwt_secret()?;
                let token = Authenticator::new(secret).mint(&sub, role, ttl);
                // stdout carries only the token, so TOKEN=$(shopstream token ...) works.
                writeln!(std::io::stdout(), "{token}").context("cannot write the token")?;
                Ok(())
            }
            Command::Healthcheck { .. } => Ok(()),
            Command::Project => crate::serve::project(&self.settings).await,
            Command::Relay => crate::serve::relay(&self.settings).await,
            Command::Commands => crate::serve::commands(&self.settings).await,
            Command::Query => crate::serve::query(&self.settings).await,
            Command::Saga => crate::serve::saga(&self.settings).await,
            Command::Seed {
                customers,
                orders,
                seed,
                days,
            } => {
                let store = connect(&self.settings).await?;
                store.migrate().await.context("migration failed")?;
                let options = crate::seed::SeedOptions {
                    customers,
                    orders,
                    seed,
                    days,
                    end: chrono::Utc::now().date_naive(),
                };
                let report = crate::seed::seed(&store, &options)
                    .await
                    .context("seeding failed")?;
                writeln!(
                    std::io::stdout(),
                    "seeded {} events ({customers} customers, {orders} orders over {days} days) in {:.1}s",
                    report.events,
                    report.seconds
                )?;
                store.close().await;
                Ok(())
            }
            Command::GraphqlSchema => {
                write!(std::io::stdout(), "{}", query_api::sdl()).context("cannot write")?;
                Ok(())
            }
            Command::Projections { action } => {
                let store = connect(&self.settings).await?;
                store.migrate().await.context("migration failed")?;
                let db = crate::projections::open(&self.settings).await?;
                let result = match action {
                    ProjectionsAction::Status { json } => {
                        crate::projections::print_status(&store, &db, json).await
                    }
                    ProjectionsAction::Rebuild { name, all, verify } => {
                        let names: Vec<String> = match name {
                            Some(n) if !all => vec![n],
                            _ => readmodel::NAMES.iter().map(|n| (*n).to_string()).collect(),
                        };
                        crate::projections::rebuild_cmd(&store, &db, &names, verify).await
                    }
                };
                db.close().await;
                store.close().await;
                result
            }
            Command::Openapi => {
                writeln!(std::io::stdout(), "{}", command_api::openapi::document())
                    .context("cannot write")?;
                Ok(())
            }
        }
    }
}

/// Connects to the configured store (creating the data directory for SQLite).
///
/// # Errors
/// When the store cannot be reached.
pub async fn connect(settings: &Settings) -> anyhow::Result<Database> {
    let url = settings.database_url();
    if url.starts_with("sqlite:") {
        settings.ensure_data_dir()?;
    }
    let options = DatabaseOptions {
        max_connections: settings.db_max_connections,
        acquire_timeout: settings.db_acquire_timeout,
    };
    Database::connect(&url, &options)
        .await
        .context("cannot open the event store")
}

#[cfg(test)]
mod tests {
    use super::parse_ttl;

    #[test]
    fn ttls() {
        assert_eq!(parse_ttl("30m").unwrap().num_seconds(), 1800);
        assert_eq!(parse_ttl("2h").unwrap().num_seconds(), 7200);
        assert_eq!(parse_ttl("1d").unwrap().num_seconds(), 86400);
        assert!(parse_ttl("0s").is_err());
        assert!(parse_ttl("abc").is_err());
        assert!(
            parse_ttl("12").is_err(),
            "a lifetime without a unit is refused"
        );
        assert!(parse_ttl("5y").is_err());
    }
}
