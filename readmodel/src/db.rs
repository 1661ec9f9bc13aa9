//! The read-model database: one `sqlx::Any` pool over PostgreSQL or SQLite,
//! and the generic row operations every read model's store uses (JSON
//! document rows with indexed columns, additive counters), written in the
//! SQL both backends share.

use std::collections::{BTreeMap, HashMap};

use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyPool, Row, Transaction};

use crate::ProjectionError;

/// A transaction on the read-model database.
pub type Tx<'c> = Transaction<'c, Any>;

/// Rows per multi-row statement (well under SQLite's parameter limit).
const CHUNK: usize = 200;

/// The read-model database.
#[derive(Debug, Clone)]
pub struct ReadDb {
    pool: AnyPool,
    postgres: bool,
}

/// A value bound into SQL.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    Text(String),
    Int(i64),
    Null,
}

/// How long a caller waits for a free read-model connection by default.
pub const DEFAULT_ACQUIRE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

impl ReadDb {
    /// Connects to the same database as the event store.
    ///
    /// # Errors
    /// When the database cannot be reached.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, ProjectionError> {
        Self::connect_with(url, max_connections, DEFAULT_ACQUIRE_TIMEOUT).await
    }

    /// [`ReadDb::connect`], waiting at most `acquire_timeout` for a free
    /// connection (a query then fails fast as unavailable instead of
    /// hanging while the database is down).
    ///
    /// # Errors
    /// When the database cannot be reached.
    pub async fn connect_with(
        url: &str,
        max_connections: u32,
        acquire_timeout: std::time::Duration,
    ) -> Result<Self, ProjectionError> {
        sqlx::any::install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(acquire_timeout)
            // No ping round trip before every statement under load; idle
            // connections are checked (see eventlog's pool).
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for > eventlog::IDLE_CHECK {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .connect(url)
            .await?;
        Ok(Self {
            pool,
            postgres: url.starts_with("postgres"),
        })
    }

    /// The pool.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Whether this is PostgreSQL (else SQLite).
    pub fn is_postgres(&self) -> bool {
        self.postgres
    }

    /// Begins a transaction.
    ///
    /// # Errors
    /// When no connection is available.
    pub async fn begin(&self) -> Result<Tx<'static>, ProjectionError> {
        if self.postgres {
            Ok(self.pool.begin().await?)
        } else {
            // A read-then-write SQLite transaction that started deferred fails
            // with SQLITE_BUSY_SNAPSHOT when another writer committed in
            // between; taking the write lock up front makes writers queue.
            Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
        }
    }

    /// Begins a transaction that writes a batch of read-model rows and its
    /// checkpoint. On Postgres it commits without waiting for the WAL flush
    /// (`synchronous_commit = off`): it is still atomic, so a database crash
    /// can only lose the last moments of rows *together with* their
    /// checkpoint, and the projection folds those events again from the
    /// store, which is the truth (appends stay synchronous). On SQLite, as
    /// [`ReadDb::begin`].
    ///
    /// # Errors
    /// When no connection is available.
    pub async fn begin_batch(&self) -> Result<Tx<'static>, ProjectionError> {
        if self.postgres {
            Ok(self
                .pool
                .begin_with("BEGIN; SET LOCAL synchronous_commit = off")
                .await?)
        } else {
            self.begin().await
        }
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn bind_all<'q>(
    mut q: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>,
    values: Vec<SqlValue>,
) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>> {
    for v in values {
        q = match v {
            SqlValue::Text(s) => q.bind(s),
            SqlValue::Int(i) => q.bind(i),
            SqlValue::Null => q.bind(Option::<String>::None),
        };
    }
    q
}

/// `$1, $2, …` placeholders numbered from `start`, in order (SQLite numbers
/// `$N` parameters by first appearance, so they must ascend).
fn placeholders(start: usize, n: usize) -> String {
    (start..start + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A read model row stored as a JSON document plus indexed columns.
pub trait DocRow: Serialize + DeserializeOwned {
    /// Indexed columns besides the key and `doc`, in table order.
    const COLUMNS: &'static [&'static str];
    /// Their values for this row.
    fn column_values(&self) -> Vec<SqlValue>;
}

/// The columns a query reads of a document table: the key, the indexed
/// columns of `T` and the document, in that order (one list, owned by the
/// row type that writes them).
pub fn columns<T: DocRow>(key: &str) -> String {
    let mut all = vec![key];
    all.extend_from_slice(T::COLUMNS);
    all.push("doc");
    all.join(", ")
}

/// Text parameters of a query built clause by clause, numbered in order.
#[derive(Debug, Default)]
pub struct Binds(Vec<String>);

impl Binds {
    /// Adds a parameter and returns its placeholder (`$n`).
    pub fn push(&mut self, value: &str) -> String {
        self.0.push(value.to_string());
        format!("${}", self.0.len())
    }

    /// `WHERE a AND b …`, or nothing without clauses.
    pub fn filter(clauses: &[String]) -> String {
        if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        }
    }

    /// `sql` with the parameters bound.
    pub fn query(self, sql: &str) -> sqlx::query::Query<'_, Any, sqlx::any::AnyArguments<'_>> {
        bind_all(
            sqlx::query(sql),
            self.0.into_iter().map(SqlValue::Text).collect(),
        )
    }
}

/// Loads the documents of `keys` from `table` (generation `g`).
///
/// # Errors
/// Database errors, or an unreadable document.
pub async fn load_docs<T: DocRow>(
    tx: &mut Tx<'_>,
    table: &str,
    key_column: &str,
    g: i64,
    keys: &[String],
) -> Result<HashMap<String, T>, ProjectionError> {
    let mut out = HashMap::new();
    for chunk in keys.chunks(CHUNK) {
        let sql = format!(
            "SELECT {key_column}, doc FROM {table}_g{g} WHERE {key_column} IN ({})",
            placeholders(1, chunk.len())
        );
        let q = bind_all(
            sqlx::query(&sql),
            chunk.iter().cloned().map(SqlValue::Text).collect(),
        );
        for row in q.fetch_all(&mut **tx).await? {
            let key: String = row.try_get(0)?;
            let doc: String = row.try_get(1)?;
            let value = serde_json::from_str(&doc)
                .map_err(|e| ProjectionError::Corrupt(format!("{table} {key}: {e}")))?;
            out.insert(key, value);
        }
    }
    Ok(out)
}

/// Upserts `rows` into `table` (generation `g`): one statement per chunk.
///
/// # Errors
/// Database errors.
pub async fn save_docs<'a, T: DocRow + 'a>(
    tx: &mut Tx<'_>,
    table: &str,
    key_column: &str,
    g: i64,
    rows: impl IntoIterator<Item = (&'a String, &'a T)>,
) -> Result<(), ProjectionError> {
    let rows: Vec<_> = rows.into_iter().collect();
    let mut columns = vec![key_column, "doc"];
    columns.extend_from_slice(T::COLUMNS);
    let updates = columns[1..]
        .iter()
        .map(|c| format!("{c} = excluded.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    for chunk in rows.chunks(CHUNK) {
        let mut values = Vec::with_capacity(chunk.len() * columns.len());
        let mut tuples = Vec::with_capacity(chunk.len());
        for (key, row) in chunk {
            tuples.push(format!(
                "({})",
                placeholders(values.len() + 1, columns.len())
            ));
            values.push(SqlValue::Text((*key).clone()));
            values.push(SqlValue::Text(
                serde_json::to_string(row).map_err(|e| ProjectionError::Corrupt(e.to_string()))?,
            ));
            values.extend(row.column_values());
        }
        let sql = format!(
            "INSERT INTO {table}_g{g} ({}) VALUES {} ON CONFLICT ({key_column}) DO UPDATE SET {updates}",
            columns.join(", "),
            tuples.join(", ")
        );
        bind_all(sqlx::query(&sql), values)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Additive counters for one table: key columns → metric deltas, summed in
/// memory over a batch and written with one upsert per key.
#[derive(Debug, Clone)]
pub struct Counters {
    table: &'static str,
    keys: &'static [&'static str],
    metrics: &'static [&'static str],
    rows: BTreeMap<Vec<String>, Vec<i64>>,
}

impl Counters {
    /// Counters for `table` keyed by `keys`, with `metrics`.
    pub fn new(
        table: &'static str,
        keys: &'static [&'static str],
        metrics: &'static [&'static str],
    ) -> Self {
        Self {
            table,
            keys,
            metrics,
            rows: BTreeMap::new(),
        }
    }

    /// Adds `delta` to `metric` of the row `key`.
    pub fn add(&mut self, key: &[&str], metric: &str, delta: i64) {
        let Some(i) = self.metrics.iter().position(|m| *m == metric) else {
            debug_assert!(false, "unknown metric {metric}");
            return;
        };
        let row = self
            .rows
            .entry(key.iter().map(|k| (*k).to_string()).collect())
            .or_insert_with(|| vec![0; self.metrics.len()]);
        row[i] += delta;
    }

    /// Whether nothing was counted.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The summed deltas (for tests).
    pub fn rows(&self) -> &BTreeMap<Vec<String>, Vec<i64>> {
        &self.rows
    }

    /// Writes the deltas into generation `g`.
    ///
    /// # Errors
    /// Database errors.
    pub async fn save(&self, tx: &mut Tx<'_>, g: i64) -> Result<(), ProjectionError> {
        let rows: Vec<_> = self.rows.iter().collect();
        let width = self.keys.len() + self.metrics.len();
        let table = self.table;
        let updates = self
            .metrics
            .iter()
            .map(|m| format!("{m} = {table}_g{g}.{m} + excluded.{m}"))
            .collect::<Vec<_>>()
            .join(", ");
        let columns = [self.keys, self.metrics].concat().join(", ");
        for chunk in rows.chunks(CHUNK) {
            let mut values = Vec::with_capacity(chunk.len() * width);
            let mut tuples = Vec::with_capacity(chunk.len());
            for (key, deltas) in chunk {
                tuples.push(format!("({})", placeholders(values.len() + 1, width)));
                values.extend(key.iter().cloned().map(SqlValue::Text));
                values.extend(deltas.iter().copied().map(SqlValue::Int));
            }
            let sql = format!(
                "INSERT INTO {table}_g{g} ({columns}) VALUES {} ON CONFLICT ({}) DO UPDATE SET {updates}",
                tuples.join(", "),
                self.keys.join(", ")
            );
            bind_all(sqlx::query(&sql), values)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }
}

/// Row count and a SHA-256 over every row (in key order) of one table.
///
/// # Errors
/// Database errors.
pub async fn table_checksum(
    pool: &AnyPool,
    table: &str,
    order_by: &str,
) -> Result<(i64, String), ProjectionError> {
    use sha2::{Digest, Sha256};
    let rows: Vec<AnyRow> = sqlx::query(&format!("SELECT * FROM {table} ORDER BY {order_by}"))
        .fetch_all(pool)
        .await?;
    let mut hash = Sha256::new();
    for row in &rows {
        for i in 0..row.len() {
            let cell = match row.try_get::<Option<String>, _>(i) {
                Ok(v) => v,
                Err(_) => row
                    .try_get::<Option<i64>, _>(i)
                    .ok()
                    .flatten()
                    .map(|n| n.to_string()),
            };
            match cell {
                Some(c) => hash.update(c.as_bytes()),
                None => hash.update(b"\x00null"),
            }
            hash.update(b"\x1f");
        }
        hash.update(b"\x1e");
    }
    let digest = hash
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    Ok((rows.len() as i64, digest))
}
