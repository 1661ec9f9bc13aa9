//! GraphQL errors with a machine-readable `extensions.code`, in one place.
//! Internal errors are logged with their cause and shown as `INTERNAL`,
//! never with SQL or other internals.

use async_graphql::{Error, ErrorExtensions};
use axum::response::{IntoResponse, Response};

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

/// `INTERNAL`: logged with its cause, shown bare; or `UNAVAILABLE` when
/// the cause is an unreachable database (a retry will do once it is back).
pub fn internal<E: std::error::Error + 'static>(cause: &E) -> Error {
    if unreachable(cause) {
        tracing::warn!(%cause, "read models unavailable");
        return Error::new("the read models cannot be reached; try again shortly")
            .extend_with(|_, e| e.set("code", "UNAVAILABLE"));
    }
    tracing::error!(%cause, "query failed");
    Error::new("internal error").extend_with(|_, e| e.set("code", "INTERNAL"))
}

/// Whether a database error anywhere in `cause`'s chain says the database
/// is unreachable.
fn unreachable(cause: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(cause);
    while let Some(e) = next {
        if e.downcast_ref::<sqlx::Error>()
            .is_some_and(eventlog::is_unreachable)
        {
            return true;
        }
        next = e.source();
    }
    false
}

/// An authorization failure as a GraphQL error.
pub fn auth(e: auth::AuthError) -> Error {
    match e {
        auth::AuthError::Unauthenticated(m) => unauthenticated(&m),
        auth::AuthError::Forbidden(m) => forbidden(&m),
        auth::AuthError::Unavailable(m) => {
            Error::new(m).extend_with(|_, e| e.set("code", "UNAVAILABLE"))
        }
    }
}

/// A problem document for the HTTP-level refusals of `/graphql`.
pub(crate) fn refusal(status: axum::http::StatusCode, code: &str, detail: &str) -> Response {
    let body = serde_json::json!({
        "type": format!("urn:shopstream:problem:{code}"),
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
    });
    let mut response = (status, axum::Json(body)).into_response();
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/problem+json"),
    );
    response
}

/// The refusal of a WebSocket upgrade whose token is not accepted: `401`
/// with `WWW-Authenticate`, or `503` while tokens cannot be checked.
pub(crate) fn auth_refusal(e: auth::AuthError) -> Response {
    use axum::http::{header, HeaderValue, StatusCode};
    if let auth::AuthError::Unavailable(m) = e {
        return refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "authentication_unavailable",
            &m,
        );
    }
    let mut response = refusal(StatusCode::UNAUTHORIZED, "unauthenticated", &e.to_string());
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}
