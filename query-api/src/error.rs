//! GraphQL errors with a machine-readable `extensions.code`, in one place.
//! Internal errors are logged with their cause and shown as `INTERNAL`,
//! never with SQL or other internals.

use async_graphql::{Error, ErrorExtensions};

/// `UNAUTHENTICATED`: no valid token.
pub fn unauthenticated(message: &str) -> Error {
    Error::new(message).extend_with(|_, e| e.set("code", "UNAUTHENTICATED"))
}

/// `FORBIDDEN`: the caller's role may not read this.
pub fn forbidden(message: &str) -> Error {
    Error::new(message).extend_with(|_, e| e.set("code", "FORBIDDEN"))
}

/// `NOT_FOUND`: unknown, or another customer's.
pub fn not_found(what: &str) -> Error {
    Error::new(format!("{what} not found")).extend_with(|_, e| e.set("code", "NOT_FOUND"))
}

/// `BAD_USER_INPUT`: an argument breaks a rule.
pub fn bad_input(message: impl Into<String>) -> Error {
    Error::new(message.into()).extend_with(|_, e| e.set("code", "BAD_USER_INPUT"))
}

/// `INTERNAL`: logged with its cause, shown bare.
pub fn internal(cause: &dyn std::fmt::Display) -> Error {
    tracing::error!(%cause, "query failed");
    Error::new("internal error").extend_with(|_, e| e.set("code", "INTERNAL"))
}

/// An authorization failure as a GraphQL error.
pub fn auth(e: auth::AuthError) -> Error {
    match e {
        auth::AuthError::Unauthenticated(m) => unauthenticated(&m),
        auth::AuthError::Forbidden(m) => forbidden(&m),
    }
}
