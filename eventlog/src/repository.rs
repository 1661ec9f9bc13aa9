use std::collections::HashMap;

use cqrs_es::persist::{EventStoreAggregateContext, PersistedEventStore, SerializedEvent};
use cqrs_es::{Aggregate, AggregateError, EventEnvelope, EventStore};
use postgres_es::PostgresEventRepository;
use sqlite_es::SqliteEventRepository;

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

/// What the one-statement append checks besides the stream's own slot.
#[derive(Clone, Copy)]
enum Insert<'a> {
    /// Other streams still at the versions a command relied on.
    Guarded(&'a [Guard]),
    /// The user's e-mail address is free, and is reserved with the events.
    ClaimingEmail(&'a str),
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

/// Inserts a stream's new events unless a guard's stream has moved on;
/// returns the positions given (none: a guard failed).
const APPEND: &str = "\
INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
SELECT $1, $2, e.sequence, e.event_type, e.event_version, e.payload, e.metadata
  FROM unnest($3::bigint[], $4::text[], $5::text[], $6::json[], $7::json[])
       WITH ORDINALITY AS e(sequence, event_type, event_version, payload, metadata, n)
 WHERE NOT EXISTS (
       SELECT 1 FROM unnest($8::text[], $9::text[], $10::bigint[]) AS g(aggregate_type, aggregate_id, version)
        WHERE COALESCE((SELECT max(x.sequence) FROM events x
                         WHERE x.aggregate_type = g.aggregate_type
                           AND x.aggregate_id = g.aggregate_id), 0) <> g.version)
 ORDER BY e.n
RETURNING position";

/// A user's first events together with the reservation of their e-mail
/// address (one user per address): both or neither; none when the address
/// is taken.
const APPEND_CLAIMING_EMAIL: &str = "\
WITH claim AS (
       INSERT INTO user_emails (email, user_id) VALUES ($8, $2)
       ON CONFLICT DO NOTHING RETURNING 1)
INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
SELECT $1, $2, e.sequence, e.event_type, e.event_version, e.payload, e.metadata
  FROM unnest($3::bigint[], $4::text[], $5::text[], $6::json[], $7::json[])
       WITH ORDINALITY AS e(sequence, event_type, event_version, payload, metadata, n)
 WHERE EXISTS (SELECT 1 FROM claim)
 ORDER BY e.n
RETURNING position";

/// The version of one stream (0: no events).
const VERSION: &str =
    "SELECT COALESCE(max(sequence), 0) FROM events WHERE aggregate_type = $1 AND aggregate_id = $2";

impl<A> Repository<A>
where
    A: Aggregate + Clone + Send + Sync + 'static,
{
    /// A repository over `db`. With `snapshot_every > 0` the aggregate's state
    /// is snapshotted every that many events, so loading reads the snapshot and
    /// only the events after it. `cache` is how many aggregates' states this
    /// process keeps (0: none, every command reads its stream).
    pub fn new(db: &Database, snapshot_every: usize, cache: usize) -> Self {
        Self::sharing(db, snapshot_every, cache, AppendSignal::for_database(db))
    }

    /// [`Repository::new`], telling tailers about appends through `signal`
    /// (shared by the repositories of one process).
    pub fn sharing(
        db: &Database,
        snapshot_every: usize,
        cache: usize,
        signal: Option<AppendSignal>,
    ) -> Self {
        let store = match db {
            Database::Postgres(pool) => {
                let repo = PostgresEventRepository::new(pool.clone());
                Store::Postgres(if snapshot_every > 0 {
                    PersistedEventStore::new_snapshot_store(repo, snapshot_every)
                } else {
                    PersistedEventStore::new_event_store(repo)
                })
            }
            Database::Sqlite(pool) => {
                let repo = SqliteEventRepository::new(pool.clone());
                Store::Sqlite(if snapshot_every > 0 {
                    PersistedEventStore::new_snapshot_store(repo, snapshot_every)
                } else {
                    PersistedEventStore::new_event_store(repo)
                })
            }
        };
        Self {
            store,
            db: db.clone(),
            log: EventLog::new(db.clone()),
            snapshot_every,
            cache: (cache > 0).then(|| Cache::new(cache)),
            signal,
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

    /// Whether appending `n` events after `version` is due to write a
    /// snapshot (the rule of cqrs-es's snapshot store).
    fn snapshot_due(&self, version: usize, n: usize) -> bool {
        self.snapshot_every > 0 && n >= self.snapshot_every - version % self.snapshot_every
    }

    /// Appends `events` after the loaded version, atomically, failing with
    /// [`StoreError::Conflict`] when another append got there first and with
    /// [`StoreError::Stale`] when a guard's stream moved on, or when the
    /// state was not read from the store and nothing is appended (a no-op
    /// proves nothing about a cached state).
    ///
    /// # Errors
    /// [`StoreError::Conflict`] / [`StoreError::Stale`] as above, other
    /// [`StoreError`]s when the store fails.
    pub async fn commit(
        &self,
        loaded: Loaded<A>,
        events: Vec<A::Event>,
        metadata: HashMap<String, String>,
        guards: &[Guard],
    ) -> Result<Committed, StoreError> {
        let appended = events.len();
        if appended == 0 && !loaded.trusted {
            return Err(StoreError::Stale);
        }
        let Loaded { mut context, .. } = loaded;
        let before = context.current_sequence;
        let version = before + appended;
        let snapshot = self.snapshot_due(before, appended);
        let after = self.folded(&context.aggregate, &events);
        let result = match (&self.db, appended, snapshot) {
            (Database::Postgres(pool), 1.., false) => {
                self.append(
                    pool,
                    &context.aggregate_id,
                    before,
                    events,
                    metadata,
                    Insert::Guarded(guards),
                )
                .await
            }
            _ => {
                self.commit_through_cqrs(&mut context, events, metadata, guards)
                    .await
            }
        };
        match result {
            Ok(position) => {
                if appended > 0 {
                    if let Some(signal) = &self.signal {
                        signal.appended();
                    }
                    if let Some(after) = after {
                        context.aggregate = after;
                        context.current_sequence = version;
                        if snapshot {
                            context.current_snapshot =
                                Some(context.current_snapshot.map_or(1, |s| s + 1));
                        }
                        self.remember(&context);
                    }
                }
                Ok(Committed {
                    version: version as u64,
                    position,
                    appended,
                })
            }
            Err(e) => {
                if matches!(e, StoreError::Conflict) {
                    self.forget(&context.aggregate_id);
                }
                Err(e)
            }
        }
    }

    /// Whether a first append with an e-mail claim is one statement here
    /// (PostgreSQL, and no snapshot due after one event); see
    /// [`Repository::commit_claiming_email`].
    pub fn claims_emails_in_the_append(&self) -> bool {
        matches!(self.db, Database::Postgres(_)) && !self.snapshot_due(0, 1)
    }

    /// Appends a new stream's first `events` and reserves `email` for it in
    /// the same statement (the `user_emails` row a registration needs).
    /// Fails with [`StoreError::Stale`] when the address is taken (nothing
    /// is written), with [`StoreError::Conflict`] when the stream exists,
    /// and with [`StoreError::Backend`] where
    /// [`Repository::claims_emails_in_the_append`] is false.
    ///
    /// # Errors
    /// As above; other [`StoreError`]s when the store fails.
    pub async fn commit_claiming_email(
        &self,
        loaded: Loaded<A>,
        events: Vec<A::Event>,
        metadata: HashMap<String, String>,
        email: &str,
    ) -> Result<Committed, StoreError> {
        let (Database::Postgres(pool), true, 0, 1..) = (
            &self.db,
            self.claims_emails_in_the_append(),
            loaded.context.current_sequence,
            events.len(),
        ) else {
            return Err(StoreError::Backend(
                "an e-mail claim needs a first append on PostgreSQL".into(),
            ));
        };
        let Loaded { mut context, .. } = loaded;
        let appended = events.len();
        let after = self.folded(&context.aggregate, &events);
        let position = self
            .append(
                pool,
                &context.aggregate_id,
                0,
                events,
                metadata,
                Insert::ClaimingEmail(email),
            )
            .await?;
        if let Some(signal) = &self.signal {
            signal.appended();
        }
        if let Some(after) = after {
            context.aggregate = after;
            context.current_sequence = appended;
            self.remember(&context);
        }
        Ok(Committed {
            version: appended as u64,
            position,
            appended,
        })
    }

    /// The one-statement append (Postgres): guards or a claim, events,
    /// positions.
    async fn append(
        &self,
        pool: &sqlx::PgPool,
        aggregate_id: &str,
        before: usize,
        events: Vec<A::Event>,
        metadata: HashMap<String, String>,
        insert: Insert<'_>,
    ) -> Result<i64, StoreError> {
        let n = events.len();
        let (mut sequences, mut types, mut versions, mut payloads, mut metas) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for (i, payload) in events.into_iter().enumerate() {
            let envelope = EventEnvelope::<A> {
                aggregate_id: aggregate_id.to_string(),
                sequence: before + i + 1,
                payload,
                metadata: metadata.clone(),
            };
            let s = SerializedEvent::try_from(&envelope)
                .map_err(|e| StoreError::Backend(e.to_string()))?;
            sequences.push(
                i64::try_from(s.sequence)
                    .map_err(|_| StoreError::Corrupt("sequence overflow".into()))?,
            );
            types.push(s.event_type);
            versions.push(s.event_version);
            payloads.push(s.payload);
            metas.push(s.metadata);
        }
        let sql = match insert {
            Insert::Guarded(_) => APPEND,
            Insert::ClaimingEmail(_) => APPEND_CLAIMING_EMAIL,
        };
        let query = sqlx::query_scalar(sql)
            .bind(A::TYPE)
            .bind(aggregate_id)
            .bind(sequences)
            .bind(types)
            .bind(versions)
            .bind(payloads)
            .bind(metas);
        let query = match insert {
            Insert::Guarded(guards) => query
                .bind(
                    guards
                        .iter()
                        .map(|g| g.aggregate_type.as_str())
                        .collect::<Vec<_>>(),
                )
                .bind(
                    guards
                        .iter()
                        .map(|g| g.aggregate_id.as_str())
                        .collect::<Vec<_>>(),
                )
                .bind(guards.iter().map(|g| g.version).collect::<Vec<_>>()),
            Insert::ClaimingEmail(email) => query.bind(email),
        };
        let positions: Vec<i64> = query.fetch_all(pool).await.map_err(|e| match &e {
            sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict,
            _ => StoreError::Database(e),
        })?;
        positions.into_iter().max().ok_or(StoreError::Stale)
    }

    /// Appends through cqrs-es (snapshots, SQLite) after checking the
    /// guards, then reads the position back.
    async fn commit_through_cqrs(
        &self,
        context: &mut EventStoreAggregateContext<A>,
        events: Vec<A::Event>,
        metadata: HashMap<String, String>,
        guards: &[Guard],
    ) -> Result<i64, StoreError> {
        let aggregate_id = context.aggregate_id.clone();
        let version = context.current_sequence + events.len();
        if !events.is_empty() {
            let snapshot_of = EventStoreAggregateContext {
                aggregate_id: aggregate_id.clone(),
                aggregate: context.aggregate.clone(),
                current_sequence: context.current_sequence,
                current_snapshot: context.current_snapshot,
            };
            match &self.store {
                Store::Postgres(s) => {
                    self.check(guards).await?;
                    s.commit(events, snapshot_of, metadata).await
                }
                Store::Sqlite(s) => {
                    let _turn = crate::sqlite_write_turn().await;
                    self.check(guards).await?;
                    s.commit(events, snapshot_of, metadata).await
                }
            }
            .map_err(store_error)?;
        }
        if version == 0 {
            return Ok(0);
        }
        let sequence =
            i64::try_from(version).map_err(|_| StoreError::Corrupt("sequence overflow".into()))?;
        self.log
            .position_of(A::TYPE, &aggregate_id, sequence)
            .await?
            .ok_or_else(|| {
                StoreError::Corrupt(format!("{} {aggregate_id} lost event {sequence}", A::TYPE))
            })
    }

    /// Fails with [`StoreError::Stale`] when a guard's stream moved on.
    async fn check(&self, guards: &[Guard]) -> Result<(), StoreError> {
        for g in guards {
            let current: i64 = crate::db::on_pool!(&self.db, |p| {
                sqlx::query_scalar(VERSION)
                    .bind(&g.aggregate_type)
                    .bind(&g.aggregate_id)
                    .fetch_one(p)
                    .await?
            });
            if current != g.version {
                return Err(StoreError::Stale);
            }
        }
        Ok(())
    }
}
