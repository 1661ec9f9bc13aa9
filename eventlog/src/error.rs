/// What can go wrong talking to the event store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another command appended to the aggregate first (optimistic concurrency).
    #[error("the aggregate was changed concurrently")]
    Conflict,
    /// A command was decided on a cached state, or on a fact of another
    /// aggregate, that the store has moved past: decide it again on what
    /// the store holds.
    #[error("the command was decided on a stale state")]
    Stale,
    /// The database failed or is unreachable.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Applying migrations failed.
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// A stored payload could not be read back.
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    /// Any other failure inside postgres-es / sqlite-es.
    #[error("event store error: {0}")]
    Backend(String),
    /// The user was forgotten: their data key is gone, nothing of theirs
    /// can be sealed or read again.
    #[error("the user was forgotten")]
    Forgotten,
    /// A data key or a sealed value cannot be opened, or the master key
    /// file is unusable.
    #[error("data protection: {0}")]
    Protection(String),
    /// The database URL is not one shopstream can use.
    #[error("unsupported database URL '{0}': use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
}

impl StoreError {
    /// Whether the database could not be reached (as opposed to a failure
    /// of a statement): callers answer "unavailable, retry" rather than
    /// "internal error".
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Database(e) if is_unreachable(e))
    }
}

/// Whether `e` says the database could not be reached or is going away
/// (no free connection in time, a broken socket, a server shutting down or
/// starting up), as opposed to a statement that failed. Such a call is
/// safe to repeat once the database is back.
pub fn is_unreachable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        // SQLSTATE class 08: connection exception; 57P01–57P03: admin
        // shutdown, crash shutdown, cannot connect now; 53300: too many
        // connections.
        sqlx::Error::Database(db) => db.code().is_some_and(|c| {
            c.starts_with("08") || matches!(c.as_ref(), "57P01" | "57P02" | "57P03" | "53300")
        }),
        _ => false,
    }
}
