use std::time::Duration;

use serde_json::Value;
use sqlx::Row;

use crate::db::on_pool;
use crate::{Database, StoreError};

/// Where a stored idempotency key stands.
#[derive(Debug, Clone, PartialEq)]
pub struct IdempotencyRecord {
    /// Hash of the first request (method, path, body).
    pub fingerprint: String,
    /// The first request's response, once it finished.
    pub response: Option<(u16, Value)>,
    /// Time since the first request started.
    pub age: Duration,
}

/// The result of claiming a key.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyState {
    /// This request owns the key and must execute, then complete or abandon it.
    Started,
    /// Another request owns (or owned) the key.
    Existing(IdempotencyRecord),
}

/// Durable idempotency keys (invariant 5), scoped per principal.
#[derive(Debug, Clone)]
pub struct IdempotencyStore {
    db: Database,
}

impl IdempotencyStore {
    /// A store over `db`.
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// Claims `key` for a request with `fingerprint`; exactly one of any
    /// number of concurrent claims gets [`KeyState::Started`].
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn begin(
        &self,
        principal: &str,
        key: &str,
        fingerprint: &str,
    ) -> Result<KeyState, StoreError> {
        let insert = "INSERT INTO idempotency_keys (principal, key, fingerprint, state) \
                      VALUES ($1, $2, $3, 'pending') ON CONFLICT DO NOTHING";
        let inserted = on_pool!(&self.db, |p| {
            sqlx::query(insert)
                .bind(principal)
                .bind(key)
                .bind(fingerprint)
                .execute(p)
                .await?
                .rows_affected()
        });
        if inserted == 1 {
            return Ok(KeyState::Started);
        }
        match self.get(principal, key).await? {
            Some(record) => Ok(KeyState::Existing(record)),
            // Purged between the insert and the read: claim again.
            None => Box::pin(self.begin(principal, key, fingerprint)).await,
        }
    }

    /// Reads a key.
    ///
    /// # Errors
    /// [`StoreError::Database`] or [`StoreError::Corrupt`].
    pub async fn get(
        &self,
        principal: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        // The response goes out as text on both backends (PostgreSQL
        // stores it as json), parsed here once.
        let sql = self.db.dialect(
            "SELECT fingerprint, status_code::int8 AS status_code, response::text AS response, \
             EXTRACT(EPOCH FROM clock_timestamp() - created_at)::float8 AS age \
             FROM idempotency_keys WHERE principal = $1 AND key = $2",
            "SELECT fingerprint, status_code, response, \
             (julianday('now') - julianday(created_at)) * 86400.0 AS age \
             FROM idempotency_keys WHERE principal = $1 AND key = $2",
        );
        let found: Option<(String, Option<i64>, Option<String>, f64)> = on_pool!(&self.db, |p| {
            let row = sqlx::query(sql)
                .bind(principal)
                .bind(key)
                .fetch_optional(p)
                .await?;
            match row {
                None => None,
                Some(row) => Some((
                    row.try_get("fingerprint")?,
                    row.try_get("status_code")?,
                    row.try_get("response")?,
                    row.try_get("age")?,
                )),
            }
        });
        let Some((fingerprint, status, response, age)) = found else {
            return Ok(None);
        };
        let response: Option<Value> = response
            .map(|r| serde_json::from_str(&r))
            .transpose()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let response = match (status, response) {
            (Some(s), Some(body)) => Some((
                u16::try_from(s).map_err(|_| StoreError::Corrupt("status".into()))?,
                body,
            )),
            _ => None,
        };
        Ok(Some(IdempotencyRecord {
            fingerprint,
            response,
            age: Duration::from_secs_f64(age.max(0.0)),
        }))
    }

    /// Stores the response of the request that owns `key`.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn complete(
        &self,
        principal: &str,
        key: &str,
        status: u16,
        response: &Value,
    ) -> Result<(), StoreError> {
        let sql = "UPDATE idempotency_keys SET state = 'done', status_code = $1, response = $2 \
                   WHERE principal = $3 AND key = $4";
        match &self.db {
            Database::Postgres(p) => {
                sqlx::query(sql)
                    .bind(i32::from(status))
                    .bind(response)
                    .bind(principal)
                    .bind(key)
                    .execute(p)
                    .await?;
            }
            Database::Sqlite(p) => {
                sqlx::query(sql)
                    .bind(i32::from(status))
                    .bind(response.to_string())
                    .bind(principal)
                    .bind(key)
                    .execute(p)
                    .await?;
            }
        }
        Ok(())
    }

    /// Releases a key whose request failed without a response worth replaying
    /// (an internal error), so a retry can execute.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn abandon(&self, principal: &str, key: &str) -> Result<(), StoreError> {
        let sql =
            "DELETE FROM idempotency_keys WHERE principal = $1 AND key = $2 AND state = 'pending'";
        on_pool!(&self.db, |p| {
            sqlx::query(sql)
                .bind(principal)
                .bind(key)
                .execute(p)
                .await?;
        });
        Ok(())
    }

    /// Takes over a key left pending for longer than `stale_after` (its
    /// request's process died). Exactly one of concurrent callers wins.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn take_over(
        &self,
        principal: &str,
        key: &str,
        stale_after: Duration,
    ) -> Result<bool, StoreError> {
        let secs = stale_after.as_secs_f64();
        let sql = self.db.dialect(
            "UPDATE idempotency_keys SET created_at = clock_timestamp() \
             WHERE principal = $1 AND key = $2 AND state = 'pending' \
               AND created_at < clock_timestamp() - make_interval(secs => $3)",
            "UPDATE idempotency_keys SET created_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') \
             WHERE principal = $1 AND key = $2 AND state = 'pending' \
               AND (julianday('now') - julianday(created_at)) * 86400.0 > $3",
        );
        let affected = on_pool!(&self.db, |p| {
            sqlx::query(sql)
                .bind(principal)
                .bind(key)
                .bind(secs)
                .execute(p)
                .await?
                .rows_affected()
        });
        Ok(affected == 1)
    }

    /// Deletes finished keys older than `age`; returns how many.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn purge_older_than(&self, age: Duration) -> Result<u64, StoreError> {
        let secs = age.as_secs_f64();
        let sql = self.db.dialect(
            "DELETE FROM idempotency_keys WHERE created_at < clock_timestamp() - make_interval(secs => $1)",
            "DELETE FROM idempotency_keys WHERE (julianday('now') - julianday(created_at)) * 86400.0 > $1",
        );
        Ok(on_pool!(&self.db, |p| {
            sqlx::query(sql)
                .bind(secs)
                .execute(p)
                .await?
                .rows_affected()
        }))
    }
}
