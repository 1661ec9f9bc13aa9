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
    /// The database URL is not one shopstream can use.
    #[error("unsupported database URL '{0}': use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
}

impl StoreError {
    /// Whether the database could not be reached (as opposed to a failure
    /// of a statement): callers answer "unavailable, retry" rather than
    /// "internal error".
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Self::Database(
                sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_)
            )
        )
    }
}
