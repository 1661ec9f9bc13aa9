//! The census of the store: which event types and versions it holds, and
//! the gate every role passes at start: no `type@version` this release
//! cannot read ([`domain::upcast`]).

use serde::Serialize;

use crate::db::on_pool;
use crate::{Database, StoreError};

/// One event type at one version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CensusRow {
    pub event_type: String,
    pub event_version: String,
    pub count: i64,
    pub first_position: i64,
    pub last_position: i64,
    /// How this release reads it: `current`, the upcaster chain, or
    /// `UNREADABLE by this release`.
    pub read_as: String,
}

/// Every type@version in the store, with its count and positions (one
/// pass over the log: for the `events census` command).
///
/// # Errors
/// Database errors.
pub async fn census(db: &Database) -> Result<Vec<CensusRow>, StoreError> {
    let sql = "SELECT event_type, event_version, COUNT(*), MIN(position), MAX(position) \
               FROM events GROUP BY event_type, event_version ORDER BY event_type, event_version";
    let rows: Vec<(String, String, i64, i64, i64)> =
        on_pool!(db, |p| sqlx::query_as(sql).fetch_all(p).await?);
    Ok(rows
        .into_iter()
        .map(
            |(event_type, event_version, count, first, last)| CensusRow {
                read_as: domain::upcast::describe(&event_type, &event_version),
                event_type,
                event_version,
                count,
                first_position: first,
                last_position: last,
            },
        )
        .collect())
}

/// The distinct type@version pairs, by seeking the `(event_type,
/// event_version, position)` index once per pair (cheap on any size of log).
async fn stored_versions(db: &Database) -> Result<Vec<(String, String)>, StoreError> {
    // A row comparison is an index bound on both backends (an `OR` of the
    // two cases is a filter: PostgreSQL then walks the index from its start).
    let sql = "SELECT event_type, event_version FROM events \
               WHERE (event_type, event_version) > ($1, $2) \
               ORDER BY event_type, event_version LIMIT 1";
    let mut found = Vec::new();
    let mut after = (String::new(), String::new());
    loop {
        let next: Option<(String, String)> = on_pool!(db, |p| {
            sqlx::query_as(sql)
                .bind(&after.0)
                .bind(&after.1)
                .fetch_optional(p)
                .await?
        });
        let Some(pair) = next else {
            return Ok(found);
        };
        found.push(pair.clone());
        after = pair;
    }
}

/// Why a role may not start on this store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the event store holds events this release cannot read:\n{}\nrun a release that reads them (`shopstream events census` lists what the store holds)",
    .0.iter().map(|r| format!("  {}@{}: {} events, first at position {}: {}", r.event_type, r.event_version, r.count, r.first_position, r.read_as)).collect::<Vec<_>>().join("\n")
)]
pub struct Unreadable(pub Vec<CensusRow>);

/// The start-up gate: `Ok` when this release can read every stored
/// type@version; else each one it cannot, with its count and first position.
///
/// # Errors
/// [`GateError::Unreadable`], or a database error.
pub async fn check_readable(db: &Database) -> Result<(), GateError> {
    let mut unreadable = Vec::new();
    for (event_type, event_version) in stored_versions(db).await? {
        let Err(why) = domain::upcast::chain(&event_type, &event_version) else {
            continue;
        };
        let sql = "SELECT COUNT(*), MIN(position), MAX(position) FROM events \
                   WHERE event_type = $1 AND event_version = $2";
        let (count, first, last): (i64, i64, i64) = on_pool!(db, |p| {
            sqlx::query_as(sql)
                .bind(&event_type)
                .bind(&event_version)
                .fetch_one(p)
                .await?
        });
        unreadable.push(CensusRow {
            read_as: why.to_string(),
            event_type,
            event_version,
            count,
            first_position: first,
            last_position: last,
        });
    }
    if unreadable.is_empty() {
        Ok(())
    } else {
        Err(GateError::Unreadable(Unreadable(unreadable)))
    }
}

/// What the start-up gate refuses with.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error(transparent)]
    Unreadable(Unreadable),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for GateError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(e.into())
    }
}
