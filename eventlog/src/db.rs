use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

use crate::StoreError;

/// Which store a [`Database`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// Pool settings.
#[derive(Debug, Clone)]
pub struct DatabaseOptions {
    /// Most connections the pool opens.
    pub max_connections: u32,
    /// How long a caller waits for a free connection.
    pub acquire_timeout: Duration,
}

impl Default for DatabaseOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            // A caller answers "unavailable" this soon when the database is
            // down, rather than holding its client for the driver's 30 s.
            acquire_timeout: Duration::from_secs(2),
        }
    }
}

/// Pool settings for PostgreSQL: no ping round trip before every
/// statement under load; only a connection idle for a while (the server
/// may have restarted meanwhile) is checked before use.
pub(crate) fn pg_pool(max_connections: u32, acquire_timeout: Duration) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(acquire_timeout)
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for > IDLE_CHECK {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
}

/// A connection pool to the event store and its side tables.
#[derive(Debug, Clone)]
pub enum Database {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// Runs one body on whichever pool a [`Database`] holds: a statement shared
/// by both backends is written once. sqlx's executors are typed per
/// backend, so the body is compiled once per arm; where only the SQL text
/// differs, pick it with [`Database::dialect`].
macro_rules! on_pool {
    ($db:expr, |$pool:ident| $body:expr) => {
        match $db {
            $crate::Database::Postgres($pool) => $body,
            $crate::Database::Sqlite($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

/// The `VALUES` list of a multi-row insert: `rows` tuples of one numbered
/// parameter per entry of `casts`, each followed by its cast (`""` for none):
/// `values_rows(2, &["", "::json"])` is `($1, $2::json), ($3, $4::json)`.
pub fn values_rows(rows: usize, casts: &[&str]) -> String {
    let width = casts.len();
    (0..rows)
        .map(|r| {
            let params: Vec<String> = casts
                .iter()
                .enumerate()
                .map(|(c, cast)| format!("${}{cast}", r * width + c + 1))
                .collect();
            format!("({})", params.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Pooled connections idle longer than this are pinged before use.
pub const IDLE_CHECK: Duration = Duration::from_secs(1);

/// SQLite takes one writer at a time; a second writer sleeps in the busy
/// handler (up to 100 ms per try), which made the embedded profile's tail
/// latency. The hot writers of one process (command appends, projector
/// batches) take turns here instead, first come first served.
static SQLITE_WRITES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Waits for this process's turn to write to SQLite; hold the guard for
/// the whole write transaction. Take it before acquiring a connection for
/// the write, and never while holding one.
pub async fn sqlite_write_turn() -> tokio::sync::MutexGuard<'static, ()> {
    SQLITE_WRITES.lock().await
}

impl Database {
    /// Connects to `url`: `postgres://…` / `postgresql://…`, or
    /// `sqlite://PATH` (the file is created when missing).
    ///
    /// # Errors
    /// [`StoreError::UnsupportedUrl`] for other schemes, [`StoreError::Database`]
    /// when the database cannot be reached.
    pub async fn connect(url: &str, options: &DatabaseOptions) -> Result<Self, StoreError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let connect = PgConnectOptions::from_str(url)?;
            let pool = pg_pool(options.max_connections, options.acquire_timeout)
                .connect_with(connect)
                .await?;
            Ok(Self::Postgres(pool))
        } else if url.starts_with("sqlite:") {
            let connect = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // FULL: an acknowledged command survives power loss, not only a crash.
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(Duration::from_secs(10))
                // Deleted and overwritten content is zeroed, so a forgotten
                // user's data key and read-model rows leave no trace in the file.
                .pragma("secure_delete", "ON")
                .foreign_keys(true);
            let pool = SqlitePoolOptions::new()
                .max_connections(options.max_connections.min(8))
                .acquire_timeout(options.acquire_timeout)
                .connect_with(connect)
                .await?;
            Ok(Self::Sqlite(pool))
        } else {
            Err(StoreError::UnsupportedUrl(redact(url)))
        }
    }

    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        match self {
            Self::Postgres(_) => Backend::Postgres,
            Self::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// The SQL text for this backend, where PostgreSQL's and SQLite's differ
    /// (clock and interval functions); the rest of the statement is shared.
    pub(crate) fn dialect<'a>(&self, postgres: &'a str, sqlite: &'a str) -> &'a str {
        match self {
            Self::Postgres(_) => postgres,
            Self::Sqlite(_) => sqlite,
        }
    }

    /// The casts of a row of parameters on this backend: PostgreSQL's for
    /// the columns that need one (`::json`, `::uuid`, `::timestamptz`),
    /// none for SQLite.
    pub fn casts<'a>(&self, postgres: &[&'a str]) -> Vec<&'a str> {
        match self {
            Self::Postgres(_) => postgres.to_vec(),
            Self::Sqlite(_) => vec![""; postgres.len()],
        }
    }

    /// Applies the migrations in `migrations/postgres` or `migrations/sqlite`.
    ///
    /// # Errors
    /// [`StoreError::Migration`] when a migration fails or the recorded
    /// history does not match the files.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match self {
            Self::Postgres(pool) => sqlx::migrate!("../migrations/postgres").run(pool).await?,
            Self::Sqlite(pool) => sqlx::migrate!("../migrations/sqlite").run(pool).await?,
        }
        Ok(())
    }

    /// One round trip to the database (readiness).
    ///
    /// # Errors
    /// [`StoreError::Database`] when the database does not answer.
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_pool!(self, |pool| {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }

    /// Connections open and idle in the pool (pool saturation).
    pub fn pool_stats(&self) -> (u32, usize) {
        on_pool!(self, |pool| (pool.size(), pool.num_idle()))
    }

    /// Closes the pool, waiting for connections in use.
    pub async fn close(&self) {
        on_pool!(self, |pool| pool.close().await)
    }
}

/// `scheme://user:secret@host` → `scheme://user:***@host`, for error messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_passwords() {
        assert_eq!(super::redact("mysql://u:p@h/db"), "mysql://u:***@h/db");
        assert_eq!(super::redact("nope"), "nope");
    }

    #[test]
    fn values_rows_numbers_parameters_row_by_row() {
        assert_eq!(
            super::values_rows(2, &["", "::json"]),
            "($1, $2::json), ($3, $4::json)"
        );
        assert_eq!(super::values_rows(1, &[""; 3]), "($1, $2, $3)");
    }
}
