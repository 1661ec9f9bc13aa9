//! The command path: read the aggregate, check who may see it and the
//! expected version, let the domain decide, append with optimistic
//! concurrency. [`Commands::run`] is the one retry policy and
//! [`Attempt::decide`] the one attempt; every command is written with them.

use std::future::Future;
use std::time::Instant;

use auth::Principal;
use cqrs_es::Aggregate;
use domain::{Order, Payment, Product, User};
use eventlog::{
    Database, EmailRegistry, EventLog, Guard, Keyring, Loaded, Repository, Reservations, Source,
};

use crate::{CommandContext, CommandError};

/// What a successful command returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Done {
    /// The aggregate's id (a UUID, or the SKU for products).
    pub id: String,
    /// The aggregate's version after the command.
    pub version: u64,
    /// Global position of the last event appended: the consistency token.
    pub position: i64,
}

/// Whether a command creates its aggregate or acts on an existing one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Create,
    Update,
}

/// The aggregates' repositories and the side tables: the command core.
/// API and saga in one process share one, so they share its caches.
pub struct Commands {
    pub users: Repository<User>,
    pub products: Repository<Product>,
    pub orders: Repository<Order>,
    pub payments: Repository<Payment>,
    pub emails: EmailRegistry,
    /// Provider identities, one user each.
    pub identities: Reservations,
    pub log: EventLog,
    /// The users' data keys: personal fields are sealed before a command
    /// is decided.
    pub keys: Keyring,
}

/// The bound every aggregate of the core meets.
pub trait Stream:
    Aggregate<Error = domain::DomainError, Services = ()> + Clone + Send + Sync + 'static
{
}

impl<A> Stream for A where
    A: Aggregate<Error = domain::DomainError, Services = ()> + Clone + Send + Sync + 'static
{
}

impl Commands {
    /// Repositories over `db`, snapshotting every `snapshot_every` events
    /// (0: never), each caching up to `cache` aggregates (0: no cache),
    /// sealing personal data with `keys`.
    pub fn new(db: &Database, snapshot_every: usize, cache: usize, keys: Keyring) -> Self {
        let signal = eventlog::AppendSignal::for_database(db);
        let group = eventlog::AppendGroup::for_database(db);
        Self {
            users: Repository::sharing(db, snapshot_every, cache, signal.clone(), group.clone()),
            products: Repository::sharing(db, snapshot_every, cache, signal.clone(), group.clone()),
            orders: Repository::sharing(db, snapshot_every, cache, signal.clone(), group.clone()),
            payments: Repository::sharing(db, snapshot_every, cache, signal, group),
            emails: EmailRegistry::new(db.clone()),
            identities: Reservations::identities(db.clone()),
            log: EventLog::new(db.clone()),
            keys,
        }
    }

    /// Whether a command with `ctx`'s idempotency key has appended events
    /// already: a redelivered cause, or a crash between a command and its
    /// caller's checkpoint. In-process callers (the saga) check it first.
    ///
    /// # Errors
    /// Store failures.
    pub async fn applied(&self, ctx: &CommandContext) -> Result<bool, CommandError> {
        let Some(key) = &ctx.idempotency_key else {
            return Ok(false);
        };
        Ok(!self.log.by_idempotency_key(key).await?.is_empty())
    }

    /// Runs a command's attempts: first on the states this process has
    /// cached ([`Source::Cache`]); when that attempt fails in a way a stale
    /// state could explain (a broken rule, a missing item, a lost race, a
    /// stale fact), once more on what the store holds ([`Source::Store`]),
    /// and that answer stands. A cached attempt that succeeds was proven
    /// current by its append (see [`eventlog::Repository::read`]). Counts
    /// the outcome for `aggregate` in `commands_total`.
    ///
    /// # Errors
    /// The last attempt's error.
    pub async fn run<T, F, Fut>(
        &self,
        aggregate: &'static str,
        attempt: F,
    ) -> Result<T, CommandError>
    where
        F: Fn(Source) -> Fut,
        Fut: Future<Output = Result<T, CommandError>>,
    {
        let result = match attempt(Source::Cache).await {
            Err(e) if e.may_be_stale() => {
                telemetry::metrics::count(
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
}

/// Counts a command's outcome in `commands_total`.
pub(crate) fn count_outcome<T>(aggregate: &'static str, result: &Result<T, CommandError>) {
    let outcome = result
        .as_ref()
        .map_or_else(CommandError::outcome, |_| "accepted");
    telemetry::metrics::count(
        "commands_total",
        "Commands by aggregate type and outcome.",
        &[("aggregate", aggregate), ("outcome", outcome)],
        1.0,
    );
}

/// Records how long an append took in `event_append_duration_seconds`.
pub(crate) fn observe_append(aggregate: &'static str, started: Instant) {
    telemetry::metrics::observe_seconds(
        "event_append_duration_seconds",
        "Latency of appending a command's events.",
        &[("aggregate", aggregate)],
        started.elapsed().as_secs_f64(),
    );
}

/// Reads an aggregate (see [`Repository::read`]) and counts whether the
/// cache held it in `aggregate_cache_reads_total`.
///
/// # Errors
/// As [`Repository::read`].
pub async fn read<A: Stream>(
    repo: &Repository<A>,
    id: &str,
    source: Source,
    creating: bool,
) -> Result<Loaded<A>, CommandError> {
    let loaded = repo.read(id, source, creating).await?;
    if let Some(hit) = loaded.cache_hit() {
        telemetry::metrics::count(
            "aggregate_cache_reads_total",
            "Command-side aggregate reads by aggregate type and whether the cache held the aggregate.",
            &[("aggregate", A::TYPE), ("result", if hit { "hit" } else { "miss" })],
            1.0,
        );
    }
    Ok(loaded)
}

/// One attempt of a command on one aggregate (see [`Commands::run`]).
pub struct Attempt<'a, A: Stream> {
    pub repo: &'a Repository<A>,
    pub id: &'a str,
    pub mode: Mode,
    /// Who sends it (`None`: an anonymous sign-up).
    pub actor: Option<&'a Principal>,
    pub ctx: &'a CommandContext,
    /// Facts of other aggregates the command relies on, checked in the append.
    pub guards: Vec<Guard>,
}

impl<'a, A: Stream> Attempt<'a, A> {
    /// An attempt without guards.
    pub fn new(
        repo: &'a Repository<A>,
        id: &'a str,
        mode: Mode,
        actor: Option<&'a Principal>,
        ctx: &'a CommandContext,
    ) -> Self {
        Self {
            repo,
            id,
            mode,
            actor,
            ctx,
            guards: Vec::new(),
        }
    }

    /// The same attempt, relying on `guards`.
    #[must_use]
    pub fn guarded(mut self, guards: Vec<Guard>) -> Self {
        self.guards = guards;
        self
    }

    /// Reads the aggregate from `source`, refuses it when `visible` says the
    /// caller may not see it (404, so nobody learns that another customer's
    /// order exists) or the expected version differs, builds the domain
    /// command from its state, and appends what the domain decides.
    ///
    /// # Errors
    /// [`CommandError::NotFound`] for unknown or invisible aggregates,
    /// [`CommandError::PreconditionFailed`] for a stale expected version,
    /// [`CommandError::Rule`] for broken rules, a conflict for a lost race.
    pub async fn decide(
        self,
        source: Source,
        visible: impl FnOnce(&A) -> bool,
        command: impl FnOnce(&A) -> Result<A::Command, CommandError>,
    ) -> Result<Done, CommandError> {
        let Self {
            repo,
            id,
            mode,
            actor,
            ctx,
            guards,
        } = self;
        let loaded = read(repo, id, source, mode == Mode::Create).await?;
        let what = A::TYPE.to_lowercase();
        match mode {
            Mode::Update if loaded.version() == 0 || !visible(loaded.aggregate()) => {
                return Err(CommandError::NotFound(format!("{what} {id} not found")))
            }
            Mode::Create if loaded.version() > 0 => {
                return Err(CommandError::Rule(domain::DomainError::conflict(
                    "already_exists",
                    format!("{what} {id} already exists"),
                )))
            }
            _ => {}
        }
        if let Some(expected) = ctx.expected_version {
            if expected != loaded.version() {
                return Err(CommandError::PreconditionFailed {
                    expected,
                    current: loaded.version(),
                });
            }
        }
        let command = command(loaded.aggregate())?;
        let events = repo.decide(&loaded, command, &()).await?;
        let actor = actor.map_or_else(|| "anonymous".to_string(), Principal::scope);
        let expected = loaded.version();
        let started = Instant::now();
        let committed = repo
            .commit(loaded, events, ctx.metadata(&actor), &guards)
            .await;
        observe_append(A::TYPE, started);
        match committed {
            Ok(c) => Ok(Done {
                id: id.to_string(),
                version: c.version,
                position: c.position,
            }),
            // A lost race is a stale version for a client that sent If-Match.
            Err(eventlog::StoreError::Conflict) if ctx.expected_version.is_some() => {
                let current = repo.load(id).await?.version();
                Err(CommandError::PreconditionFailed { expected, current })
            }
            Err(e) => Err(e.into()),
        }
    }
}
