//! The group's statement: each append's rows, guards and claim as arrays,
//! one `INSERT`, each append's outcome.

use serde_json::Value;
use sqlx::PgPool;

use super::super::Guard;
use crate::StoreError;

/// Inserts each append's events unless one of its own guards' streams has
/// moved on, or its e-mail claim finds the address taken (a claim that
/// holds reserves the address and stores the user's data key with the
/// events); returns the positions given, with the stream each went to.
const APPEND_GROUP: &str = "\
WITH c AS (
       SELECT * FROM unnest($13::int[], $14::text[], $15::text[], $16::text[], $17::text[])
                  AS c(a, user_id, email, master, wrapped)),
     claimed AS (
       INSERT INTO user_emails (email, user_id) SELECT email, user_id FROM c
       ON CONFLICT DO NOTHING RETURNING user_id),
     sealed AS (
       INSERT INTO data_keys (subject, master_key, wrapped)
       SELECT c.user_id, c.master, c.wrapped FROM c WHERE c.user_id IN (SELECT user_id FROM claimed))
INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
SELECT e.aggregate_type, e.aggregate_id, e.sequence, e.event_type, e.event_version, e.payload, e.metadata
  FROM unnest($1::int[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::json[], $8::json[])
       WITH ORDINALITY AS e(a, aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, n)
 WHERE NOT EXISTS (
       SELECT 1 FROM unnest($9::int[], $10::text[], $11::text[], $12::bigint[]) AS g(a, aggregate_type, aggregate_id, version)
        WHERE g.a = e.a
          AND COALESCE((SELECT max(x.sequence) FROM events x
                         WHERE x.aggregate_type = g.aggregate_type
                           AND x.aggregate_id = g.aggregate_id), 0) <> g.version)
   AND NOT EXISTS (
       SELECT 1 FROM c WHERE c.a = e.a AND c.user_id NOT IN (SELECT user_id FROM claimed))
 ORDER BY e.n
RETURNING position, aggregate_type, aggregate_id";

/// A new user's e-mail address (its keyed hash) to reserve, and their data
/// key (in its stored form) to store, with their first events.
#[derive(Debug, Clone, Default)]
pub(crate) struct Claim {
    pub email: String,
    pub master: String,
    pub wrapped: String,
}

/// One stream's new events, serialized, with the guards its command
/// relied on.
#[derive(Debug, Clone, Default)]
pub(crate) struct Append {
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequences: Vec<i64>,
    pub types: Vec<String>,
    pub versions: Vec<String>,
    pub payloads: Vec<Value>,
    pub metas: Vec<Value>,
    pub guards: Vec<Guard>,
    pub claim: Option<Claim>,
}

impl Append {
    pub(super) fn stream(&self) -> (&str, &str) {
        (&self.aggregate_type, &self.aggregate_id)
    }
}

/// `e` for each of `n` appends (the store is unreachable: the same for all).
pub(super) fn failed(e: sqlx::Error, n: usize) -> Vec<Result<i64, StoreError>> {
    let again = |e: &sqlx::Error| match e {
        sqlx::Error::PoolTimedOut => sqlx::Error::PoolTimedOut,
        sqlx::Error::PoolClosed => sqlx::Error::PoolClosed,
        other => sqlx::Error::Io(std::io::Error::other(other.to_string())),
    };
    let mut all: Vec<_> = (1..n)
        .map(|_| Err(StoreError::Database(again(&e))))
        .collect();
    all.insert(0, Err(one_error(e)));
    all
}

pub(super) fn one_error(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict,
        _ => StoreError::Database(e),
    }
}

/// One append on its own: the position of its last event.
///
/// # Errors
/// [`StoreError::Conflict`] when the stream's next slot is taken,
/// [`StoreError::Stale`] when a guard failed, [`StoreError::Database`].
pub(crate) async fn insert_one(pool: &PgPool, append: &Append) -> Result<i64, StoreError> {
    insert(pool, &[append])
        .await
        .map_err(one_error)?
        .pop()
        .unwrap_or(Err(StoreError::Stale))
}

/// One statement for `appends` (no two touching one stream): each one's
/// last position, or [`StoreError::Stale`] where its guards failed.
pub(super) async fn insert(
    db: impl sqlx::PgExecutor<'_>,
    appends: &[&Append],
) -> Result<Vec<Result<i64, StoreError>>, sqlx::Error> {
    let numbered = || (0i32..).zip(appends.iter().copied());
    let per_event: Vec<(i32, &Append)> = numbered()
        .flat_map(|(n, a)| std::iter::repeat_n((n, a), a.sequences.len()))
        .collect();
    let guards: Vec<(i32, &Guard)> = numbered()
        .flat_map(|(n, a)| a.guards.iter().map(move |g| (n, g)))
        .collect();
    let claims: Vec<(i32, &str, &Claim)> = numbered()
        .filter_map(|(n, a)| a.claim.as_ref().map(|c| (n, a.aggregate_id.as_str(), c)))
        .collect();
    let strs = |f: fn(&Append) -> &[String]| -> Vec<&str> {
        appends
            .iter()
            .flat_map(|a| f(a).iter().map(String::as_str))
            .collect()
    };
    let values = |f: fn(&Append) -> &[Value]| -> Vec<&Value> {
        appends.iter().flat_map(|a| f(a).iter()).collect()
    };
    let rows: Vec<(i64, String, String)> = sqlx::query_as(APPEND_GROUP)
        .bind(per_event.iter().map(|e| e.0).collect::<Vec<_>>())
        .bind(
            per_event
                .iter()
                .map(|e| e.1.aggregate_type.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            per_event
                .iter()
                .map(|e| e.1.aggregate_id.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            appends
                .iter()
                .flat_map(|a| a.sequences.iter().copied())
                .collect::<Vec<i64>>(),
        )
        .bind(strs(|a| &a.types))
        .bind(strs(|a| &a.versions))
        .bind(values(|a| &a.payloads))
        .bind(values(|a| &a.metas))
        .bind(guards.iter().map(|g| g.0).collect::<Vec<_>>())
        .bind(
            guards
                .iter()
                .map(|g| g.1.aggregate_type.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            guards
                .iter()
                .map(|g| g.1.aggregate_id.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(guards.iter().map(|g| g.1.version).collect::<Vec<_>>())
        .bind(claims.iter().map(|c| c.0).collect::<Vec<_>>())
        .bind(claims.iter().map(|c| c.1).collect::<Vec<_>>())
        .bind(
            claims
                .iter()
                .map(|c| c.2.email.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            claims
                .iter()
                .map(|c| c.2.master.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            claims
                .iter()
                .map(|c| c.2.wrapped.as_str())
                .collect::<Vec<_>>(),
        )
        .fetch_all(db)
        .await?;
    Ok(appends
        .iter()
        .map(|a| {
            rows.iter()
                .filter(|(_, t, i)| (t.as_str(), i.as_str()) == a.stream())
                .map(|(p, ..)| *p)
                .max()
                .ok_or(StoreError::Stale)
        })
        .collect())
}
