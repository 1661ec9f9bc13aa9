//! The read-model database: one `sqlx::Any` pool over PostgreSQL or SQLite,
//! and the generic row operations every read model's store uses (JSON
//! document rows with indexed columns, additive counters), written in the
//! SQL both backends share.
//!
//! # Layout
//! - `mod.rs`: [`ReadDb`], [`Tx`], [`SqlValue`], binding helpers.
//! - `docs`: document rows ([`DocRow`]): loading and upserting them, query columns, [`Binds`].
//! - `rows`: [`Rows`], a batch's working set of one document table (read rows, changed rows).
//! - `cold`: cold rows of a kept working set, compressed until written out.
//! - `counters`: [`Counters`], additive counters summed over a batch.
//! - `checksum`: [`table_checksum`], what rebuilds compare.
//! - `bulk`: [`BulkTable`], working sets kept across batches by a bulk rebuild, drained into a [`RowSink`].
//! - `copy`: PostgreSQL's binary `COPY` of a drained working set.

pub mod bulk;
mod checksum;
mod cold;
pub mod copy;
mod counters;
mod docs;
mod rows;

use sqlx::any::AnyPoolOptions;
use sqlx::{Any, AnyPool, Transaction};

pub use bulk::BulkTable;
pub use checksum::table_checksum;
pub use counters::Counters;
pub(crate) use docs::doc_row;
pub use docs::{
    columns, doc_parts, doc_shape, doc_values, fetch_by_key, load_docs, save_docs, Binds, DocRow,
};
pub use rows::Rows;

use crate::ProjectionError;

/// A transaction on the read-model database.
pub type Tx<'c> = Transaction<'c, Any>;

/// Rows per multi-row statement (well under SQLite's parameter limit).
pub const CHUNK: usize = 200;

/// Rows up to which a statement whose text grows with its rows stays
/// prepared on its connection (see [`sized_query`]).
pub const KEEP_PREPARED: usize = 16;

/// The read-model database.
#[derive(Debug, Clone)]
pub struct ReadDb {
    pool: AnyPool,
    postgres: bool,
    /// Where to open a dedicated PostgreSQL connection (bulk `COPY`).
    direct: Option<Direct>,
    /// The users' data keys, for the projections that show personal data
    /// (`None`: such a projection stops on the first sealed value).
    keys: Option<eventlog::Keyring>,
}

/// Connection options (with the password, so never printed).
#[derive(Clone)]
struct Direct(sqlx::postgres::PgConnectOptions);

impl std::fmt::Debug for Direct {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Direct(..)")
    }
}

/// A value bound into SQL.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    Text(String),
    Int(i64),
    Null,
}

impl From<&String> for SqlValue {
    fn from(v: &String) -> Self {
        Self::Text(v.clone())
    }
}

impl From<&i64> for SqlValue {
    fn from(v: &i64) -> Self {
        Self::Int(*v)
    }
}

impl From<&Option<String>> for SqlValue {
    fn from(v: &Option<String>) -> Self {
        v.clone().map_or(Self::Null, Self::Text)
    }
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
        let postgres = url.starts_with("postgres");
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
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if !postgres {
                        // A forgotten user's rows leave no trace in the file.
                        sqlx::query("PRAGMA secure_delete = ON")
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await?;
        let direct = match postgres {
            true => Some(Direct(url.parse()?)),
            false => None,
        };
        Ok(Self {
            pool,
            postgres,
            direct,
            keys: None,
        })
    }

    /// The same database, opening sealed personal data with `keys`.
    #[must_use]
    pub fn with_keys(mut self, keys: eventlog::Keyring) -> Self {
        self.keys = Some(keys);
        self
    }

    /// The users' data keys, when this process holds them.
    pub fn keys(&self) -> Option<&eventlog::Keyring> {
        self.keys.as_ref()
    }

    /// Writes SQLite's log back into the file and truncates it, so that
    /// page images of overwritten rows (a forgotten user's) are gone from
    /// disk too. Nothing on PostgreSQL.
    ///
    /// # Errors
    /// Database errors.
    pub async fn purge_log(&self) -> Result<(), ProjectionError> {
        if !self.postgres {
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&self.pool)
                .await?;
        }
        Ok(())
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

    /// A connection of its own to the PostgreSQL read-model database
    /// (for `COPY`, which the shared pool cannot run); `None` on SQLite.
    ///
    /// # Errors
    /// When the database cannot be reached.
    pub async fn connect_direct(&self) -> Result<Option<sqlx::PgConnection>, ProjectionError> {
        use sqlx::ConnectOptions;
        match &self.direct {
            Some(Direct(options)) => Ok(Some(options.connect().await?)),
            None => Ok(None),
        }
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// A statement whose text grows with the rows it holds (an `IN` list, a
/// multi-row `VALUES`). It stays prepared on its connection, like any
/// other statement, when it holds up to [`KEEP_PREPARED`] rows or a full
/// [`CHUNK`] (a large batch's statements but its last); any other size is
/// prepared for this one use.
///
/// Each connection keeps its last 100 statements prepared. Every size up
/// to [`CHUNK`] rows is a statement of its own, with up to thousands of
/// parameters: a Kafka projector catching up kept a hundred such
/// remainders per connection, ~10 MiB of its heap (and as many on the
/// server), and each new one first closed the oldest, a round trip of its
/// own. They are rarely the same size twice, so keeping them saved
/// nothing; the full chunks repeat, and preparing each anew cost a
/// catching-up projector ~15 % of its throughput (`--only scaleout`).
pub(crate) fn sized_query(
    sql: &str,
    rows: usize,
) -> sqlx::query::Query<'_, Any, sqlx::any::AnyArguments<'_>> {
    sqlx::query(sql).persistent(rows <= KEEP_PREPARED || rows == CHUNK)
}

pub(crate) fn bind_all<'q>(
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
pub(crate) fn placeholders(start: usize, n: usize) -> String {
    (start..start + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}
