use std::collections::HashMap;

use cqrs_es::persist::{EventStoreAggregateContext, PersistedEventStore};
use cqrs_es::{Aggregate, AggregateError, EventStore};
use postgres_es::PostgresEventRepository;
use sqlite_es::SqliteEventRepository;

use crate::{Database, EventLog, StoreError};

/// An aggregate as loaded from the store, ready to handle a command.
pub struct Loaded<A: Aggregate> {
    context: EventStoreAggregateContext<A>,
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

/// Loads and commits one aggregate type through cqrs-es (postgres-es or
/// sqlite-es), then reads back the global position of what it appended.
pub struct Repository<A: Aggregate> {
    store: Store<A>,
    log: EventLog,
}

fn store_error<E: std::error::Error>(e: AggregateError<E>) -> StoreError {
    match e {
        AggregateError::AggregateConflict => StoreError::Conflict,
        AggregateError::DeserializationError(e) => StoreError::Corrupt(e.to_string()),
        other => StoreError::Backend(other.to_string()),
    }
}

impl<A> Repository<A>
where
    A: Aggregate + Clone + Send + Sync + 'static,
{
    /// A repository over `db`. With `snapshot_every > 0` the aggregate's state
    /// is snapshotted every that many events, so loading reads the snapshot and
    /// only the events after it.
    pub fn new(db: &Database, snapshot_every: usize) -> Self {
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
            log: EventLog::new(db.clone()),
        }
    }

    /// Loads the aggregate (an empty one with version 0 when it has no events).
    ///
    /// # Errors
    /// [`StoreError`] when the store fails or a stored event is unreadable.
    pub async fn load(&self, aggregate_id: &str) -> Result<Loaded<A>, StoreError> {
        let context = match &self.store {
            Store::Postgres(s) => s.load_aggregate(aggregate_id).await,
            Store::Sqlite(s) => s.load_aggregate(aggregate_id).await,
        }
        .map_err(store_error)?;
        Ok(Loaded { context })
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

    /// Appends `events` after the loaded version, atomically, failing with
    /// [`StoreError::Conflict`] when another append got there first.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] on a lost race, other [`StoreError`]s when the
    /// store fails.
    pub async fn commit(
        &self,
        loaded: Loaded<A>,
        events: Vec<A::Event>,
        metadata: HashMap<String, String>,
    ) -> Result<Committed, StoreError> {
        let aggregate_id = loaded.context.aggregate_id.clone();
        let appended = events.len();
        let version = loaded.version() + appended as u64;
        if appended > 0 {
            match &self.store {
                Store::Postgres(s) => s.commit(events, loaded.context, metadata).await,
                Store::Sqlite(s) => {
                    let _turn = crate::sqlite_write_turn().await;
                    s.commit(events, loaded.context, metadata).await
                }
            }
            .map_err(store_error)?;
        }
        let position = if version == 0 {
            0
        } else {
            let sequence = i64::try_from(version)
                .map_err(|_| StoreError::Corrupt("sequence overflow".into()))?;
            self.log
                .position_of(A::TYPE, &aggregate_id, sequence)
                .await?
                .ok_or_else(|| {
                    StoreError::Corrupt(format!("{} {aggregate_id} lost event {sequence}", A::TYPE))
                })?
        };
        Ok(Committed {
            version,
            position,
            appended,
        })
    }
}
