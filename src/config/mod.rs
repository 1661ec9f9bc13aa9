//! Settings shared by every subcommand: one shape everywhere, each flag with
//! its `SHOPSTREAM_*` environment twin (flag wins over environment, both
//! over the default).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod kafka;

use anyhow::Context;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use clap::Args;
use command_api::auth::{Secret, MIN_SECRET_LEN};
use rand::RngCore;
use telemetry::LogFormat;

/// Where shopstream keeps its state and how it connects.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// Address the HTTP server listens on.
    #[arg(
        long,
        env = "SHOPSTREAM_LISTEN",
        default_value = "127.0.0.1:8080",
        global = true
    )]
    pub listen: SocketAddr,

    /// Directory for the embedded SQLite store and the generated JWT secret.
    #[arg(
        long,
        env = "SHOPSTREAM_DATA_DIR",
        default_value = "./data",
        global = true
    )]
    pub data_dir: PathBuf,

    /// Event store: `postgres://user@host/db`, or `sqlite://PATH`
    /// [default: sqlite://<data-dir>/shopstream.db].
    #[arg(
        long,
        env = "SHOPSTREAM_DATABASE_URL",
        global = true,
        hide_env_values = true
    )]
    pub database_url: Option<String>,

    /// HS256 secret for bearer tokens (at least 32 characters)
    /// [default: generated once into <data-dir>/jwt-secret].
    #[arg(
        long,
        env = "SHOPSTREAM_JWT_SECRET",
        global = true,
        hide_env_values = true
    )]
    pub jwt_secret: Option<String>,

    /// Log format: `pretty` (development) or `json` (production).
    #[arg(
        long,
        env = "SHOPSTREAM_LOG_FORMAT",
        default_value = "pretty",
        global = true
    )]
    pub log_format: LogFormat,

    /// OTLP/HTTP collector address (`http://localhost:4318`): export traces
    /// to `<endpoint>/v1/traces` (off when unset). The standard `OTEL_*`
    /// variables (`OTEL_SERVICE_NAME`, `OTEL_EXPORTER_OTLP_PROTOCOL`,
    /// `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_BSP_SCHEDULE_DELAY`, …) apply.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", global = true)]
    pub otlp_endpoint: Option<String>,

    /// Snapshot aggregates every N events (0 disables snapshots).
    #[arg(
        long,
        env = "SHOPSTREAM_SNAPSHOT_EVERY",
        default_value_t = 50,
        global = true
    )]
    pub snapshot_every: usize,

    /// Aggregates whose last state each command repository keeps in memory
    /// (per aggregate type; 0 disables the cache, so every command reads
    /// its stream).
    #[arg(
        long,
        env = "SHOPSTREAM_AGGREGATE_CACHE",
        default_value_t = command_api::DEFAULT_AGGREGATE_CACHE,
        global = true
    )]
    pub aggregate_cache: usize,

    /// Production mode: GraphQL introspection and GraphiQL off.
    #[arg(long, env = "SHOPSTREAM_PRODUCTION", global = true)]
    pub production: bool,

    /// Run the order–payment saga in `serve` (orders are paid or cancelled
    /// without anyone driving them).
    #[arg(long, env = "SHOPSTREAM_SAGA", global = true)]
    pub saga: bool,

    /// How long a payment may stay neither captured nor failed (seconds).
    #[arg(
        long,
        env = "SHOPSTREAM_PAYMENT_DEADLINE_SECONDS",
        default_value_t = 900,
        global = true
    )]
    pub payment_deadline_seconds: u32,

    /// New payments the saga tries after a failure.
    #[arg(
        long,
        env = "SHOPSTREAM_PAYMENT_RETRIES",
        default_value_t = 1,
        global = true
    )]
    pub payment_retries: u32,

    /// Run the simulated payment provider, and with it the saga (demo;
    /// refused with --production).
    #[arg(long, env = "SHOPSTREAM_SIMULATE_PAYMENTS", global = true)]
    pub simulate_payments: bool,

    /// Share of simulated payments that fail (0.0..=1.0).
    #[arg(
        long,
        env = "SHOPSTREAM_SIMULATED_FAILURE_RATE",
        default_value_t = 0.1,
        global = true
    )]
    pub simulated_failure_rate: f64,

    /// Most database connections the pool opens.
    #[arg(
        long,
        env = "SHOPSTREAM_DB_MAX_CONNECTIONS",
        default_value_t = 16,
        global = true
    )]
    pub db_max_connections: u32,

    /// The operations port: `/metrics`, `/livez` and `/readyz` on their own
    /// address, for every role. When set, the public port no longer serves
    /// `/metrics`. Roles without an API of their own (`project`, `saga`)
    /// serve these only here. (`--metrics-listen` is the old name.)
    #[arg(
        long,
        env = "SHOPSTREAM_OPERATIONS_LISTEN",
        alias = "metrics-listen",
        global = true
    )]
    pub operations_listen: Option<SocketAddr>,

    /// Kafka bootstrap servers (`host:port,…`): the distributed profile.
    /// `serve` then runs the relay and Kafka-fed projectors; `project`
    /// consumes Kafka. Needs a Postgres store.
    #[arg(long, env = "SHOPSTREAM_KAFKA_BROKERS", global = true)]
    pub kafka_brokers: Option<String>,

    /// The events topic.
    #[arg(
        long,
        env = "SHOPSTREAM_KAFKA_TOPIC",
        default_value = "shopstream.events",
        global = true
    )]
    pub kafka_topic: String,

    /// Partitions when the relay creates the topic (the most projector
    /// processes that share the work).
    #[arg(
        long,
        env = "SHOPSTREAM_KAFKA_PARTITIONS",
        default_value_t = 6,
        global = true
    )]
    pub kafka_partitions: i32,

    /// Replication factor when the relay creates the topic (3 in production).
    #[arg(
        long,
        env = "SHOPSTREAM_KAFKA_REPLICATION_FACTOR",
        default_value_t = 1,
        global = true
    )]
    pub kafka_replication_factor: i32,

    /// Consumer groups are `<prefix>.<projection>`.
    #[arg(
        long,
        env = "SHOPSTREAM_KAFKA_GROUP_PREFIX",
        default_value = "shopstream",
        global = true
    )]
    pub kafka_group_prefix: String,

    /// Consumer session timeout: how soon a dead projector's partitions move.
    #[arg(
        long,
        env = "SHOPSTREAM_KAFKA_SESSION_TIMEOUT_MS",
        default_value_t = 10_000,
        global = true
    )]
    pub kafka_session_timeout_ms: u32,

    /// Time to receive a request's headers, from the connection's start or
    /// the request's first byte; slower clients are disconnected.
    #[arg(long, env = "SHOPSTREAM_HTTP_HEADER_TIMEOUT", default_value = "10s",
          value_parser = humantime::parse_duration, global = true)]
    pub http_header_timeout: Duration,

    /// Time a keep-alive connection may sit idle between requests.
    #[arg(long, env = "SHOPSTREAM_HTTP_IDLE_TIMEOUT", default_value = "60s",
          value_parser = humantime::parse_duration, global = true)]
    pub http_idle_timeout: Duration,

    /// Time to receive a whole request body (`408` after it).
    #[arg(long, env = "SHOPSTREAM_HTTP_BODY_TIMEOUT", default_value = "30s",
          value_parser = humantime::parse_duration, global = true)]
    pub http_body_timeout: Duration,

    /// Most HTTP connections open at once per listener (WebSockets
    /// included); the next one gets `503` and is closed.
    #[arg(
        long,
        env = "SHOPSTREAM_HTTP_MAX_CONNECTIONS",
        default_value_t = 1024,
        global = true
    )]
    pub http_max_connections: usize,

    /// On SIGTERM, how long in-flight requests may take to finish.
    #[arg(long, env = "SHOPSTREAM_DRAIN_TIMEOUT", default_value = "20s",
          value_parser = humantime::parse_duration, global = true)]
    pub drain_timeout: Duration,

    /// How long a request waits for a database connection before it is
    /// answered `503` (REST) or `UNAVAILABLE` (GraphQL).
    #[arg(long, env = "SHOPSTREAM_DB_ACQUIRE_TIMEOUT", default_value = "2s",
          value_parser = humantime::parse_duration, global = true)]
    pub db_acquire_timeout: Duration,

    /// Tokens whose `exp` lies further ahead than this are refused.
    #[arg(long, env = "SHOPSTREAM_MAX_TOKEN_LIFETIME", default_value = "30d",
          value_parser = humantime::parse_duration, global = true)]
    pub max_token_lifetime: Duration,

    /// How long a GraphQL operation may take in all (consistency wait,
    /// database waits, execution); `TIMEOUT` after it.
    #[arg(long, env = "SHOPSTREAM_GRAPHQL_TIMEOUT", default_value = "10s",
          value_parser = humantime::parse_duration, global = true)]
    pub graphql_timeout: Duration,

    /// Deepest nesting of brackets (`{`, `[`, `(`) in a GraphQL query's
    /// text, checked before it is parsed.
    #[arg(long, env = "SHOPSTREAM_GRAPHQL_MAX_NESTING",
          default_value_t = query_api::limits::DEFAULT_MAX_NESTING, global = true)]
    pub graphql_max_nesting: usize,

    /// Most live GraphQL subscriptions per WebSocket connection.
    #[arg(long, env = "SHOPSTREAM_SUBSCRIPTIONS_PER_CONNECTION",
          default_value_t = query_api::limits::DEFAULT_SUBSCRIPTIONS_PER_CONNECTION, global = true)]
    pub subscriptions_per_connection: usize,

    /// Most live GraphQL subscriptions in the process.
    #[arg(long, env = "SHOPSTREAM_MAX_SUBSCRIPTIONS",
          default_value_t = query_api::limits::DEFAULT_SUBSCRIPTIONS_TOTAL, global = true)]
    pub max_subscriptions: usize,

    /// How clients talk to Kafka: `plaintext`, `ssl` (TLS), `sasl_plaintext`
    /// or `sasl_ssl` (SASL over TLS; what managed Kafka services want).
    #[arg(long, env = "SHOPSTREAM_KAFKA_SECURITY_PROTOCOL", default_value = "plaintext",
          value_parser = ["plaintext", "ssl", "sasl_plaintext", "sasl_ssl"], global = true)]
    pub kafka_security_protocol: String,

    /// PEM file of the CA(s) that signed the brokers' certificates
    /// [default: the system's trust store].
    #[arg(long, env = "SHOPSTREAM_KAFKA_CA", global = true)]
    pub kafka_ca: Option<PathBuf>,

    /// PEM client certificate, for brokers that require mutual TLS.
    #[arg(
        long,
        env = "SHOPSTREAM_KAFKA_CERT",
        requires = "kafka_key",
        global = true
    )]
    pub kafka_cert: Option<PathBuf>,

    /// PEM private key of --kafka-cert.
    #[arg(
        long,
        env = "SHOPSTREAM_KAFKA_KEY",
        requires = "kafka_cert",
        global = true
    )]
    pub kafka_key: Option<PathBuf>,

    /// SASL mechanism: `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    #[arg(long, env = "SHOPSTREAM_KAFKA_SASL_MECHANISM",
          value_parser = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"], global = true)]
    pub kafka_sasl_mechanism: Option<String>,

    /// SASL user name.
    #[arg(long, env = "SHOPSTREAM_KAFKA_SASL_USERNAME", global = true)]
    pub kafka_sasl_username: Option<String>,

    /// File holding the SASL password (or set SHOPSTREAM_KAFKA_SASL_PASSWORD;
    /// never a flag, so it stays out of `ps` and shell history).
    #[arg(long, env = "SHOPSTREAM_KAFKA_SASL_PASSWORD_FILE", global = true)]
    pub kafka_sasl_password_file: Option<PathBuf>,

    /// A browser origin whose pages may call the REST and GraphQL APIs
    /// and open the GraphQL WebSocket (repeatable, exact:
    /// `https://shop.example`, `http://localhost:3000`; `*` for any).
    /// Off when unset: only same-origin pages.
    #[arg(
        long = "cors-origin",
        env = "SHOPSTREAM_CORS_ORIGINS",
        value_delimiter = ',',
        global = true
    )]
    pub cors_origins: Vec<String>,

    /// Sign-ups (`POST /v1/users`) per client address and minute (0: no limit).
    #[arg(long, env = "SHOPSTREAM_RATE_LIMIT_SIGNUPS",
          default_value_t = command_api::rate::DEFAULT_SIGNUPS_PER_MINUTE, global = true)]
    pub rate_limit_signups: u32,

    /// Commands per caller (token subject; else client address) and minute
    /// (0: no limit).
    #[arg(long, env = "SHOPSTREAM_RATE_LIMIT_COMMANDS",
          default_value_t = command_api::rate::DEFAULT_COMMANDS_PER_MINUTE, global = true)]
    pub rate_limit_commands: u32,

    /// GraphQL complexity points per caller and minute: each operation
    /// costs its complexity (0: no limit).
    #[arg(long, env = "SHOPSTREAM_RATE_LIMIT_GRAPHQL",
          default_value_t = query_api::limits::DEFAULT_COMPLEXITY_PER_MINUTE, global = true)]
    pub rate_limit_graphql: u32,

    /// A proxy (IP address) whose `X-Forwarded-For` names the client
    /// (repeatable); from anyone else the header is ignored.
    #[arg(
        long = "trusted-proxy",
        env = "SHOPSTREAM_TRUSTED_PROXIES",
        value_delimiter = ',',
        global = true
    )]
    pub trusted_proxies: Vec<std::net::IpAddr>,

    /// Extra librdkafka property, `key=value` (repeatable; in the
    /// environment, `;`-separated; e.g. `security.protocol=SASL_SSL`).
    #[arg(
        long = "kafka-option",
        env = "SHOPSTREAM_KAFKA_OPTIONS",
        value_delimiter = ';',
        global = true
    )]
    pub kafka_options: Vec<String>,
}

impl Settings {
    /// The event store URL: the configured one or the embedded SQLite file.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.data_dir.join("shopstream.db").display()),
        }
    }

    /// The browser origins allowed (`--cors-origin`).
    ///
    /// # Errors
    /// An entry that is not an origin.
    pub fn origins(&self) -> anyhow::Result<command_api::auth::Origins> {
        Ok(command_api::auth::Origins::parse(&self.cors_origins)?)
    }

    /// The limits of every HTTP listener.
    pub fn http_limits(&self) -> command_api::server::Limits {
        command_api::server::Limits {
            origins: self.origins().unwrap_or_default(),
            header_timeout: self.http_header_timeout,
            idle_timeout: self.http_idle_timeout,
            body_timeout: self.http_body_timeout,
            max_connections: self.http_max_connections.max(1),
            drain_timeout: self.drain_timeout,
            ..command_api::server::Limits::default()
        }
    }

    /// The token verifier: the JWT secret and the maximum token lifetime.
    ///
    /// # Errors
    /// As [`Settings::jwt_secret`].
    pub fn authenticator(&self) -> anyhow::Result<command_api::auth::Authenticator> {
        Ok(command_api::auth::Authenticator::new(self.jwt_secret()?)
            .with_max_lifetime(self.max_token_lifetime))
    }

    /// The GraphQL service's settings.
    pub fn query_config(&self) -> query_api::Config {
        query_api::Config {
            introspection: !self.production,
            query_timeout: self.graphql_timeout,
            input: query_api::limits::InputLimits {
                max_nesting: self.graphql_max_nesting.max(1),
                ..query_api::limits::InputLimits::default()
            },
            subscriptions_per_connection: self.subscriptions_per_connection,
            subscriptions_total: self.max_subscriptions,
            origins: self.origins().unwrap_or_default(),
            rate: command_api::auth::rate::Limiter::new("graphql", self.rate_limit_graphql),
            trusted_proxies: self.trusted_proxies.clone(),
            ..query_api::Config::default()
        }
    }

    /// The command API's settings.
    ///
    /// # Errors
    /// As [`Settings::jwt_secret`].
    pub fn command_config(&self) -> anyhow::Result<command_api::Config> {
        let mut config = command_api::Config::new(self.jwt_secret()?);
        config.snapshot_every = self.snapshot_every;
        config.aggregate_cache = self.aggregate_cache;
        config.limits = self.http_limits();
        config.max_token_lifetime = self.max_token_lifetime;
        config.rate = command_api::rate::RateLimits::new(
            self.rate_limit_signups,
            self.rate_limit_commands,
            self.trusted_proxies.clone(),
        );
        Ok(config)
    }

    /// Creates the data directory when the embedded store lives in it.
    ///
    /// # Errors
    /// When the directory cannot be created.
    pub fn ensure_data_dir(&self) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.data_dir).with_context(|| {
            format!(
                "cannot create the data directory {}",
                self.data_dir.display()
            )
        })
    }

    /// The JWT secret: the configured one, or the one generated into the
    /// data directory on first use (so `serve` and `token` agree).
    ///
    /// # Errors
    /// When the secret is too short or the file cannot be read or written.
    pub fn jwt_secret(&self) -> anyhow::Result<Secret> {
        let secret = match &self.jwt_secret {
            Some(s) => s.clone(),
            None => load_or_create_secret(&self.data_dir.join("jwt-secret"))?,
        };
        anyhow::ensure!(
            secret.len() >= MIN_SECRET_LEN,
            "the JWT secret must be at least {MIN_SECRET_LEN} characters"
        );
        Ok(Secret::new(secret))
    }
}

fn load_or_create_secret(path: &Path) -> anyhow::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(s) => return Ok(s.trim().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut bytes = [0u8; 48];
    rand::thread_rng().fill_bytes(&mut bytes);
    let secret = URL_SAFE_NO_PAD.encode(bytes);
    write_private(path, &secret).with_context(|| format!("cannot write {}", path.display()))?;
    tracing::info!(path = %path.display(), "generated a JWT secret");
    Ok(secret)
}

/// Writes a file only its owner can read; never overwrites (a concurrent
/// first start keeps the first secret).
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(mut f) => f.write_all(contents.as_bytes()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_is_generated_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested").join("jwt-secret");
        let first = load_or_create_secret(&path).unwrap();
        let second = load_or_create_secret(&path).unwrap();
        assert_eq!(first, second);
        assert!(first.len() >= MIN_SECRET_LEN);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
