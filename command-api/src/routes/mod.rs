//! HTTP handlers, one file per resource; each parses a request into domain
//! values and calls the command core (`commands::Commands`), whose
//! [`commands::CommandError`] becomes a problem document at the edge.

pub mod health;
pub mod orders;
pub mod payments;
pub mod products;
pub mod streams;
pub mod users;

use axum::http::header::{ETAG, LOCATION};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use domain::ValidationError;
use serde::Deserialize;
use utoipa::{IntoResponses, ToSchema};

use commands::Done;
use serde::Serialize;

use crate::error::{ApiError, FieldError, Problem};

/// The body of every successful command response.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Accepted {
    /// The aggregate's id (a UUID, or the SKU for products).
    pub id: String,
    /// The aggregate's version after the command; send it back in `If-Match`.
    pub version: u64,
    /// Global position of the last event appended: the consistency token
    /// that reads accept.
    pub position: i64,
}

/// A success response: `201` + `Location` for creations (`created_at`,
/// under which the new resource's id is appended), else `200`; always
/// `ETag: "<version>"` and `{id, version, position}`.
pub fn accepted(done: Done, created_at: Option<&str>) -> Response {
    let status = if created_at.is_some() {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let location = created_at.map(|base| format!("{base}/{}", done.id));
    let body = Accepted {
        id: done.id,
        version: done.version,
        position: done.position,
    };
    let version = body.version;
    let mut response = (status, Json(body)).into_response();
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("\"{version}\"")) {
        headers.insert(ETAG, v);
    }
    if let Some(Ok(v)) = location.map(|l| HeaderValue::from_str(&l)) {
        headers.insert(LOCATION, v);
    }
    response
}

/// Collects field errors so that one response names every invalid field.
#[derive(Default)]
pub struct Fields(Vec<FieldError>);

impl Fields {
    /// Keeps the value, or records its error.
    pub fn take<T>(&mut self, r: Result<T, ValidationError>) -> Option<T> {
        r.map_err(|e| self.0.push(e.into())).ok()
    }

    /// Records several errors at once (e.g. an address).
    pub fn take_many<T>(&mut self, r: Result<T, Vec<ValidationError>>) -> Option<T> {
        r.map_err(|es| self.0.extend(es.into_iter().map(FieldError::from)))
            .ok()
    }

    /// `Ok` when nothing was recorded.
    ///
    /// # Errors
    /// [`ApiError::Validation`] with every recorded error.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.0))
        }
    }
}

/// Unwraps a value that [`Fields::finish`] has vouched for.
pub fn valid<T>(v: Option<T>) -> Result<T, ApiError> {
    v.ok_or_else(|| ApiError::internal("validated value missing"))
}

/// Integer fields that also take a JSON number with a zero fraction
/// (`2.0`): JSON Schema's `integer` includes them, and the OpenAPI document
/// promises what JSON Schema means.
pub mod integral {
    use serde::de::{Deserializer, Error};
    use serde::Deserialize;

    fn number<'de, D: Deserializer<'de>>(d: D) -> Result<serde_json::Number, D::Error> {
        serde_json::Number::deserialize(d)
    }

    /// An `i64`.
    ///
    /// # Errors
    /// When the number has a fraction or is out of range.
    pub fn i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        let n = number(d)?;
        if let Some(v) = n.as_i64() {
            return Ok(v);
        }
        match n.as_f64() {
            // Beyond ±2^53 an f64 is not exact; refuse rather than round.
            Some(f) if f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0 => Ok(f as i64),
            _ => Err(D::Error::custom(format!(
                "invalid type: {n}, expected an integer"
            ))),
        }
    }

    /// A `u32`.
    ///
    /// # Errors
    /// When the number has a fraction or is out of range.
    pub fn u32<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        let v = i64(d)?;
        u32::try_from(v)
            .map_err(|_| D::Error::custom(format!("invalid value: {v}, expected a u32")))
    }
}

/// Money in a request: integer minor units and an ISO 4217 code.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoneyBody {
    /// Amount in minor units (cents), an integer.
    #[schema(example = 1999)]
    #[serde(deserialize_with = "integral::i64")]
    pub amount_minor: i64,
    /// ISO 4217 currency code.
    #[schema(example = "EUR")]
    pub currency: String,
}

/// `{reason}` bodies (cancel, fail).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    /// Why (1..=500 characters).
    pub reason: String,
}

/// The error responses every command can give.
#[allow(dead_code)]
#[derive(IntoResponses)]
pub enum CommandErrors {
    /// Malformed JSON or a bad header.
    #[response(status = 400, content_type = "application/problem+json")]
    BadRequest(Problem),
    /// Missing, invalid or expired bearer token.
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthenticated(Problem),
    /// The caller's role may not do this.
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(Problem),
    /// Unknown resource, or one that belongs to another customer.
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(Problem),
    /// The current state forbids the command (`rule` names the rule), or a concurrent change won.
    #[response(status = 409, content_type = "application/problem+json")]
    Conflict(Problem),
    /// `If-Match` names a version that is no longer current.
    #[response(status = 412, content_type = "application/problem+json")]
    PreconditionFailed(Problem),
    /// The body exceeds 64 KiB.
    #[response(status = 413, content_type = "application/problem+json")]
    TooLarge(Problem),
    /// The body is not `application/json`.
    #[response(status = 415, content_type = "application/problem+json")]
    UnsupportedMediaType(Problem),
    /// Invalid fields (`errors` names each) or an idempotency key reused with another body.
    #[response(status = 422, content_type = "application/problem+json")]
    Unprocessable(Problem),
    /// The caller's rate limit is spent; `Retry-After` says when to retry.
    #[response(status = 429, content_type = "application/problem+json")]
    TooManyRequests(Problem),
    /// The event store cannot be reached (or the connection cap is reached); retry after `Retry-After`.
    #[response(status = 503, content_type = "application/problem+json")]
    Unavailable(Problem),
}
