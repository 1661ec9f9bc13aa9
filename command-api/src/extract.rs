//! Extractors that turn raw requests into typed input, or into a problem
//! document naming what is wrong: JSON bodies, `If-Match`, command context.

use axum::body::Bytes;
use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::header::{CONTENT_TYPE, IF_MATCH};
use axum::http::request::Parts;
use commands::{CommandContext, Commands};
use serde::de::DeserializeOwned;
use std::sync::Arc;
use uuid::Uuid;

use crate::auth::{Caller, Principal};
use crate::error::{ApiError, FieldError};
use crate::idempotency::IdempotencyScope;
use crate::request_id::RequestId;

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A JSON body parsed strictly: `application/json` only, unknown fields and
/// wrong types reported per field (422), broken JSON reported as 400.
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers().get(CONTENT_TYPE)) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|_| ApiError::PayloadTooLarge(MAX_BODY_BYTES))?;
        parse_json(&bytes).map(JsonBody)
    }
}

fn is_json(content_type: Option<&axum::http::HeaderValue>) -> bool {
    let Some(value) = content_type.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Parses `bytes` as a `T`, classifying failures.
///
/// # Errors
/// [`ApiError::MalformedJson`] for syntax errors, [`ApiError::Validation`]
/// naming the field for unknown fields, missing fields and wrong types.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::MalformedJson(strip_position(&e.to_string())))?;
    // Bodies are objects; serde would also accept a struct as an array.
    if !value.is_object() {
        return Err(ApiError::field(
            "$",
            "wrong_type",
            "the body must be a JSON object",
        ));
    }
    serde_path_to_error::deserialize::<_, T>(value).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        ApiError::Validation(vec![FieldError {
            field: if path == "." { "$".to_string() } else { path },
            rule: data_rule(&message).to_string(),
            message: strip_position(&message),
        }])
    })
}

fn data_rule(message: &str) -> &'static str {
    if message.starts_with("unknown field") {
        "unknown_field"
    } else if message.starts_with("missing field") {
        "required"
    } else if message.starts_with("invalid type") {
        "wrong_type"
    } else {
        "invalid_value"
    }
}

/// serde_json appends " at line 1 column 12"; keep the message readable.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

/// The command context of a request (`commands::CommandContext`): its
/// request id, `X-Correlation-Id` (else the request id), `If-Match`, the
/// caller-scoped idempotency key and the trace.
#[derive(Debug, Clone)]
pub struct Context(pub CommandContext);

impl<S: Send + Sync> FromRequestParts<S> for Context {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let request_id = parts
            .extensions
            .get::<RequestId>()
            .map_or_else(|| Uuid::new_v4().to_string(), |r| r.0.clone());
        let correlation_id = match parts.headers.get("x-correlation-id") {
            Some(v) => {
                let s = v
                    .to_str()
                    .map_err(|_| bad("X-Correlation-Id", "must be visible ASCII"))?;
                if s.is_empty() || s.len() > 128 {
                    return Err(bad("X-Correlation-Id", "must be 1 to 128 characters"));
                }
                s.to_string()
            }
            None => request_id.clone(),
        };
        // Every later log line of the request carries it too.
        tracing::Span::current().record("correlation_id", correlation_id.as_str());
        let expected_version = match parts.headers.get(IF_MATCH) {
            None => None,
            Some(v) => Some(parse_if_match(v.to_str().unwrap_or(""))?),
        };
        let idempotency_key = parts
            .extensions
            .get::<IdempotencyScope>()
            .map(|s| s.0.clone());
        Ok(Self(CommandContext {
            request_id,
            correlation_id,
            expected_version,
            idempotency_key,
            causation_id: None,
            traceparent: telemetry::current_traceparent().or_else(|| {
                parts
                    .headers
                    .get(telemetry::TRACEPARENT)
                    .and_then(|v| v.to_str().ok())
                    .filter(|v| telemetry::valid_traceparent(v))
                    .map(str::to_string)
            }),
        }))
    }
}

fn bad(header: &'static str, message: &str) -> ApiError {
    ApiError::BadHeader {
        header,
        message: message.to_string(),
    }
}

/// `"7"`, `W/"7"` or `7` → 7.
fn parse_if_match(raw: &str) -> Result<u64, ApiError> {
    let s = raw.trim();
    let s = s.strip_prefix("W/").unwrap_or(s);
    let s = s
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(s);
    s.parse().map_err(|_| {
        bad(
            "If-Match",
            "must be the quoted version from an ETag, e.g. \"3\"",
        )
    })
}

/// Everything a command handler needs besides its path and body: the
/// command core, the authenticated caller (401 first) and the request's
/// command context.
pub struct Invocation {
    pub commands: Arc<Commands>,
    pub principal: Principal,
    pub ctx: CommandContext,
}

impl<S> FromRequestParts<S> for Invocation
where
    Arc<Commands>: FromRef<S>,
    Arc<crate::auth::Authenticator>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Caller(principal) = Caller::from_request_parts(parts, state).await?;
        let Context(ctx) = Context::from_request_parts(parts, state).await?;
        Ok(Self {
            commands: Arc::<Commands>::from_ref(state),
            principal,
            ctx,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        quantity: u32,
    }

    fn err(json: &str) -> ApiError {
        parse_json::<Body>(json.as_bytes()).expect_err("must fail")
    }

    #[test]
    fn classifies_json_failures() {
        assert!(matches!(err("{"), ApiError::MalformedJson(_)));
        assert!(matches!(
            err(r#"{"name":"a","quantity":1} x"#),
            ApiError::MalformedJson(_)
        ));
        let ApiError::Validation(e) = err(r#"{"name":"a","quantity":1,"x":1}"#) else {
            panic!()
        };
        assert_eq!(
            (e[0].field.as_str(), e[0].rule.as_str()),
            ("x", "unknown_field")
        );
        let ApiError::Validation(e) = err(r#"{"name":"a","quantity":"1"}"#) else {
            panic!()
        };
        assert_eq!(
            (e[0].field.as_str(), e[0].rule.as_str()),
            ("quantity", "wrong_type")
        );
        let ApiError::Validation(e) = err(r#"{"name":"a","quantity":-1}"#) else {
            panic!()
        };
        assert_eq!(e[0].field, "quantity");
        let ApiError::Validation(e) = err(r#"{"name":"a"}"#) else {
            panic!()
        };
        assert_eq!((e[0].field.as_str(), e[0].rule.as_str()), ("$", "required"));
        let ApiError::Validation(e) = err("[]") else {
            panic!()
        };
        assert_eq!(e[0].rule, "wrong_type");
    }

    #[test]
    fn if_match_forms() {
        assert_eq!(parse_if_match("\"7\"").ok(), Some(7));
        assert_eq!(parse_if_match("W/\"7\"").ok(), Some(7));
        assert_eq!(parse_if_match("7").ok(), Some(7));
        assert!(parse_if_match("\"x\"").is_err());
        assert!(parse_if_match("*").is_err());
    }

    #[test]
    fn json_media_types() {
        let v = |s: &'static str| axum::http::HeaderValue::from_static(s);
        assert!(is_json(Some(&v("application/json"))));
        assert!(is_json(Some(&v("application/json; charset=utf-8"))));
        assert!(is_json(Some(&v("application/merge-patch+json"))));
        assert!(!is_json(Some(&v("text/plain"))));
        assert!(!is_json(None));
    }
}
