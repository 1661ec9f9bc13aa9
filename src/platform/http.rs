//! The HTTP side of a process: the public router of the roles that serve
//! one (REST, GraphQL, the relay's health), and the operations port.

use anyhow::Context;
use axum::routing::MethodRouter;
use axum::Router;
use tokio::net::TcpListener;

use super::{banner, shutdown_signal, Platform, Roles};
use crate::config::Settings;
use crate::projections;

/// What the public port serves.
pub(super) struct Public {
    pub server: Option<Server>,
    /// A role's own readiness (the relay's), for the operations port too.
    pub readyz: Option<MethodRouter>,
}

/// The public server: the command API (with whatever else this process
/// serves beside it), or a plain router.
pub(super) enum Server {
    Api(Box<command_api::App>),
    Router(Router),
}

/// The public router of `roles`.
///
/// # Errors
/// Settings a role needs but lacks, or an unreadable secret.
pub(super) fn public(
    p: &Platform,
    settings: &Settings,
    roles: Roles,
    relay: Option<relay::RelayStatus>,
) -> anyhow::Result<Public> {
    let readyz = (roles == Roles::RELAY)
        .then(|| relay.clone())
        .flatten()
        .map(relay_readyz);
    let metrics = public_metrics(p, settings);
    let graphql = roles
        .query
        .then(|| {
            anyhow::Ok(query_api::router(
                &p.read_db,
                &p.db,
                p.authenticator()?,
                p.commits.clone(),
                settings.query_config()?,
            ))
        })
        .transpose()?;
    let server = if roles.commands {
        let commands = p
            .commands
            .clone()
            .ok_or_else(|| anyhow::anyhow!("the command API needs the command core"))?;
        let mut config = settings.command_config(commands.keys.clone())?;
        config.commands = Some(commands);
        let appended = p.wake.clone();
        config.on_append = Some(std::sync::Arc::new(move || appended.notify()));
        config.authenticator = Some(p.authenticator()?);
        let admin = crate::admin::admin_router(p.authenticator()?, &p.db, &p.read_db, relay);
        let extra = admin.merge(graphql.unwrap_or_default()).merge(metrics);
        Some(Server::Api(Box::new(command_api::build_with(
            p.db.clone(),
            &config,
            extra,
        ))))
    } else if roles.query || roles.relay {
        let health = operations_without_metrics(
            &p.db,
            p.auth.as_ref().and_then(|a| a.provider()),
            readyz.clone(),
        );
        Some(Server::Router(
            graphql.unwrap_or_default().merge(health).merge(metrics),
        ))
    } else {
        None
    };
    Ok(Public { server, readyz })
}

impl Server {
    /// Binds `--listen`, prints where everything is, and serves until
    /// Ctrl-C or SIGTERM, draining in-flight requests.
    ///
    /// # Errors
    /// The address is taken, or the server fails.
    pub async fn serve(
        self,
        p: &Platform,
        settings: &Settings,
        roles: Roles,
    ) -> anyhow::Result<()> {
        let address = settings.listen.context("this role serves no HTTP")?;
        let listener = TcpListener::bind(address)
            .await
            .with_context(|| format!("cannot listen on {address}"))?;
        banner::print(settings, roles, p.kafka.as_ref(), listener.local_addr()?);
        match self {
            Self::Api(app) => app.run(listener, shutdown_signal()).await,
            Self::Router(router) => {
                let limits = settings.http_limits();
                let app = command_api::server::edge(router, &limits);
                command_api::server::serve(listener, app, limits, shutdown_signal()).await
            }
        }
        .context("server failed")
    }
}

/// `/livez` and `/readyz` (the store answers, unless a role brings its own).
fn operations_without_metrics(
    db: &eventlog::Database,
    provider: Option<&std::sync::Arc<auth::Provider>>,
    readyz: Option<MethodRouter>,
) -> Router {
    let readyz = readyz.unwrap_or_else(|| {
        axum::routing::get(command_api::routes::health::readyz).with_state(
            command_api::routes::health::Readiness {
                store: eventlog::Health::watch(db.clone()),
                provider: provider.cloned(),
            },
        )
    });
    Router::new()
        .route(
            "/livez",
            axum::routing::get(command_api::routes::health::livez),
        )
        .route("/readyz", readyz)
}

/// `/metrics` for the public port: there unless an operations port is set.
fn public_metrics(p: &Platform, settings: &Settings) -> Router {
    if settings.operations.operations_listen.is_some() {
        Router::new()
    } else {
        projections::metrics_router(&p.db, &p.read_db)
    }
}

/// Serves `/livez`, `/readyz` and `/metrics` on `--operations-listen`, when
/// set (every role; the only HTTP of `project` and `saga`).
///
/// # Errors
/// The address is taken.
pub(super) async fn operations_server(
    p: &Platform,
    settings: &Settings,
    readyz: Option<MethodRouter>,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    let Some(addr) = settings.operations.operations_listen else {
        return Ok(None);
    };
    let limits = settings.http_limits();
    let routes =
        operations_without_metrics(&p.db, p.auth.as_ref().and_then(|a| a.provider()), readyz)
            .merge(projections::metrics_router(&p.db, &p.read_db));
    let app = command_api::server::edge(routes, &limits);
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    tracing::info!(address = %listener.local_addr()?, "operations port: /metrics /livez /readyz");
    Ok(Some(tokio::spawn(async move {
        let forever = std::future::pending::<()>();
        if let Err(e) = command_api::server::serve(listener, app, limits, forever).await {
            tracing::error!(error = %e, "operations server failed");
        }
    })))
}

/// `/readyz` of a relay: ready while it is standing by, or active with the
/// broker answering; 503 with the reason otherwise.
fn relay_readyz(status: relay::RelayStatus) -> MethodRouter {
    axum::routing::get(move || {
        let state = status.get();
        async move {
            use axum::response::IntoResponse;
            let ready =
                state.role == "standby" || (state.role == "active" && state.kafka_reachable);
            if ready {
                return axum::Json(serde_json::json!({ "status": "ready", "relay": state }))
                    .into_response();
            }
            let detail = match (&state.role[..], &state.last_error) {
                ("active", Some(e)) => format!(
                    "kafka is unreachable: {e}; {} records waiting",
                    state.in_flight
                ),
                ("active", None) => {
                    format!("kafka is unreachable; {} records waiting", state.in_flight)
                }
                (role, _) => format!("the relay is {role}"),
            };
            command_api::error::problem(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "kafka_unavailable",
                &detail,
            )
            .into_response()
        }
    })
}
