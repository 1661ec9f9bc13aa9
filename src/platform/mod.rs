//! The platform builder: one start-up and one shutdown for whichever roles
//! a process runs (`serve` runs them all; `project`, `relay`, `commands`,
//! `query` and `saga` one each).
//!
//! Start-up: open and migrate the store, open the read models, start the
//! background roles (projectors, relay, saga), then the public HTTP server
//! and the operations port. Shutdown (Ctrl-C or SIGTERM): the server drains
//! in-flight requests, then the background roles stop in reverse order,
//! each after its current batch, then the pools close.
//!
//! # Layout
//! - `mod.rs`: [`Roles`], [`run`], the running roles and their shutdown.
//! - `background`: starting the projectors, the relay and the saga.
//! - `http`: the public router of the roles that serve one, the operations port.
//! - `banner`: what a started process prints.

mod background;
mod banner;
mod http;

use std::sync::Arc;

use readmodel::Wake;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Settings;

/// Which roles one process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    /// The command REST API.
    pub commands: bool,
    /// The GraphQL query API.
    pub query: bool,
    /// The projections (tailing the store, or consuming Kafka when configured).
    pub projectors: bool,
    /// The relay to Kafka: with `serve`, when Kafka is configured; the
    /// relay role needs it.
    pub relay: bool,
    /// The order–payment saga (and the simulated provider when configured).
    pub saga: bool,
}

impl Roles {
    const NONE: Self = Self {
        commands: false,
        query: false,
        projectors: false,
        relay: false,
        saga: false,
    };
    /// `project`.
    pub const PROJECTORS: Self = Self {
        projectors: true,
        ..Self::NONE
    };
    /// `relay`.
    pub const RELAY: Self = Self {
        relay: true,
        ..Self::NONE
    };
    /// `commands`.
    pub const COMMANDS: Self = Self {
        commands: true,
        ..Self::NONE
    };
    /// `query`.
    pub const QUERY: Self = Self {
        query: true,
        ..Self::NONE
    };
    /// `saga`.
    pub const SAGA: Self = Self {
        saga: true,
        ..Self::NONE
    };

    /// `serve`: every role (the saga when asked).
    pub fn all(saga: bool) -> Self {
        Self {
            commands: true,
            query: true,
            projectors: true,
            relay: true,
            saga,
        }
    }

    /// Whether freed memory goes back to the system at once: in processes
    /// that serve no requests (relay, projectors, saga). Their allocation
    /// rate is low, and with mimalloc's purge delay a Kafka-fed projector
    /// kept freed memory resident (`shopstream-bench --only distributed`:
    /// peaks of 45–84 MiB before, 43–55 MiB purging at once, the same
    /// CPU). The request-serving roles keep the delay, which their
    /// allocation churn pays for.
    pub fn purge_at_once(&self) -> bool {
        !self.commands && !self.query
    }
}

/// What every role of one process shares.
pub struct Platform {
    pub db: eventlog::Database,
    pub read_db: readmodel::ReadDb,
    pub kafka: Option<relay::kafka::KafkaSettings>,
    /// New events may be in the store (appends here, or `NOTIFY`).
    pub wake: Wake,
    /// A projection committed (consistency-token waiters).
    pub commits: Wake,
    /// The command core, when a role of this process issues commands.
    pub commands: Option<Arc<commands::Commands>>,
    /// The token verifier of this process's APIs (one identity provider
    /// key cache, one identity cache).
    pub auth: Option<auth::Authenticator>,
}

impl Platform {
    /// The token verifier.
    ///
    /// # Errors
    /// For a process that serves no API.
    pub fn authenticator(&self) -> anyhow::Result<auth::Authenticator> {
        self.auth
            .clone()
            .ok_or_else(|| anyhow::anyhow!("no token settings"))
    }
}

/// The verifier of `settings`: the platform's secret and, when configured,
/// the identity provider (whose keys are fetched in the background from
/// now on), with provider customers resolved to their users in `db`.
fn authenticator(
    settings: &Settings,
    db: &eventlog::Database,
) -> anyhow::Result<(auth::Authenticator, Option<JoinHandle<()>>)> {
    let auth = settings.authenticator()?;
    let max_lifetime = auth.max_lifetime();
    let provider = settings.provider.as_ref().map(|p| p.provider(max_lifetime));
    let Some(provider) = provider.transpose()?.flatten() else {
        return Ok((auth, None));
    };
    let refresh = provider.spawn_refresh();
    let identities = Arc::new(commands::IdentityDirectory::new(db));
    Ok((
        auth.with_provider(provider).with_identities(identities),
        Some(refresh),
    ))
}

/// A background role: stopped by its signal, done when its tasks end.
struct Background {
    stop: Option<watch::Sender<bool>>,
    join: Vec<JoinHandle<()>>,
    abort: Vec<JoinHandle<()>>,
}

impl Background {
    async fn stop(self) {
        if let Some(stop) = self.stop {
            let _ = stop.send(true);
        }
        for task in self.join {
            let _ = task.await;
        }
        for task in self.abort {
            task.abort();
        }
    }
}

/// Runs `roles` with `settings` until Ctrl-C or SIGTERM.
///
/// # Errors
/// When the store cannot be opened or migrated, a role's settings are
/// wrong, or an address is taken.
pub async fn run(settings: &Settings, roles: Roles) -> anyhow::Result<()> {
    let kafka = settings.kafka()?;
    anyhow::ensure!(
        roles != Roles::RELAY || kafka.is_some(),
        "the relay needs --kafka-brokers (or SHOPSTREAM_KAFKA_BROKERS)"
    );
    if roles.purge_at_once() {
        crate::purge_freed_memory_at_once();
    }
    let db = settings.store.open(&settings.data).await?;
    // Refuse to start on events this release cannot read (an older binary
    // after a newer one wrote): naming each type@version, its count and
    // first position.
    eventlog::census::check_readable(&db).await?;
    // The roles that seal or open personal data hold the data keys; the
    // GraphQL service and the relay never need the master key file.
    let keys = match roles.commands || roles.saga || roles.projectors {
        true => Some(settings.store.keyring(&settings.data, &db).await?),
        false => None,
    };
    let mut read_db = crate::projections::open(&settings.data, &settings.store).await?;
    if let Some(keys) = &keys {
        read_db = read_db.with_keys(keys.clone());
    }
    // The API and the saga share repositories, so each sees the other's
    // appends in its aggregate cache.
    let commands = match roles.commands || roles.saga {
        true => {
            let (snapshot_every, cache) = settings.repositories()?;
            let keys = keys
                .clone()
                .ok_or_else(|| anyhow::anyhow!("no data keys"))?;
            Some(Arc::new(commands::Commands::new(
                &db,
                snapshot_every,
                cache,
                keys,
            )))
        }
        false => None,
    };
    let (auth, refresh) = match roles.commands || roles.query {
        true => {
            let (auth, refresh) = authenticator(settings, &db)?;
            (Some(auth), refresh)
        }
        false => (None, None),
    };
    let platform = Platform {
        db,
        read_db,
        kafka,
        wake: Wake::default(),
        commits: Wake::default(),
        commands,
        auth,
    };
    let mut background = background::start(&platform, settings, roles)?;
    let public = http::public(&platform, settings, roles, background.relay.take())?;
    let ops = http::operations_server(&platform, settings, public.readyz.clone()).await?;
    match public.server {
        Some(server) => server.serve(&platform, settings, roles).await?,
        None => shutdown_signal().await,
    }
    if let Some(ops) = ops {
        ops.abort();
    }
    if let Some(refresh) = refresh {
        refresh.abort();
    }
    for role in background.roles.into_iter().rev() {
        role.stop().await;
    }
    platform.read_db.close().await;
    platform.db.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Ctrl-C or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: draining in-flight requests");
}

#[cfg(test)]
mod tests {
    use super::Roles;

    #[test]
    fn only_processes_that_serve_no_requests_purge_freed_memory_at_once() {
        assert!(Roles::PROJECTORS.purge_at_once());
        assert!(Roles::RELAY.purge_at_once());
        assert!(Roles::SAGA.purge_at_once());
        assert!(!Roles::COMMANDS.purge_at_once());
        assert!(!Roles::QUERY.purge_at_once());
        assert!(!Roles::all(true).purge_at_once());
    }
}
