//! shopstream's command API: the REST edge (axum) over the command core
//! (crate `commands`): requests parsed into domain values, commands run by
//! the core, its `CommandError`s mapped to problem documents.
//!
//! [`build`] wires an [`App`] from a database and a [`Config`];
//! [`App::run`] serves it on a listener until a shutdown signal, so tests
//! bind port 0 and stop the app at will.
//!
//! # Layout
//! - `auth`: HS256 JWT signing and verification, [`Principal`](auth::Principal), roles.
//! - `error`: [`ApiError`](error::ApiError) → RFC 9457 problem documents, in one place.
//! - `extract`: strict JSON bodies, `If-Match`, the command context of a request.
//! - `idempotency`: the `Idempotency-Key` middleware.
//! - `request_id`: request ids, the request span, problem documents for every error.
//! - `routes`: one handler file per resource, plus health and event streams.
//! - `server`: the listener with connection limits and timeouts, body bounds, CORS.
//! - `rate`: per-caller rate limits of the commands (429).
//! - `openapi`: the generated OpenAPI 3.1 document.

pub mod auth;
pub mod error;
pub mod extract;
pub mod idempotency;
pub mod openapi;
pub mod rate;
pub mod request_id;
pub mod routes;
pub mod server;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, FromRef};
use axum::routing::{get, patch, post, put};
use axum::{middleware, Router};
use eventlog::{Database, EventLog, IdempotencyStore};
use tokio::net::TcpListener;

use crate::auth::{Authenticator, Secret};
use crate::idempotency::IdempotencyState;
use crate::routes::{health, orders, payments, products, streams, users};
pub use commands::Commands;

/// Called after every command that appended events (wakes in-process tailers).
pub type AppendHook = Arc<dyn Fn() + Send + Sync>;

/// Aggregates whose last state each repository keeps by default.
pub const DEFAULT_AGGREGATE_CACHE: usize = 10_000;

/// Settings of the command API.
#[derive(Clone)]
pub struct Config {
    /// HS256 secret for bearer tokens.
    pub jwt_secret: Secret,
    /// The users' data keys (personal fields are sealed with them).
    pub keys: eventlog::Keyring,
    /// Snapshot aggregates every N events (0: never).
    pub snapshot_every: usize,
    /// How long idempotency keys are kept (at least 24 h).
    pub idempotency_retention: Duration,
    /// Called after each append, e.g. to wake the projectors of this process.
    pub on_append: Option<AppendHook>,
    /// Aggregates whose last state each repository keeps (0: no cache).
    pub aggregate_cache: usize,
    /// The repositories to use, when the process shares them with others
    /// (the saga); built from the settings above when `None`.
    pub commands: Option<Arc<Commands>>,
    /// Connection and request limits of the listener.
    pub limits: server::Limits,
    /// Tokens whose `exp` lies further ahead are refused.
    pub max_token_lifetime: Duration,
    /// Per-caller rate limits.
    pub rate: rate::RateLimits,
    /// Whether the store answers, kept current in the background.
    pub health: Option<eventlog::Health>,
    /// The token verifier, when the process shares one (an identity
    /// provider's keys, linked identities); else built from `jwt_secret`.
    pub authenticator: Option<Authenticator>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("jwt_secret", &self.jwt_secret)
            .field("snapshot_every", &self.snapshot_every)
            .field("idempotency_retention", &self.idempotency_retention)
            .field("aggregate_cache", &self.aggregate_cache)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Defaults around a secret and the data keys.
    pub fn new(jwt_secret: Secret, keys: eventlog::Keyring) -> Self {
        Self {
            jwt_secret,
            keys,
            snapshot_every: 50,
            idempotency_retention: Duration::from_secs(48 * 3600),
            on_append: None,
            aggregate_cache: DEFAULT_AGGREGATE_CACHE,
            commands: None,
            limits: server::Limits::default(),
            max_token_lifetime: ::auth::DEFAULT_MAX_TOKEN_LIFETIME,
            rate: rate::RateLimits::default(),
            health: None,
            authenticator: None,
        }
    }
}

/// The state handlers draw from, split by [`FromRef`] so each handler takes
/// only what it needs.
#[derive(Clone)]
pub struct AppState {
    commands: Arc<Commands>,
    auth: Arc<Authenticator>,
    db: Database,
}

impl FromRef<AppState> for Arc<Commands> {
    fn from_ref(s: &AppState) -> Self {
        s.commands.clone()
    }
}

impl FromRef<AppState> for Arc<Authenticator> {
    fn from_ref(s: &AppState) -> Self {
        s.auth.clone()
    }
}

impl FromRef<AppState> for Database {
    fn from_ref(s: &AppState) -> Self {
        s.db.clone()
    }
}

/// A built, not yet serving, command API.
pub struct App {
    router: Router,
    idempotency: IdempotencyStore,
    retention: Duration,
    limits: server::Limits,
    limiters: Vec<::auth::rate::Limiter>,
}

/// Builds the API over an already migrated `db`.
pub fn build(db: Database, config: &Config) -> App {
    build_with(db, config, Router::new())
}

/// Builds the API with `extra` routes (already given their state) served
/// beside it, under the same request-id, error and panic layers.
pub fn build_with(db: Database, config: &Config, extra: Router) -> App {
    let auth = Arc::new(config.authenticator.clone().unwrap_or_else(|| {
        Authenticator::new(config.jwt_secret.clone()).with_max_lifetime(config.max_token_lifetime)
    }));
    let state = AppState {
        commands: config.commands.clone().unwrap_or_else(|| {
            Arc::new(Commands::new(
                &db,
                config.snapshot_every,
                config.aggregate_cache,
                config.keys.clone(),
            ))
        }),
        auth: auth.clone(),
        db: db.clone(),
    };
    let provider = auth.provider().cloned();
    let idempotency = IdempotencyStore::new(db.clone());
    let db_for_health = db.clone();
    let rate_state = rate::RateState {
        limits: Arc::new(config.rate.clone()),
        auth: auth.clone(),
    };
    let idem_state = IdempotencyState {
        store: idempotency.clone(),
        log: EventLog::new(db),
        auth,
    };
    let health = health::Readiness {
        store: config
            .health
            .clone()
            .unwrap_or_else(|| eventlog::Health::watch(db_for_health)),
        provider,
    };
    App {
        router: router(state, idem_state, rate_state, extra, config, health),
        idempotency,
        retention: config.idempotency_retention,
        limits: config.limits.clone(),
        limiters: vec![config.rate.signup.clone(), config.rate.commands.clone()],
    }
}

fn router(
    state: AppState,
    idem_state: IdempotencyState,
    rate_state: rate::RateState,
    extra: Router,
    config: &Config,
    readiness: health::Readiness,
) -> Router {
    let on_append = config.on_append.clone();
    let v1 = Router::new()
        .route("/users", post(users::register))
        .route("/users/{id}", patch(users::update))
        .route("/users/{id}/deactivate", post(users::deactivate))
        .route("/users/{id}/forget", post(users::forget))
        .route("/users/{id}/reactivate", post(users::reactivate))
        .route("/users/{id}/events", get(streams::user_events))
        .route("/products", post(products::create))
        .route("/products/{sku}", patch(products::update))
        .route("/products/{sku}/retire", post(products::retire))
        .route("/products/{sku}/events", get(streams::product_events))
        .route("/orders", post(orders::create))
        .route("/orders/{id}/items", post(orders::add_item))
        .route(
            "/orders/{id}/items/{sku}",
            put(orders::change_quantity).delete(orders::remove_item),
        )
        .route("/orders/{id}/place", post(orders::place))
        .route("/orders/{id}/cancel", post(orders::cancel))
        .route("/orders/{id}/mark-paid", post(orders::mark_paid))
        .route("/orders/{id}/ship", post(orders::ship))
        .route("/orders/{id}/deliver", post(orders::deliver))
        .route("/orders/{id}/events", get(streams::order_events))
        .route("/payments", post(payments::initiate))
        .route("/payments/{id}/authorize", post(payments::authorize))
        .route("/payments/{id}/capture", post(payments::capture))
        .route("/payments/{id}/fail", post(payments::fail))
        .route("/payments/{id}/refund", post(payments::refund))
        .route("/payments/{id}/events", get(streams::payment_events))
        .layer(middleware::from_fn_with_state(
            idem_state,
            idempotency::idempotency,
        ))
        .layer(middleware::from_fn_with_state(on_append, after_append))
        // Outermost: a refused request reaches neither the idempotency
        // store nor the command path.
        .layer(middleware::from_fn_with_state(rate_state, rate::rate_limit));
    let api = Router::new()
        .nest("/v1", v1)
        .route("/livez", get(health::livez))
        .route("/openapi.json", get(openapi_json))
        .fallback(request_id::not_found)
        .with_state(state)
        .merge(web::docs())
        .route("/readyz", get(health::readyz).with_state(readiness))
        .merge(extra)
        .layer(DefaultBodyLimit::max(extract::MAX_BODY_BYTES));
    server::edge(api, &config.limits)
}

/// Runs the append hook after every successful command.
async fn after_append(
    axum::extract::State(hook): axum::extract::State<Option<AppendHook>>,
    req: axum::extract::Request,
    next: middleware::Next,
) -> axum::response::Response {
    let mutating = req.method() != axum::http::Method::GET;
    let response = next.run(req).await;
    if let Some(hook) = hook.filter(|_| mutating && response.status().is_success()) {
        hook();
    }
    response
}

async fn openapi_json() -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        openapi::document(),
    )
}

impl App {
    /// The router, for embedding in a larger service.
    pub fn into_router(self) -> Router {
        self.router
    }

    /// Serves until `shutdown` resolves, then drains in-flight requests.
    ///
    /// # Errors
    /// When the listener fails.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let purge = tokio::spawn(purge_idempotency_keys(self.idempotency, self.retention));
        let housekeeping = ::auth::rate::spawn_housekeeping(self.limiters);
        let result = server::serve(listener, self.router, self.limits, shutdown).await;
        purge.abort();
        housekeeping.abort();
        result
    }
}

/// Keeps idempotency keys for `retention`, deleting older ones hourly.
pub async fn purge_idempotency_keys(store: IdempotencyStore, retention: Duration) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tick.tick().await;
        match store.purge_older_than(retention).await {
            Ok(n) if n > 0 => tracing::info!(purged = n, "expired idempotency keys deleted"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not purge idempotency keys"),
        }
    }
}
