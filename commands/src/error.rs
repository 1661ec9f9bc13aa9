//! [`CommandError`]: everything a command can fail with, whoever sent it.
//! The HTTP edge maps it to problem documents; the saga logs and retries.

use domain::{DomainError, ValidationError};

/// Why a command was refused or failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CommandError {
    /// An input value the command itself found wrong (an unknown product).
    #[error("{}: {}", .0.field, .0.message)]
    Invalid(ValidationError),
    /// The caller's role may not run this command.
    #[error("{0}")]
    Forbidden(String),
    /// The aggregate does not exist, or the caller may not see it.
    #[error("{0}")]
    NotFound(String),
    /// A domain rule refused the command.
    #[error("{0}")]
    Rule(DomainError),
    /// Another command appended to the stream first.
    #[error("the resource was changed by a concurrent request; reload and retry")]
    ConcurrentModification,
    /// The caller's expected version is not the current one.
    #[error("If-Match names version {expected} but the current version is {current}")]
    PreconditionFailed { expected: u64, current: u64 },
    /// Another user holds the e-mail address.
    #[error("the e-mail address is already registered")]
    EmailTaken,
    /// The caller's identity at the identity provider has signed up already.
    #[error("this identity has already signed up (as user {0})")]
    IdentityTaken(String),
    /// The store cannot be reached; nothing was appended.
    #[error("the event store is unavailable")]
    Unavailable(String),
    /// Anything else; the cause is for logs, not for callers.
    #[error("internal error")]
    Internal(String),
}

impl CommandError {
    /// A single-field input error.
    pub fn field(field: &'static str, rule: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid(ValidationError::new(field, rule, message))
    }

    /// Whether an attempt decided on cached state may have failed only
    /// because that state was stale (see [`crate::Commands::run`]).
    pub fn may_be_stale(&self) -> bool {
        matches!(
            self,
            Self::Invalid(_)
                | Self::NotFound(_)
                | Self::Rule(_)
                | Self::ConcurrentModification
                | Self::PreconditionFailed { .. }
        )
    }

    /// The outcome label of `commands_total`.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::Rule(_) => "rejected",
            Self::ConcurrentModification | Self::PreconditionFailed { .. } => "conflict",
            Self::NotFound(_) => "not_found",
            Self::Internal(_) | Self::Unavailable(_) => "error",
            Self::Invalid(_) | Self::Forbidden(_) | Self::EmailTaken | Self::IdentityTaken(_) => {
                "invalid"
            }
        }
    }
}

impl From<DomainError> for CommandError {
    fn from(e: DomainError) -> Self {
        Self::Rule(e)
    }
}

impl From<auth::AuthError> for CommandError {
    fn from(e: auth::AuthError) -> Self {
        match e {
            // A principal exists by the time a command runs; a refusal
            // that says "who are you" is the caller's role, too.
            auth::AuthError::Unauthenticated(m) | auth::AuthError::Forbidden(m) => {
                Self::Forbidden(m)
            }
            auth::AuthError::Unavailable(m) => Self::Unavailable(m),
        }
    }
}

impl From<eventlog::StoreError> for CommandError {
    fn from(e: eventlog::StoreError) -> Self {
        match e {
            eventlog::StoreError::Conflict | eventlog::StoreError::Stale => {
                Self::ConcurrentModification
            }
            eventlog::StoreError::Forgotten => Self::Rule(DomainError::conflict(
                "user_forgotten",
                "the user was forgotten",
            )),
            // A data key wrapped by a master key this process has not
            // loaded yet (a rotation reaching it): retry shortly.
            eventlog::StoreError::Protection(m) => Self::Unavailable(m),
            e if e.is_unavailable() => Self::Unavailable(e.to_string()),
            other => Self::Internal(other.to_string()),
        }
    }
}
