//! `Idempotency-Key` (invariant 5): a retry with the same key and body gets
//! the first response again and appends nothing; the same key with another
//! body gets 422; concurrent requests with one key execute once.
//!
//! Keys are scoped to the caller and stored durably (see
//! `eventlog::IdempotencyStore`). The key also travels in the metadata of
//! the events it appended, so a request whose process died between the
//! append and storing its response is recovered from the store itself
//! rather than executed twice.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use eventlog::{EventLog, IdempotencyStore, KeyState, StoredEvent};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::auth::{caller, Authenticator};
use crate::error::ApiError;
use crate::extract::MAX_BODY_BYTES;

/// The caller-scoped key of the request being served (a request extension);
/// it goes into the metadata of every event the request appends.
#[derive(Debug, Clone)]
pub struct IdempotencyScope(pub String);

/// The header clients send.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
/// Set on replayed responses.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

/// How long a second request waits for the first one with its key.
const WAIT_FOR_FIRST: Duration = Duration::from_secs(10);
/// A key pending this long belongs to a request whose process died.
const STALE_AFTER: Duration = Duration::from_secs(30);

/// What the middleware needs.
#[derive(Clone)]
pub struct IdempotencyState {
    pub store: IdempotencyStore,
    pub log: EventLog,
    pub auth: Arc<Authenticator>,
}

/// The middleware; see the module docs.
pub async fn idempotency(
    State(state): State<IdempotencyState>,
    req: Request,
    next: Next,
) -> Response {
    let mutating = matches!(
        *req.method(),
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    let Some(raw_key) = req.headers().get(IDEMPOTENCY_KEY_HEADER).cloned() else {
        return next.run(req).await;
    };
    if !mutating {
        return next.run(req).await;
    }
    let key = match raw_key.to_str() {
        Ok(k) if !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| b.is_ascii_graphic()) => {
            k.to_string()
        }
        _ => {
            return ApiError::BadHeader {
                header: "Idempotency-Key",
                message: "must be 1 to 255 visible ASCII characters".into(),
            }
            .into_response()
        }
    };
    let (mut parts, body) = req.into_parts();
    let principal = if parts
        .headers
        .contains_key(axum::http::header::AUTHORIZATION)
    {
        match caller(&state.auth, &parts.headers, &mut parts.extensions).await {
            Ok(p) => p.scope(),
            // Unauthenticated requests execute nothing: let the handler say 401.
            Err(_) => return next.run(Request::from_parts(parts, body)).await,
        }
    } else {
        "anonymous".to_string()
    };
    let Ok(bytes) = to_bytes(body, MAX_BODY_BYTES).await else {
        return ApiError::PayloadTooLarge(MAX_BODY_BYTES).into_response();
    };
    // Nested routers see a stripped path; fingerprint the one the client sent.
    let path = parts
        .extensions
        .get::<axum::extract::OriginalUri>()
        .map_or_else(|| parts.uri.path().to_string(), |u| u.path().to_string());
    let fingerprint = fingerprint(&parts.method, &path, &bytes);
    let scope = format!("{principal}|{key}");
    let mut req = Request::from_parts(parts, Body::from(bytes));
    req.extensions_mut().insert(IdempotencyScope(scope.clone()));

    match claim(&state, &principal, &key, &fingerprint, &scope).await {
        Ok(Claim::Execute) => execute(&state, &principal, &key, req, next).await,
        Ok(Claim::Replay(status, stored)) => replay(status, &stored),
        Err(e) => e.into_response(),
    }
}

enum Claim {
    Execute,
    Replay(u16, Value),
}

/// Claims the key, or waits for its first request and returns its response.
async fn claim(
    state: &IdempotencyState,
    principal: &str,
    key: &str,
    fingerprint: &str,
    scope: &str,
) -> Result<Claim, ApiError> {
    let deadline = tokio::time::Instant::now() + WAIT_FOR_FIRST;
    loop {
        let record = match state.store.begin(principal, key, fingerprint).await? {
            KeyState::Started => return Ok(Claim::Execute),
            KeyState::Existing(record) => record,
        };
        if record.fingerprint != fingerprint {
            return Err(ApiError::IdempotencyKeyReused);
        }
        if let Some((status, stored)) = record.response {
            return Ok(Claim::Replay(status, stored));
        }
        if record.age > STALE_AFTER {
            // The first request's process died. If its events made it into
            // the store, its response is rebuilt from them; otherwise it
            // never appended anything and this request executes instead.
            let events = state.log.by_idempotency_key(scope).await?;
            if let Some((status, stored)) = recovered_response(&events) {
                state
                    .store
                    .complete(principal, key, status, &stored)
                    .await?;
                return Ok(Claim::Replay(status, stored));
            }
            if state.store.take_over(principal, key, STALE_AFTER).await? {
                return Ok(Claim::Execute);
            }
        }
        if tokio::time::Instant::now() > deadline {
            return Err(ApiError::IdempotencyKeyInFlight);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs the request on its own task (a client hanging up must not cut a
/// command in half), then stores or releases the key.
async fn execute(
    state: &IdempotencyState,
    principal: &str,
    key: &str,
    req: Request,
    next: Next,
) -> Response {
    let response = match tokio::spawn(next.run(req)).await {
        Ok(r) => r,
        Err(e) => ApiError::internal(format!("request task failed: {e}")).into_response(),
    };
    let (parts, body) = response.into_parts();
    let bytes = to_bytes(body, 4 * 1024 * 1024).await.unwrap_or_default();
    let body_json: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let stored = json!({ "body": body_json, "headers": kept_headers(&parts.headers) });
    let outcome = if replayable(parts.status, &body_json) {
        state
            .store
            .complete(principal, key, parts.status.as_u16(), &stored)
            .await
    } else {
        state.store.abandon(principal, key).await
    };
    if let Err(e) = outcome {
        tracing::error!(error = %e, "could not record the idempotency key");
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// Successes and deterministic rejections are replayed; transient failures
/// (a lost race, a stale `If-Match`, server errors) release the key so a
/// retry executes.
fn replayable(status: StatusCode, body: &Value) -> bool {
    if status.is_server_error()
        || status == StatusCode::PRECONDITION_FAILED
        || status == StatusCode::UNAUTHORIZED
    {
        return false;
    }
    let transient = [
        "urn:shopstream:problem:concurrent_modification",
        "urn:shopstream:problem:idempotency_key_in_flight",
    ];
    !body
        .get("type")
        .and_then(Value::as_str)
        .is_some_and(|t| transient.contains(&t))
}

fn kept_headers(headers: &HeaderMap) -> Value {
    let mut kept = serde_json::Map::new();
    for name in ["location", "etag", "content-type"] {
        if let Some(v) = headers.get(name).and_then(|v| v.to_str().ok()) {
            kept.insert(name.to_string(), Value::String(v.to_string()));
        }
    }
    Value::Object(kept)
}

fn replay(status: u16, stored: &Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let body = serde_json::to_vec(&stored["body"]).unwrap_or_default();
    let mut response = (status, body).into_response();
    if let Some(headers) = stored["headers"].as_object() {
        for (name, value) in headers {
            if let (Ok(n), Some(Ok(v))) = (
                axum::http::HeaderName::from_bytes(name.as_bytes()),
                value.as_str().map(HeaderValue::from_str),
            ) {
                response.headers_mut().insert(n, v);
            }
        }
    }
    response
        .headers_mut()
        .insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    response
}

/// The response a request would have given, rebuilt from the events it appended.
fn recovered_response(events: &[StoredEvent]) -> Option<(u16, Value)> {
    let last = events.last()?;
    let created = events.iter().any(|e| e.sequence == 1);
    let collection = match last.aggregate_type.as_str() {
        "User" => "users",
        "Product" => "products",
        "Order" => "orders",
        "Payment" => "payments",
        _ => return None,
    };
    let mut headers = json!({
        "etag": format!("\"{}\"", last.sequence),
        "content-type": "application/json",
    });
    if created {
        headers["location"] = Value::String(format!("/v1/{collection}/{}", last.aggregate_id));
    }
    let body =
        json!({ "id": last.aggregate_id, "version": last.sequence, "position": last.position });
    Some((
        if created { 201 } else { 200 },
        json!({ "body": body, "headers": headers }),
    ))
}

/// What makes two requests "the same": method, path and body bytes.
pub fn fingerprint(method: &Method, path: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(method.as_str().as_bytes());
    h.update(b" ");
    h.update(path.as_bytes());
    h.update(b"\n");
    h.update(body);
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}
