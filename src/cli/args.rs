//! Each subcommand's arguments: the setting groups it uses (see `config`),
//! and how they become the platform's [`Settings`].

use auth::Role;
use clap::Args;

use crate::config::{
    AuthArgs, CommandArgs, DataDir, EdgeArgs, GraphqlArgs, HttpLimitsArgs, KafkaArgs, ListenArgs,
    LogArgs, OperationsArgs, ProjectorArgs, ProviderArgs, RepositoryArgs, SagaArgs, Settings,
    StoreArgs,
};

/// The store an operator command works on.
#[derive(Debug, Clone, Args)]
pub struct Target {
    #[command(flatten)]
    pub data: DataDir,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

/// The groups of every role that serves HTTP (an API or the operations port).
#[derive(Debug, Clone, Args)]
pub struct Base {
    #[command(flatten)]
    pub target: Target,
    #[command(flatten)]
    pub operations: OperationsArgs,
    #[command(flatten)]
    pub limits: HttpLimitsArgs,
}

/// The groups of a role that serves an API: its address, its tokens,
/// the browsers and proxies in front of it.
#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    #[command(flatten)]
    pub listen: ListenArgs,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub provider: ProviderArgs,
    #[command(flatten)]
    pub edge: EdgeArgs,
}

/// `serve`: every role.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub base: Base,
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(flatten)]
    pub commands: CommandArgs,
    #[command(flatten)]
    pub graphql: GraphqlArgs,
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub projectors: ProjectorArgs,
    /// Run the order–payment saga too (orders are paid or cancelled
    /// without anyone driving them).
    #[arg(long, env = "SHOPSTREAM_SAGA")]
    pub saga: bool,
    #[command(flatten)]
    pub saga_settings: SagaArgs,
}

/// `project`: the projectors.
#[derive(Debug, Clone, Args)]
pub struct ProjectArgs {
    #[command(flatten)]
    pub base: Base,
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub projectors: ProjectorArgs,
}

/// `relay`: store → Kafka.
#[derive(Debug, Clone, Args)]
pub struct RelayArgs {
    #[command(flatten)]
    pub base: Base,
    #[command(flatten)]
    pub listen: ListenArgs,
    #[command(flatten)]
    pub kafka: KafkaArgs,
}

/// `commands`: the command REST API.
#[derive(Debug, Clone, Args)]
pub struct CommandsArgs {
    #[command(flatten)]
    pub base: Base,
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(flatten)]
    pub commands: CommandArgs,
}

/// `query`: the GraphQL query API.
#[derive(Debug, Clone, Args)]
pub struct QueryArgs {
    #[command(flatten)]
    pub base: Base,
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(flatten)]
    pub graphql: GraphqlArgs,
}

/// `saga`: the order–payment saga (and the simulated provider).
#[derive(Debug, Clone, Args)]
pub struct SagaRoleArgs {
    #[command(flatten)]
    pub base: Base,
    #[command(flatten)]
    pub repositories: RepositoryArgs,
    #[command(flatten)]
    pub saga: SagaArgs,
}

/// `store copy`.
#[derive(Debug, Clone, Args)]
pub struct StoreCopyArgs {
    /// The store to copy into: empty, or holding what a stopped copy of
    /// the same source wrote (`postgres://…` or `sqlite://PATH`).
    #[arg(long)]
    pub to: String,

    /// Events per batch (each one transaction in the target).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub batch: u32,

    /// Stop once the target holds this many events (a copy in stages;
    /// rerun without it to finish).
    #[arg(long)]
    pub stop_after: Option<u64>,

    /// The source: --database-url (default: the embedded SQLite file).
    #[command(flatten)]
    pub target: Target,
}

/// `token`.
#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// Subject: the user id for customers, any name for admins and services.
    #[arg(long)]
    pub sub: String,
    /// The role the token carries.
    #[arg(long, value_parser = role_parser())]
    pub role: Role,
    /// Lifetime, e.g. 30m, 1h, 7d (a unit is required; at most
    /// --max-token-lifetime, which the servers enforce).
    #[arg(long, default_value = "1h", value_parser = parse_ttl)]
    pub ttl: chrono::Duration,
    #[command(flatten)]
    pub data: DataDir,
    #[command(flatten)]
    pub auth: AuthArgs,
}

/// `seed`.
#[derive(Debug, Clone, Args)]
pub struct SeedArgs {
    /// Customers to register.
    #[arg(long, default_value_t = 1000)]
    pub customers: usize,
    /// Orders to create.
    #[arg(long, default_value_t = 5000)]
    pub orders: usize,
    /// Random seed: the same seed writes the same data.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Days of history, ending today.
    #[arg(long, default_value_t = 365)]
    pub days: u32,
    #[command(flatten)]
    pub target: Target,
}

/// `healthcheck`.
#[derive(Debug, Clone, Args)]
pub struct HealthcheckArgs {
    /// The path to probe.
    #[arg(long, default_value = "/livez")]
    pub path: String,
    #[command(flatten)]
    pub listen: ListenArgs,
    #[command(flatten)]
    pub operations: OperationsArgs,
}

/// Roles, listed in `--help` and in the error for any other value.
fn role_parser() -> impl clap::builder::TypedValueParser<Value = Role> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(["customer", "admin", "service", "analyst"]).try_map(
        |s| {
            s.parse::<Role>()
                .map_err(|_| format!("'{s}' is not a role"))
        },
    )
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

impl Base {
    pub(crate) fn settings(self) -> Settings {
        let Target { data, store, .. } = self.target;
        Settings::new(data, store, self.limits, self.operations)
    }
}

impl Target {
    /// Opens and migrates the store.
    ///
    /// # Errors
    /// As [`StoreArgs::open`].
    pub async fn open(&self) -> anyhow::Result<eventlog::Database> {
        self.store.open(&self.data).await
    }
}

impl ApiArgs {
    /// The settings of `base` with these groups.
    pub(crate) fn settings(self, base: Base) -> Settings {
        let mut s = base.settings();
        s.listen = Some(self.listen.listen);
        s.auth = Some(self.auth);
        s.provider = Some(self.provider);
        s.edge = Some(self.edge);
        s
    }
}

impl ServeArgs {
    /// Every group, for `serve`.
    pub fn settings(self) -> Settings {
        let mut s = self.api.settings(self.base);
        s.commands = Some(self.commands);
        s.graphql = Some(self.graphql);
        s.kafka = Some(self.kafka);
        s.projectors = Some(self.projectors);
        s.saga = Some(self.saga_settings);
        s
    }
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
