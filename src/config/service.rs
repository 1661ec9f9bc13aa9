//! What each service does with its requests: the command side's
//! repositories and rate limits, the GraphQL service's limits, the saga,
//! and how every process logs and traces.

use std::net::IpAddr;
use std::time::Duration;

use clap::Args;
use telemetry::LogFormat;

/// Logs and traces.
#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Log format.
    #[arg(long, env = "SHOPSTREAM_LOG_FORMAT", default_value = "pretty",
          value_parser = ["pretty", "json"])]
    pub log_format: String,

    /// OTLP/HTTP collector address (`http://localhost:4318`): export traces
    /// to `<endpoint>/v1/traces` (off when unset). The standard `OTEL_*`
    /// variables (`OTEL_SERVICE_NAME`, `OTEL_EXPORTER_OTLP_PROTOCOL`,
    /// `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_BSP_SCHEDULE_DELAY`, …) apply.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
}

/// The command side: repositories and per-caller rate limits.
#[derive(Debug, Clone, Args)]
pub struct CommandArgs {
    #[command(flatten)]
    pub repositories: RepositoryArgs,

    /// Sign-ups (`POST /v1/users`) per client address and minute (0: no limit).
    #[arg(long, env = "SHOPSTREAM_RATE_LIMIT_SIGNUPS",
          default_value_t = command_api::rate::DEFAULT_SIGNUPS_PER_MINUTE)]
    pub rate_limit_signups: u32,

    /// Commands per caller (token subject; else client address) and minute
    /// (0: no limit).
    #[arg(long, env = "SHOPSTREAM_RATE_LIMIT_COMMANDS",
          default_value_t = command_api::rate::DEFAULT_COMMANDS_PER_MINUTE)]
    pub rate_limit_commands: u32,
}

/// The command core's repositories (the API's and the saga's).
#[derive(Debug, Clone, Args)]
pub struct RepositoryArgs {
    /// Snapshot aggregates every N events (0 disables snapshots).
    #[arg(long, env = "SHOPSTREAM_SNAPSHOT_EVERY", default_value_t = 50)]
    pub snapshot_every: usize,

    /// Aggregates whose last state each command repository keeps in memory
    /// (per aggregate type; 0 disables the cache, so every command reads
    /// its stream).
    #[arg(long, env = "SHOPSTREAM_AGGREGATE_CACHE",
          default_value_t = command_api::DEFAULT_AGGREGATE_CACHE)]
    pub aggregate_cache: usize,
}

/// The projectors that tail the store.
#[derive(Debug, Clone, Args)]
pub struct ProjectorArgs {
    /// While events keep coming, the shortest time between two batches of
    /// one projection: more events per read-model transaction under load
    /// (fewer writes beside the appends), at most this much later in the
    /// read models. An event after a quiet spell is folded at once; `0s`
    /// folds every wake-up. Kafka-fed projectors batch what arrives.
    #[arg(long, env = "SHOPSTREAM_PROJECTION_LINGER", default_value = "20ms",
          value_parser = parse_linger)]
    pub projection_linger: Duration,
}

fn parse_linger(raw: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(raw).map_err(|e| e.to_string())?;
    if d > Duration::from_secs(1) {
        return Err("at most 1s (the tailers poll every second anyway)".into());
    }
    Ok(d)
}

/// The GraphQL service.
#[derive(Debug, Clone, Args)]
pub struct GraphqlArgs {
    /// Production mode: GraphQL introspection and GraphiQL off (and no
    /// simulated payment provider).
    #[arg(long, env = "SHOPSTREAM_PRODUCTION")]
    pub production: bool,

    /// How long a GraphQL operation may take in all (consistency wait,
    /// database waits, execution); `TIMEOUT` after it.
    #[arg(long, env = "SHOPSTREAM_GRAPHQL_TIMEOUT", default_value = "10s",
          value_parser = humantime::parse_duration)]
    pub graphql_timeout: Duration,

    /// Deepest nesting of brackets (`{`, `[`, `(`) in a GraphQL query's
    /// text, checked before it is parsed.
    #[arg(long, env = "SHOPSTREAM_GRAPHQL_MAX_NESTING",
          default_value_t = query_api::limits::DEFAULT_MAX_NESTING)]
    pub graphql_max_nesting: usize,

    /// Most live GraphQL subscriptions per WebSocket connection.
    #[arg(long, env = "SHOPSTREAM_SUBSCRIPTIONS_PER_CONNECTION",
          default_value_t = query_api::limits::DEFAULT_SUBSCRIPTIONS_PER_CONNECTION)]
    pub subscriptions_per_connection: usize,

    /// Most live GraphQL subscriptions in the process.
    #[arg(long, env = "SHOPSTREAM_MAX_SUBSCRIPTIONS",
          default_value_t = query_api::limits::DEFAULT_SUBSCRIPTIONS_TOTAL)]
    pub max_subscriptions: usize,

    /// GraphQL complexity points per caller and minute: each operation
    /// costs its complexity (0: no limit).
    #[arg(long, env = "SHOPSTREAM_RATE_LIMIT_GRAPHQL",
          default_value_t = query_api::limits::DEFAULT_COMPLEXITY_PER_MINUTE)]
    pub rate_limit_graphql: u32,
}

/// The order–payment saga and the simulated payment provider.
#[derive(Debug, Clone, Args)]
pub struct SagaArgs {
    /// How long a payment may stay neither captured nor failed (seconds).
    #[arg(
        long,
        env = "SHOPSTREAM_PAYMENT_DEADLINE_SECONDS",
        default_value_t = 900
    )]
    pub payment_deadline_seconds: u32,

    /// New payments the saga tries after a failure.
    #[arg(long, env = "SHOPSTREAM_PAYMENT_RETRIES", default_value_t = 1)]
    pub payment_retries: u32,

    /// Run the simulated payment provider, and with it the saga (demo;
    /// refused with --production).
    #[arg(long, env = "SHOPSTREAM_SIMULATE_PAYMENTS")]
    pub simulate_payments: bool,

    /// Share of simulated payments that fail (0.0..=1.0).
    #[arg(long, env = "SHOPSTREAM_SIMULATED_FAILURE_RATE", default_value_t = 0.1)]
    pub simulated_failure_rate: f64,
}

impl LogArgs {
    /// Installs logging and trace export for `role` (`service.name` is
    /// `shopstream-<role>`).
    ///
    /// # Errors
    /// A malformed OTLP setting.
    pub fn init(&self, role: &str) -> anyhow::Result<telemetry::TelemetryGuard> {
        let log_format: LogFormat = self.log_format.parse().map_err(anyhow::Error::msg)?;
        Ok(telemetry::init(&telemetry::TelemetryOptions {
            log_format,
            otlp_endpoint: self.otlp_endpoint.clone().filter(|e| !e.is_empty()),
            service_name: format!("shopstream-{role}"),
        })?)
    }
}

impl CommandArgs {
    /// The command API's rate limits.
    pub fn rate(&self, trusted_proxies: &[IpAddr]) -> command_api::rate::RateLimits {
        command_api::rate::RateLimits::new(
            self.rate_limit_signups,
            self.rate_limit_commands,
            trusted_proxies.to_vec(),
        )
    }
}

impl GraphqlArgs {
    /// The GraphQL service's settings.
    pub fn config(&self, origins: auth::Origins, trusted_proxies: &[IpAddr]) -> query_api::Config {
        query_api::Config {
            introspection: !self.production,
            query_timeout: self.graphql_timeout,
            input: query_api::limits::InputLimits {
                max_nesting: self.graphql_max_nesting.max(1),
                ..query_api::limits::InputLimits::default()
            },
            subscriptions_per_connection: self.subscriptions_per_connection,
            subscriptions_total: self.max_subscriptions,
            origins,
            rate: auth::rate::Limiter::new("graphql", self.rate_limit_graphql),
            trusted_proxies: trusted_proxies.to_vec(),
            ..query_api::Config::default()
        }
    }
}

impl SagaArgs {
    /// Checks the settings before anything starts.
    ///
    /// # Errors
    /// A failure rate outside 0..=1, or the simulator in production.
    pub fn check(&self, production: bool) -> anyhow::Result<()> {
        anyhow::ensure!(
            !(self.simulate_payments && production),
            "the simulated payment provider cannot run in production mode"
        );
        anyhow::ensure!(
            (0.0..=1.0).contains(&self.simulated_failure_rate),
            "--simulated-failure-rate must be between 0 and 1"
        );
        Ok(())
    }
}
