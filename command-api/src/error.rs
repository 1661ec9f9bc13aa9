//! The one place where errors become HTTP responses: RFC 9457 problem
//! details (`application/problem+json`).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use commands::CommandError;
use domain::{DomainError, ErrorKind};
use serde::Serialize;
use utoipa::ToSchema;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// One invalid field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// Dotted path of the field (`shipping_address.city`), `$` for the whole body.
    pub field: String,
    /// Stable rule code (`invalid_email`, `required`, ...).
    pub rule: String,
    /// Human-readable explanation.
    pub message: String,
}

impl From<domain::ValidationError> for FieldError {
    fn from(e: domain::ValidationError) -> Self {
        Self {
            field: e.field.to_string(),
            rule: e.rule.to_string(),
            message: e.message,
        }
    }
}

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// URI naming the problem type (`urn:shopstream:problem:<code>`).
    #[serde(rename = "type")]
    pub type_uri: String,
    /// Short summary of the problem type.
    pub title: String,
    /// HTTP status code.
    pub status: u16,
    /// What went wrong with this request.
    pub detail: String,
    /// Stable code of the broken rule, when a rule was broken.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Per-field validation errors.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// The request id (also in the `X-Request-Id` header); filled in by the
    /// request-id middleware.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The aggregate's current version (412 responses).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_version: Option<u64>,
}

/// Everything a command request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the request body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("invalid request")]
    Validation(Vec<FieldError>),
    #[error("the request body must be application/json")]
    UnsupportedMediaType,
    #[error("the request body exceeds {0} bytes")]
    PayloadTooLarge(usize),
    #[error("invalid header {header}: {message}")]
    BadHeader {
        header: &'static str,
        message: String,
    },
    #[error("{0}")]
    Unauthenticated(String),
    /// The token cannot be checked now (the identity provider's keys are
    /// not known yet); nothing was done.
    #[error("{0}")]
    AuthUnavailable(String),
    #[error("this Idempotency-Key was used with a different request")]
    IdempotencyKeyReused,
    #[error("a request with this Idempotency-Key is still being processed; retry shortly")]
    IdempotencyKeyInFlight,
    /// What the command core refused or failed with (forbidden, not found,
    /// a broken rule, a conflict, a stale `If-Match`, a taken address, the
    /// store unavailable, an internal failure).
    #[error(transparent)]
    Command(CommandError),
}

impl From<auth::AuthError> for ApiError {
    fn from(e: auth::AuthError) -> Self {
        match e {
            auth::AuthError::Unauthenticated(m) => Self::Unauthenticated(m),
            auth::AuthError::Forbidden(m) => Self::Command(CommandError::Forbidden(m)),
            auth::AuthError::Unavailable(m) => Self::AuthUnavailable(m),
        }
    }
}

impl From<CommandError> for ApiError {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::Invalid(v) => Self::Validation(vec![v.into()]),
            other => Self::Command(other),
        }
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        Self::Command(CommandError::Rule(e))
    }
}

impl From<eventlog::StoreError> for ApiError {
    fn from(e: eventlog::StoreError) -> Self {
        Self::Command(e.into())
    }
}

impl ApiError {
    /// Nothing here by that name (or nothing the caller may see).
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::Command(CommandError::NotFound(message.into()))
    }

    /// A failure the caller cannot fix; logged with its cause, shown bare.
    pub fn internal(cause: impl Into<String>) -> Self {
        Self::Command(CommandError::Internal(cause.into()))
    }
    /// A single-field validation error.
    pub fn field(field: &str, rule: &str, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError {
            field: field.to_string(),
            rule: rule.to_string(),
            message: message.into(),
        }])
    }

    /// The HTTP status and the problem code of this error.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        use StatusCode as S;
        match self {
            Self::MalformedJson(_) => (S::BAD_REQUEST, "malformed_json"),
            Self::Validation(_) => (S::UNPROCESSABLE_ENTITY, "validation"),
            Self::UnsupportedMediaType => (S::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            Self::PayloadTooLarge(_) => (S::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::BadHeader { .. } => (S::BAD_REQUEST, "bad_header"),
            Self::Unauthenticated(_) => (S::UNAUTHORIZED, "unauthenticated"),
            Self::AuthUnavailable(_) => (S::SERVICE_UNAVAILABLE, "authentication_unavailable"),
            Self::Command(c) => command_status(c),
            Self::IdempotencyKeyReused => (S::UNPROCESSABLE_ENTITY, "idempotency_key_reused"),
            Self::IdempotencyKeyInFlight => (S::CONFLICT, "idempotency_key_in_flight"),
        }
    }

    /// The problem document for this error.
    pub fn problem(&self) -> Problem {
        let (status, code) = self.status_and_code();
        let mut p = problem(status, code, &self.to_string());
        match self {
            Self::Validation(errors) => {
                p.detail = match errors.as_slice() {
                    [one] => format!("{}: {}", one.field, one.message),
                    many => format!("{} fields are invalid", many.len()),
                };
                p.errors = errors.clone();
            }
            Self::Command(CommandError::Rule(e)) => {
                p.rule = Some(e.rule.to_string());
                if let Some(field) = e.field {
                    p.errors = vec![FieldError {
                        field: field.to_string(),
                        rule: e.rule.to_string(),
                        message: e.message.clone(),
                    }];
                }
            }
            Self::Command(CommandError::PreconditionFailed { current, .. }) => {
                p.current_version = Some(*current)
            }
            Self::Command(CommandError::EmailTaken) => {
                p.errors = vec![FieldError {
                    field: "email".into(),
                    rule: "email_taken".into(),
                    message: "another user has registered this address".into(),
                }]
            }
            _ => {}
        }
        p
    }
}

/// The HTTP status and problem code of what the command core refused.
fn command_status(e: &CommandError) -> (StatusCode, &'static str) {
    use StatusCode as S;
    match e {
        CommandError::Invalid(_) => (S::UNPROCESSABLE_ENTITY, "validation"),
        CommandError::Forbidden(_) => (S::FORBIDDEN, "forbidden"),
        CommandError::NotFound(_) => (S::NOT_FOUND, "not_found"),
        CommandError::Rule(e) if e.kind == ErrorKind::Invalid => {
            (S::UNPROCESSABLE_ENTITY, "rule_violation")
        }
        CommandError::Rule(_) => (S::CONFLICT, "rule_violation"),
        CommandError::ConcurrentModification => (S::CONFLICT, "concurrent_modification"),
        CommandError::PreconditionFailed { .. } => (S::PRECONDITION_FAILED, "precondition_failed"),
        CommandError::EmailTaken => (S::CONFLICT, "email_taken"),
        CommandError::IdentityTaken(_) => (S::CONFLICT, "identity_taken"),
        CommandError::Internal(_) => (S::INTERNAL_SERVER_ERROR, "internal"),
        CommandError::Unavailable(_) => (S::SERVICE_UNAVAILABLE, "unavailable"),
    }
}

/// A problem document for `status` with problem code `code`.
pub fn problem(status: StatusCode, code: &str, detail: &str) -> Problem {
    Problem {
        type_uri: format!("urn:shopstream:problem:{code}"),
        title: status.canonical_reason().unwrap_or("Error").to_string(),
        status: status.as_u16(),
        detail: detail.to_string(),
        rule: None,
        errors: Vec::new(),
        request_id: None,
        current_version: None,
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (status, body).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        response
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            // Internals are logged with their cause, never shown.
            Self::Command(CommandError::Internal(cause)) => {
                tracing::error!(%cause, "request failed")
            }
            Self::Command(CommandError::Unavailable(cause)) => {
                tracing::warn!(%cause, "event store unavailable")
            }
            Self::AuthUnavailable(cause) => tracing::warn!(%cause, "cannot check a token"),
            _ => {}
        }
        let mut response = self.problem().into_response();
        match self {
            Self::Unauthenticated(_) => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Self::IdempotencyKeyInFlight
            | Self::AuthUnavailable(_)
            | Self::Command(CommandError::Unavailable(_)) => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        response
    }
}
