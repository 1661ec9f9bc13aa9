//! Appending: the one-statement guarded insert on PostgreSQL, cqrs-es for
//! appends that write a snapshot and for SQLite, and the positions given.

use std::collections::HashMap;

use cqrs_es::persist::{EventStoreAggregateContext, SerializedEvent};
use cqrs_es::{Aggregate, EventEnvelope, EventStore};

use super::group::{self, Append, Claim};
use super::{store_error, Committed, Guard, Loaded, Repository, Store};
use crate::protect::NewKey;
use crate::{Database, StoreError};

/// What the one-statement append checks besides the stream's own slot.
#[derive(Clone, Copy)]
enum Insert<'a> {
    /// Other streams still at the versions a command relied on.
    Guarded(&'a [Guard]),
    /// The user's e-mail address is free, and is reserved with the events
    /// and the user's new data key stored.
    ClaimingEmail(&'a str, &'a NewKey),
}

/// The version of one stream (0: no events).
const VERSION: &str =
    "SELECT COALESCE(max(sequence), 0) FROM events WHERE aggregate_type = $1 AND aggregate_id = $2";

impl<A> Repository<A>
where
    A: Aggregate + Clone + Send + Sync + 'static,
{
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

    /// Appends a new stream's first `events`, reserves `email` (its keyed
    /// hash) for it and stores the user's data `key`, in one statement.
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
        (email, key): (&str, &NewKey),
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
                Insert::ClaimingEmail(email, key),
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
    /// positions; with the process's group when it has one.
    async fn append(
        &self,
        pool: &sqlx::PgPool,
        aggregate_id: &str,
        before: usize,
        events: Vec<A::Event>,
        metadata: HashMap<String, String>,
        insert: Insert<'_>,
    ) -> Result<i64, StoreError> {
        let mut append = serialized::<A>(aggregate_id, before, events, &metadata)?;
        match insert {
            Insert::Guarded(guards) => append.guards = guards.to_vec(),
            Insert::ClaimingEmail(email, key) => {
                let (master, wrapped) = key.stored_form();
                append.claim = Some(Claim {
                    email: email.to_string(),
                    master: master.to_string(),
                    wrapped: wrapped.to_string(),
                });
            }
        }
        match &self.group {
            Some(group) => group.append(append).await,
            None => group::insert_one(pool, &append).await,
        }
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

/// `events` as the rows of one append after version `before`.
fn serialized<A: Aggregate>(
    aggregate_id: &str,
    before: usize,
    events: Vec<A::Event>,
    metadata: &HashMap<String, String>,
) -> Result<Append, StoreError> {
    let n = events.len();
    let mut a = Append {
        aggregate_type: A::TYPE.to_string(),
        aggregate_id: aggregate_id.to_string(),
        sequences: Vec::with_capacity(n),
        types: Vec::with_capacity(n),
        versions: Vec::with_capacity(n),
        payloads: Vec::with_capacity(n),
        metas: Vec::with_capacity(n),
        guards: Vec::new(),
        claim: None,
    };
    for (i, payload) in events.into_iter().enumerate() {
        let envelope = EventEnvelope::<A> {
            aggregate_id: aggregate_id.to_string(),
            sequence: before + i + 1,
            payload,
            metadata: metadata.clone(),
        };
        let s =
            SerializedEvent::try_from(&envelope).map_err(|e| StoreError::Backend(e.to_string()))?;
        a.sequences.push(
            i64::try_from(s.sequence)
                .map_err(|_| StoreError::Corrupt("sequence overflow".into()))?,
        );
        a.types.push(s.event_type);
        a.versions.push(s.event_version);
        a.payloads.push(s.payload);
        a.metas.push(s.metadata);
    }
    Ok(a)
}
