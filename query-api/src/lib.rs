//! shopstream's query API: a GraphQL schema (async-graphql) over the read
//! models — the customer view, the order view and analytics. It never reads
//! events or folds them (and does not link the projection engine); it reads
//! the views the projectors maintain, as the read models' own types (crate
//! `readmodel`), so a field renamed in a fold cannot read as 0 here.
//!
//! # Layout
//! - `schema`: the query root (`schema/mod.rs`), object types (`types.rs`), analytics (`analytics.rs`).
//! - `store`: [`store::Store`], the read models' own queries, counted per request.
//! - `consistency`: `X-Consistency-Token` (read your writes), waking on projection commits.
//! - `cache`: analytics answers kept with the position they reflect (never older than a request is owed).
//! - `rows`: hot customer and order rows kept until the next projection commit signal.
//! - `error`: GraphQL errors with `extensions.code`.
//! - `http`: the `/graphql` handlers: media types, status codes, the WebSocket, GraphiQL.
//! - `limits`: input bounds checked before parsing; subscription caps.
//!
//! [`router`] mounts `POST /graphql` (and GraphiQL on `GET /graphql` when
//! introspection is on).

pub mod cache;
pub mod consistency;
mod documents;
pub mod error;
mod http;
pub mod limits;
pub mod rows;
pub mod schema;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use async_graphql::{EmptyMutation, Schema};
use auth::Authenticator;
use axum::routing::{get, post};
use axum::Router;
use readmodel::Wake;

use crate::consistency::Consistency;
use crate::http::{graphiql, graphql, graphql_ws};
use crate::limits::{InputLimits, SubscriptionLimits};
use crate::schema::subscription::SubscriptionRoot;
use crate::schema::{ApiSchema, Query, StatusSource};
use crate::store::Store;

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Settings of the query API.
#[derive(Debug, Clone)]
pub struct Config {
    /// Introspection and GraphiQL (on in development, off in production).
    pub introspection: bool,
    /// How long a query with a consistency token waits at most.
    pub consistency_timeout: Duration,
    /// How long a query may run.
    pub query_timeout: Duration,
    /// Deepest selection nesting accepted.
    pub max_depth: usize,
    /// Largest query complexity accepted (each field costs 1).
    pub max_complexity: usize,
    /// Bounds on the query text and variables, checked before parsing.
    pub input: InputLimits,
    /// Most live subscriptions per WebSocket connection.
    pub subscriptions_per_connection: usize,
    /// Most live subscriptions in the process.
    pub subscriptions_total: usize,
    /// Browser origins whose pages may open the subscription WebSocket
    /// (besides the API's own origin).
    pub origins: auth::Origins,
    /// Complexity points per caller and minute (0: off).
    pub rate: auth::rate::Limiter,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// The identity provider the console signs in with (authorization code
    /// with PKCE), if any.
    pub console: Option<web::SignIn>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            introspection: true,
            consistency_timeout: Duration::from_secs(2),
            query_timeout: Duration::from_secs(10),
            // The standard introspection query (GraphiQL, code generators)
            // nests 13 levels; the deepest data query of this schema, 9.
            max_depth: 15,
            max_complexity: 500,
            input: InputLimits::default(),
            subscriptions_per_connection: limits::DEFAULT_SUBSCRIPTIONS_PER_CONNECTION,
            subscriptions_total: limits::DEFAULT_SUBSCRIPTIONS_TOTAL,
            origins: auth::Origins::default(),
            // Off unless configured (the binary's flag turns it on).
            rate: auth::rate::Limiter::new("graphql", 0),
            trusted_proxies: Vec::new(),
            console: None,
        }
    }
}

/// Builds the schema with its limits; `commits` wakes subscriptions.
pub fn schema(store: Store, status: StatusSource, commits: Wake, config: &Config) -> ApiSchema {
    let mut builder = Schema::build(Query, EmptyMutation, SubscriptionRoot)
        .data(store)
        .data(status)
        .data(rows::Rows::new(commits.clone()))
        .data(commits)
        .data(cache::Answers::default())
        .limit_depth(config.max_depth)
        .limit_complexity(config.max_complexity)
        .limit_directives(20)
        // Before the parser: it recurses once per nesting level.
        .extension(config.input)
        // A query text seen before is not parsed again (validated again).
        .extension(documents::Documents::default())
        .extension(SubscriptionLimits::new(
            config.subscriptions_per_connection,
            config.subscriptions_total,
        ))
        .extension(limits::RateLimit(config.rate.clone()));
    if !config.introspection {
        builder = builder.disable_introspection();
    }
    builder.finish()
}

pub(crate) struct QueryState {
    schema: ApiSchema,
    auth: Authenticator,
    consistency: Consistency,
    config: Config,
}

/// The `/graphql` routes over the read models in `read` (the pool the
/// projectors write), authenticating with `auth`, waking on `commits`.
pub fn router(
    read: &readmodel::ReadDb,
    store_db: &eventlog::Database,
    auth: Authenticator,
    commits: Wake,
    config: Config,
) -> Router {
    let store = Store::new(read.pool().clone());
    let console = config.console.clone();
    let status = StatusSource {
        log: eventlog::EventLog::new(store_db.clone()),
        db: read.clone(),
    };
    let state = Arc::new(QueryState {
        schema: schema(store, status, commits.clone(), &config),
        auth,
        consistency: Consistency::new(
            read.pool().clone(),
            read.is_postgres(),
            commits,
            config.consistency_timeout,
        ),
        config,
    });
    Router::new()
        .route("/graphql", post(graphql).get(graphiql))
        .route("/graphql/ws", get(graphql_ws))
        .with_state(state)
        .merge(web::graphiql_assets())
        .merge(web::console(console))
        // The GraphQL extractor reads the body itself: limit it here.
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            MAX_BODY_BYTES,
        ))
}

/// The SDL of the schema (checked in as `query-api/schema.graphql`).
pub fn sdl() -> String {
    Schema::build(Query, EmptyMutation, SubscriptionRoot)
        .finish()
        .sdl()
}
