/// What can stop a projection.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    /// The read-model database failed.
    #[error("read-model database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Reading the event log failed.
    #[error("event store error: {0}")]
    Store(#[from] eventlog::StoreError),
    /// An event could not be folded (a poison event). The projection stops
    /// here rather than skip it.
    #[error("event at position {position} cannot be folded: {message}")]
    Poison { position: i64, message: String },
    /// Another runner advanced this generation's checkpoint first.
    #[error("the checkpoint moved concurrently")]
    CheckpointMoved,
    /// A stored document could not be read back.
    #[error("stored read-model row is unreadable: {0}")]
    Corrupt(String),
    /// No projection has this name.
    #[error("no projection named '{0}'")]
    Unknown(String),
}

/// Why one event could not be folded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FoldError(pub String);

impl FoldError {
    /// A fold error with a message.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}
