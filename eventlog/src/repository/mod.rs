//! [`Repository`]: loading one aggregate type (cqrs-es, behind the
//! per-process cache) and appending to it.
//!
//! # Layout
//! - `mod.rs`: [`Repository`], [`Loaded`], [`Guard`], [`Source`]; loading and deciding.
//! - `append`: commits: the guarded one-statement insert, the e-mail-claiming
//!   registration, and the cqrs-es path for snapshots and SQLite.
//! - `group`: group commit of the guarded inserts of one process.

use cqrs_es::persist::{EventStoreAggregateContext, PersistedEventStore};
use cqrs_es::{Aggregate, AggregateError, EventStore};
use postgres_es::PostgresEventRepository;
use sqlite_es::SqliteEventRepository;

mod append;
mod group;

pub use group::AppendGroup;

use crate::cache::{Cache, Entry};
use crate::{AppendSignal, Database, EventLog, StoreError};

/// Where [`Repository::read`] takes an aggregate's state from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// This process's cache when it holds the aggregate (a command may then
    /// be decided on a stale state: only its append proves it, see
    /// [`Loaded::trusted`]). When it does not, the store; except that an
    /// aggregate about to be created is assumed not to exist yet.
    Cache,
    /// The store, always.
    Store,
}

/// A state read from another aggregate's stream that a command relied on:
/// the append fails with [`StoreError::Stale`] when that stream has moved
/// past `version` by then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guard {
    aggregate_type: String,
    aggregate_id: String,
    version: i64,
}

/// An aggregate as loaded, ready to handle a command.
pub struct Loaded<A: Aggregate> {
    context: EventStoreAggregateContext<A>,
    trusted: bool,
    cache_hit: Option<bool>,
}

impl<A: Aggregate> Loaded<A> {
    /// The current state.
    pub fn aggregate(&self) -> &A {
        &self.context.aggregate
    }

    /// The number of events in the stream (0: the aggregate does not exist).
    pub fn version(&self) -> u64 {
        self.context.current_sequence as u64
    }

    /// Whether the state was read from the store just now, rather than taken
    /// from the cache (or assumed empty for a creation).
    pub fn trusted(&self) -> bool {
        self.trusted
    }

    /// Whether the per-process cache held the aggregate, when the read
    /// asked it (`None`: no cache was consulted). The command path counts it.
    pub fn cache_hit(&self) -> Option<bool> {
        self.cache_hit
    }

    /// What a command on another aggregate that relies on this state must
    /// check when it appends: nothing when the state was read from the store
    /// for this command.
    pub fn guard(&self) -> Option<Guard> {
        (!self.trusted).then(|| Guard {
            aggregate_type: A::TYPE.to_string(),
            aggregate_id: self.context.aggregate_id.clone(),
            version: i64::try_from(self.context.current_sequence).unwrap_or(i64::MAX),
        })
    }
}

/// The outcome of a successful append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    /// The aggregate's version after the append.
    pub version: u64,
    /// Global position of the last event appended (the consistency token);
    /// when nothing was appended, the position of the stream's last event.
    pub position: i64,
    /// How many events were appended.
    pub appended: usize,
}

enum Store<A: Aggregate> {
    Postgres(PersistedEventStore<PostgresEventRepository, A>),
    Sqlite(PersistedEventStore<SqliteEventRepository, A>),
}

/// Loads and commits one aggregate type.
///
/// Loading goes through cqrs-es (postgres-es / sqlite-es, snapshots
/// included), with a per-process cache in front. Appending on Postgres is
/// one statement that checks the guards, inserts the events and returns
/// their positions; appends that write a snapshot, and all SQLite appends,
/// go through cqrs-es, then read the position back.
pub struct Repository<A: Aggregate> {
    store: Store<A>,
    db: Database,
    log: EventLog,
    snapshot_every: usize,
    cache: Option<Cache<A>>,
    signal: Option<AppendSignal>,
    group: Option<AppendGroup>,
}

fn store_error<E: std::error::Error>(e: AggregateError<E>) -> StoreError {
    match e {
        AggregateError::AggregateConflict => StoreError::Conflict,
        AggregateError::DeserializationError(e) => StoreError::Corrupt(e.to_string()),
        // postgres-es / sqlite-es box the driver's error: keep it typed, so
        // an unreachable database reads as unavailable (503), not internal.
        AggregateError::DatabaseConnectionError(e) | AggregateError::UnexpectedError(e) => {
            match e.downcast::<sqlx::Error>() {
                Ok(e) => StoreError::Database(*e),
                Err(e) => StoreError::Backend(e.to_string()),
            }
        }
        other => StoreError::Backend(other.to_string()),
    }
}

impl<A> Repository<A>
where
    A: Aggregate + Clone + Send + Sync + 'static,
{
    /// A repository over `db`. With `snapshot_every > 0` the aggregate's state
    /// is snapshotted every that many events, so loading reads the snapshot and
    /// only the events after it. `cache` is how many aggregates' states this
    /// process keeps (0: none, every command reads its stream).
    pub fn new(db: &Database, snapshot_every: usize, cache: usize) -> Self {
        Self::sharing(
            db,
            snapshot_every,
            cache,
            AppendSignal::for_database(db),
            AppendGroup::for_database(db),
        )
    }

    /// [`Repository::new`], telling tailers about appends through `signal`
    /// and writing guarded appends with `group` (both shared by the
    /// repositories of one process).
    pub fn sharing(
        db: &Database,
        snapshot_every: usize,
        cache: usize,
        signal: Option<AppendSignal>,
        group: Option<AppendGroup>,
    ) -> Self {
        let store = match db {
            Database::Postgres(pool) => {
                let repo = PostgresEventRepository::new(pool.clone());
                Store::Postgres(
                    if snapshot_every > 0 {
                        PersistedEventStore::new_snapshot_store(repo, snapshot_every)
                    } else {
                        PersistedEventStore::new_event_store(repo)
                    }
                    .with_upcasters(vec![Box::new(Upcasting)]),
                )
            }
            Database::Sqlite(pool) => {
                let repo = SqliteEventRepository::new(pool.clone());
                Store::Sqlite(
                    if snapshot_every > 0 {
                        PersistedEventStore::new_snapshot_store(repo, snapshot_every)
                    } else {
                        PersistedEventStore::new_event_store(repo)
                    }
                    .with_upcasters(vec![Box::new(Upcasting)]),
                )
            }
        };
        Self {
            store,
            db: db.clone(),
            log: EventLog::new(db.clone()),
            snapshot_every,
            cache: (cache > 0).then(|| Cache::new(cache)),
            signal,
            group,
        }
    }

    /// Loads the aggregate from the store (an empty one with version 0 when
    /// it has no events).
    ///
    /// # Errors
    /// [`StoreError`] when the store fails or a stored event is unreadable.
    pub async fn load(&self, aggregate_id: &str) -> Result<Loaded<A>, StoreError> {
        let context = match &self.store {
            Store::Postgres(s) => s.load_aggregate(aggregate_id).await,
            Store::Sqlite(s) => s.load_aggregate(aggregate_id).await,
        }
        .map_err(store_error)?;
        self.remember(&context);
        Ok(Loaded {
            context,
            trusted: true,
            cache_hit: None,
        })
    }

    /// Reads the aggregate from `source`. With [`Source::Cache`] and
    /// `creating`, an aggregate the cache does not hold is assumed not to
    /// exist (its first append fails if it does).
    ///
    /// # Errors
    /// As [`Repository::load`].
    pub async fn read(
        &self,
        aggregate_id: &str,
        source: Source,
        creating: bool,
    ) -> Result<Loaded<A>, StoreError> {
        if source == Source::Cache {
            if let Some(cache) = &self.cache {
                if let Some(e) = cache.get(aggregate_id) {
                    return Ok(Loaded {
                        context: EventStoreAggregateContext {
                            aggregate_id: aggregate_id.to_string(),
                            aggregate: e.aggregate,
                            current_sequence: e.version,
                            current_snapshot: e.snapshot,
                        },
                        trusted: false,
                        cache_hit: Some(true),
                    });
                }
            }
            if creating {
                return Ok(Loaded {
                    context: EventStoreAggregateContext {
                        aggregate_id: aggregate_id.to_string(),
                        aggregate: A::default(),
                        current_sequence: 0,
                        current_snapshot: None,
                    },
                    trusted: false,
                    cache_hit: self.cache.as_ref().map(|_| false),
                });
            }
        }
        let mut loaded = self.load(aggregate_id).await?;
        if source == Source::Cache {
            loaded.cache_hit = self.cache.as_ref().map(|_| false);
        }
        Ok(loaded)
    }

    /// Drops what the cache holds for `aggregate_id`.
    pub fn forget(&self, aggregate_id: &str) {
        if let Some(cache) = &self.cache {
            cache.forget(aggregate_id);
        }
    }

    /// The state after `events`, for the cache (none without a cache).
    fn folded(&self, state: &A, events: &[A::Event]) -> Option<A> {
        self.cache.as_ref()?;
        let mut after = state.clone();
        for e in events {
            after.apply(e.clone());
        }
        Some(after)
    }

    fn remember(&self, context: &EventStoreAggregateContext<A>) {
        if let Some(cache) = &self.cache {
            if context.current_sequence > 0 {
                cache.put(
                    &context.aggregate_id,
                    Entry {
                        aggregate: context.aggregate.clone(),
                        version: context.current_sequence,
                        snapshot: context.current_snapshot,
                    },
                );
            }
        }
    }

    /// Handles `command` against a copy of the loaded state (the loaded state
    /// itself stays as read, for the snapshot logic of the commit).
    ///
    /// # Errors
    /// The aggregate's own error when a rule rejects the command.
    pub async fn decide(
        &self,
        loaded: &Loaded<A>,
        command: A::Command,
        services: &A::Services,
    ) -> Result<Vec<A::Event>, A::Error> {
        let mut working = loaded.context.aggregate.clone();
        let sink = cqrs_es::event_sink::EventSink::default();
        working.handle(command, services, &sink).await?;
        Ok(sink.collect().await)
    }
}

/// The domain's upcasters ([`domain::upcast`]) for aggregate loads: older
/// stored versions are brought to the current one before cqrs-es decodes
/// them, exactly as [`crate::StoredEvent`] does for everyone else.
struct Upcasting;

impl cqrs_es::persist::EventUpcaster for Upcasting {
    fn can_upcast(&self, event_type: &str, event_version: &str) -> bool {
        domain::upcast::chain(event_type, event_version).is_ok_and(|steps| !steps.is_empty())
    }

    fn upcast(
        &self,
        mut event: cqrs_es::persist::SerializedEvent,
    ) -> cqrs_es::persist::SerializedEvent {
        let payload = std::mem::take(&mut event.payload);
        match domain::upcast::upcast(&event.event_type, &event.event_version, payload.clone()) {
            Ok(current) => {
                event.payload = current;
                event.event_version =
                    domain::upcast::current_version(&event.event_type).to_string();
            }
            Err(_) => event.payload = payload,
        }
        event
    }
}
