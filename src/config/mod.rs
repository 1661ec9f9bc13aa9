//! Settings, grouped by what they configure; each flag has its
//! `SHOPSTREAM_*` environment twin (flag wins over environment, both over
//! the default). Each subcommand takes only the groups it uses (see
//! `cli`), and gathers them into one [`Settings`] for the platform.
//!
//! # Layout
//! - `store`: [`DataDir`], [`StoreArgs`] (the event store), [`AuthArgs`] (the token secret),
//!   [`ProviderArgs`] (an identity provider's tokens, for the roles with an API).
//! - `http`: [`ListenArgs`], [`OperationsArgs`], [`HttpLimitsArgs`], [`EdgeArgs`] (CORS, proxies).
//! - `service`: [`LogArgs`], [`CommandArgs`], [`RepositoryArgs`], [`GraphqlArgs`], [`SagaArgs`].
//! - `kafka`: [`KafkaArgs`], as librdkafka properties.

mod http;
mod kafka;
mod service;
mod store;

use std::net::SocketAddr;

pub use http::{EdgeArgs, HttpLimitsArgs, ListenArgs, OperationsArgs};
pub use kafka::KafkaArgs;
pub use service::{CommandArgs, GraphqlArgs, LogArgs, ProjectorArgs, RepositoryArgs, SagaArgs};
pub use store::{AuthArgs, DataDir, ProviderArgs, StoreArgs};

/// What one process runs with: every group its role takes; the groups of
/// roles it does not run are absent.
#[derive(Debug, Clone)]
pub struct Settings {
    pub data: DataDir,
    pub store: StoreArgs,
    pub limits: HttpLimitsArgs,
    pub operations: OperationsArgs,
    /// The public address (roles with an API).
    pub listen: Option<SocketAddr>,
    pub auth: Option<AuthArgs>,
    /// The identity provider's settings (roles with an API).
    pub provider: Option<ProviderArgs>,
    pub edge: Option<EdgeArgs>,
    pub kafka: Option<KafkaArgs>,
    pub repositories: Option<RepositoryArgs>,
    pub commands: Option<CommandArgs>,
    pub graphql: Option<GraphqlArgs>,
    /// The store tailers' pace (roles running projectors).
    pub projectors: Option<ProjectorArgs>,
    pub saga: Option<SagaArgs>,
}

impl Settings {
    /// Settings with the groups every serving role has.
    pub fn new(
        data: DataDir,
        store: StoreArgs,
        limits: HttpLimitsArgs,
        operations: OperationsArgs,
    ) -> Self {
        Self {
            data,
            store,
            limits,
            operations,
            listen: None,
            auth: None,
            provider: None,
            edge: None,
            kafka: None,
            repositories: None,
            commands: None,
            graphql: None,
            projectors: None,
            saga: None,
        }
    }

    /// The event store URL: the configured one or the embedded SQLite file.
    pub fn database_url(&self) -> String {
        self.store.url(&self.data)
    }

    /// The browser origins allowed (none without `--cors-origin`).
    ///
    /// # Errors
    /// An entry that is not an origin.
    pub fn origins(&self) -> anyhow::Result<auth::Origins> {
        self.edge
            .as_ref()
            .map_or_else(|| Ok(auth::Origins::default()), EdgeArgs::origins)
    }

    fn trusted_proxies(&self) -> &[std::net::IpAddr] {
        self.edge.as_ref().map_or(&[], |e| &e.trusted_proxies)
    }

    /// The limits of every HTTP listener.
    pub fn http_limits(&self) -> command_api::server::Limits {
        self.limits.limits(self.origins().unwrap_or_default())
    }

    /// The token verifier.
    ///
    /// # Errors
    /// Without the auth group, or as [`AuthArgs::secret`].
    pub fn authenticator(&self) -> anyhow::Result<auth::Authenticator> {
        let auth = self
            .auth
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("no token settings"))?;
        auth.authenticator(&self.data)
    }

    /// The repositories' settings: snapshot interval and cache size.
    ///
    /// # Errors
    /// For a role without the repositories group (it issues no commands).
    pub fn repositories(&self) -> anyhow::Result<(usize, usize)> {
        let r = self
            .repositories
            .as_ref()
            .or(self.commands.as_ref().map(|c| &c.repositories))
            .ok_or_else(|| anyhow::anyhow!("no repository settings"))?;
        Ok((r.snapshot_every, r.aggregate_cache))
    }

    /// The command API's settings, sealing with `keys`.
    ///
    /// # Errors
    /// Without the auth and command groups, or as [`AuthArgs::secret`].
    pub fn command_config(&self, keys: eventlog::Keyring) -> anyhow::Result<command_api::Config> {
        let auth = self
            .auth
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("no token settings"))?;
        let commands = self
            .commands
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("no command settings"))?;
        let mut config = command_api::Config::new(auth.secret(&self.data)?, keys);
        (config.snapshot_every, config.aggregate_cache) = self.repositories()?;
        config.limits = self.http_limits();
        config.max_token_lifetime = auth.max_token_lifetime;
        config.rate = commands.rate(self.trusted_proxies());
        Ok(config)
    }

    /// The GraphQL service's settings.
    ///
    /// # Errors
    /// Without the GraphQL group.
    pub fn query_config(&self) -> anyhow::Result<query_api::Config> {
        let graphql = self
            .graphql
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("no GraphQL settings"))?;
        let mut config = graphql.config(self.origins()?, self.trusted_proxies());
        if let Some(provider) = &self.provider {
            config.console = provider.console_sign_in().map_err(anyhow::Error::msg)?;
        }
        Ok(config)
    }

    /// The Kafka settings, when this role has Kafka configured.
    ///
    /// # Errors
    /// As [`KafkaArgs::settings`].
    pub fn kafka(&self) -> anyhow::Result<Option<relay::kafka::KafkaSettings>> {
        match &self.kafka {
            Some(k) => k.settings(&self.database_url()),
            None => Ok(None),
        }
    }

    /// Whether GraphiQL and introspection are off (and the simulator refused).
    pub fn production(&self) -> bool {
        self.graphql.as_ref().is_some_and(|g| g.production)
    }
}
