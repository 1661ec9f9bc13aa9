//! The command path: load the aggregate, authorize against its state, check
//! `If-Match`, let the domain decide, append with optimistic concurrency.
//! Handlers only translate HTTP to a call here.

use cqrs_es::Aggregate;
use domain::{Order, Payment, Product, User};
use std::future::Future;

use eventlog::{Database, EmailRegistry, EventLog, Guard, Repository, Source};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Principal;
use crate::error::ApiError;
use crate::extract::CommandContext;

/// What a successful command returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// The aggregate's version after the command (its `ETag`).
    pub version: u64,
    /// Global position of the last event appended (the consistency token).
    pub position: i64,
}

/// The body of every successful command response.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Accepted {
    /// The aggregate's id (a UUID, or the SKU for products).
    pub id: String,
    /// The aggregate's version after the command; send it back in `If-Match`.
    pub version: u64,
    /// Global position of the last event appended: the consistency token
    /// that reads accept.
    pub position: i64,
}

/// Whether a command creates its aggregate or acts on an existing one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Create,
    Update,
}

/// The repositories of the four aggregates and the side tables.
pub struct Commands {
    pub users: Repository<User>,
    pub products: Repository<Product>,
    pub orders: Repository<Order>,
    pub payments: Repository<Payment>,
    pub emails: EmailRegistry,
    pub log: EventLog,
}

impl Commands {
    /// Repositories over `db`, snapshotting every `snapshot_every` events
    /// (0: never), each caching up to `cache` aggregates (0: no cache).
    pub fn new(db: &Database, snapshot_every: usize, cache: usize) -> Self {
        let signal = eventlog::AppendSignal::for_database(db);
        Self {
            users: Repository::sharing(db, snapshot_every, cache, signal.clone()),
            products: Repository::sharing(db, snapshot_every, cache, signal.clone()),
            orders: Repository::sharing(db, snapshot_every, cache, signal.clone()),
            payments: Repository::sharing(db, snapshot_every, cache, signal),
            emails: EmailRegistry::new(db.clone()),
            log: EventLog::new(db.clone()),
        }
    }
}

/// Runs a command's attempts: first on the states this process has
/// cached ([`Source::Cache`]); when that attempt fails in a way a stale
/// state could explain (a broken rule, a missing item, a lost race, a
/// stale fact), once more on what the store holds ([`Source::Store`]), and
/// that answer stands. A cached attempt that succeeds was proven current by
/// its append (see [`eventlog::Repository::read`]). Counts the command's
/// outcome for `aggregate`.
///
/// # Errors
/// The last attempt's error.
pub async fn with_retry<T, F, Fut>(aggregate: &'static str, attempt: F) -> Result<T, ApiError>
where
    F: Fn(Source) -> Fut,
    Fut: Future<Output = Result<T, ApiError>>,
{
    let result = match attempt(Source::Cache).await {
        Err(e) if e.may_be_stale() => {
            eventlog::metrics::count(
                "command_store_retries_total",
                "Commands decided again on the store's state after an attempt on cached state failed.",
                &[("aggregate", aggregate)],
                1.0,
            );
            attempt(Source::Store).await
        }
        r => r,
    };
    count_outcome(aggregate, &result);
    result
}

/// Counts a command's outcome in `commands_total`.
pub fn count_outcome<T>(aggregate: &'static str, result: &Result<T, ApiError>) {
    let outcome = match result {
        Ok(_) => "accepted",
        Err(ApiError::Rule(_)) => "rejected",
        Err(ApiError::ConcurrentModification | ApiError::PreconditionFailed { .. }) => "conflict",
        Err(ApiError::NotFound(_)) => "not_found",
        Err(ApiError::Internal(_) | ApiError::Unavailable(_)) => "error",
        Err(_) => "invalid",
    };
    eventlog::metrics::count(
        "commands_total",
        "Commands by aggregate type and outcome.",
        &[("aggregate", aggregate), ("outcome", outcome)],
        1.0,
    );
}

/// Records how long an append took in `event_append_duration_seconds`.
pub fn observe_append(aggregate: &'static str, started: std::time::Instant) {
    eventlog::metrics::observe_seconds(
        "event_append_duration_seconds",
        "Latency of appending a command's events.",
        &[("aggregate", aggregate)],
        started.elapsed().as_secs_f64(),
    );
}

/// Runs one command against aggregate `id`.
///
/// `visible` says whether the caller may see the aggregate at all (false →
/// 404, so nobody learns that another customer's order exists); `command`
/// builds the domain command from the current state. Both may run twice
/// (see [`with_retry`]).
///
/// # Errors
/// 404 for unknown or invisible aggregates, 412 for a stale `If-Match`,
/// 409/422 for broken rules, 409 (or 412 with `If-Match`) for a lost race.
pub async fn execute<A, V, C>(
    repo: &Repository<A>,
    id: &str,
    mode: Mode,
    principal: Option<&Principal>,
    ctx: &CommandContext,
    visible: V,
    command: C,
) -> Result<Outcome, ApiError>
where
    A: Aggregate<Error = domain::DomainError, Services = ()> + Clone + Send + Sync + 'static,
    V: Fn(&A) -> bool,
    C: Fn(&A) -> Result<A::Command, ApiError>,
{
    with_retry(A::TYPE, |source| {
        attempt(
            repo,
            Target { id, mode, source },
            principal,
            ctx,
            Vec::new(),
            &visible,
            &command,
        )
    })
    .await
}

/// The aggregate a command attempt acts on, and where its state comes from.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub id: &'a str,
    pub mode: Mode,
    pub source: Source,
}

/// One attempt of a command (see [`with_retry`]); `guards` are the facts of
/// other aggregates the command relies on.
///
/// # Errors
/// As [`execute`].
pub async fn attempt<A, V, C>(
    repo: &Repository<A>,
    target: Target<'_>,
    principal: Option<&Principal>,
    ctx: &CommandContext,
    guards: Vec<Guard>,
    visible: V,
    command: C,
) -> Result<Outcome, ApiError>
where
    A: Aggregate<Error = domain::DomainError, Services = ()> + Clone + Send + Sync + 'static,
    V: FnOnce(&A) -> bool,
    C: FnOnce(&A) -> Result<A::Command, ApiError>,
{
    let Target { id, mode, source } = target;
    let loaded = repo.read(id, source, mode == Mode::Create).await?;
    match mode {
        Mode::Update if loaded.version() == 0 || !visible(loaded.aggregate()) => {
            return Err(ApiError::NotFound(format!(
                "{} {id} not found",
                A::TYPE.to_lowercase()
            )))
        }
        Mode::Create if loaded.version() > 0 => {
            return Err(ApiError::Rule(domain::DomainError::conflict(
                "already_exists",
                format!("{} {id} already exists", A::TYPE.to_lowercase()),
            )))
        }
        _ => {}
    }
    if let Some(expected) = ctx.expected_version {
        if expected != loaded.version() {
            return Err(ApiError::PreconditionFailed {
                expected,
                current: loaded.version(),
            });
        }
    }
    let command = command(loaded.aggregate())?;
    let events = repo.decide(&loaded, command, &()).await?;
    let actor = principal.map_or_else(|| "anonymous".to_string(), Principal::scope);
    let expected = loaded.version();
    let started = std::time::Instant::now();
    let committed = repo
        .commit(loaded, events, ctx.metadata(&actor), &guards)
        .await;
    observe_append(A::TYPE, started);
    match committed {
        Ok(c) => Ok(Outcome {
            version: c.version,
            position: c.position,
        }),
        // A lost race is a stale version for a client that sent If-Match.
        Err(eventlog::StoreError::Conflict) if ctx.expected_version.is_some() => {
            let current = repo.load(id).await?.version();
            Err(ApiError::PreconditionFailed { expected, current })
        }
        Err(e) => Err(e.into()),
    }
}
