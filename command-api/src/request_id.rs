//! Per-request plumbing in one middleware: the request id (taken from
//! `X-Request-Id` or generated), the tracing span every log line of the
//! request carries, the access log line, and the guarantee that every error
//! response is `application/problem+json` with the request id inside.

use std::time::Instant;

use axum::body::{to_bytes, Body};
use axum::extract::{MatchedPath, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;
use uuid::Uuid;

use crate::error::{problem, PROBLEM_JSON};

/// The id of the request being served (a request extension).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// The header carrying the request id in and out.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

fn incoming_id(req: &Request) -> Option<String> {
    let v = req.headers().get(REQUEST_ID_HEADER)?.to_str().ok()?;
    let ok = !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic());
    ok.then(|| v.to_string())
}

/// The middleware; see the module docs.
pub async fn request_context(mut req: Request, next: Next) -> Response {
    let id = incoming_id(&req).unwrap_or_else(|| Uuid::new_v4().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    // The route template, never the raw path (ids would explode the metrics).
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let method = req.method().to_string();
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %method,
        route = %route,
        correlation_id = tracing::field::Empty,
        otel.name = tracing::field::Empty,
        otel.kind = "server",
        http.response.status_code = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    // The exported span's name; formatted only when spans are exported.
    if telemetry::exporting() {
        span.record("otel.name", format!("{method} {route}"));
    }
    // Continue the caller's trace (W3C `traceparent`), when traces are exported.
    if let Some(parent) = req
        .headers()
        .get(telemetry::TRACEPARENT)
        .and_then(|v| v.to_str().ok())
    {
        telemetry::set_parent(&span, parent);
    }
    let started = Instant::now();
    let response = next.run(req).instrument(span.clone()).await;
    let mut response = ensure_problem(response, &id).instrument(span.clone()).await;
    let status = response.status();
    let seconds = started.elapsed().as_secs_f64();
    let code = status.as_u16().to_string();
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "error");
    }
    let labels = [("method", method.as_str()), ("route", route.as_str())];
    telemetry::metrics::observe_seconds(
        "http_request_duration_seconds",
        "HTTP request latency by route.",
        &labels,
        seconds,
    );
    telemetry::metrics::count(
        "http_requests_total",
        "HTTP requests by route and status.",
        &[
            ("method", method.as_str()),
            ("route", route.as_str()),
            ("status", code.as_str()),
        ],
        1.0,
    );
    span.in_scope(|| {
        let latency_ms = seconds * 1000.0;
        if status.is_server_error() {
            tracing::error!(status = status.as_u16(), latency_ms, "request finished");
        } else {
            tracing::info!(status = status.as_u16(), latency_ms, "request finished");
        }
    });
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    response
}

/// Error responses that are not problem documents (from axum itself or a
/// layer) become one; problem documents get the request id.
async fn ensure_problem(response: Response, request_id: &str) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    // GraphQL answers its errors in its own media type (GraphQL over HTTP).
    let is_graphql = response.headers().get(CONTENT_TYPE).is_some_and(|v| {
        v.as_bytes()
            .starts_with(b"application/graphql-response+json")
    });
    if is_graphql {
        return response;
    }
    let is_problem = response
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    let (mut parts, body) = response.into_parts();
    let bytes = to_bytes(body, 1024 * 1024).await.unwrap_or_default();
    let mut doc: serde_json::Value = if is_problem {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| generic(status))
    } else {
        generic(status)
    };
    doc["request_id"] = serde_json::Value::String(request_id.to_string());
    parts
        .headers
        .insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    let body = serde_json::to_vec(&doc).unwrap_or_default();
    Response::from_parts(parts, Body::from(body))
}

fn generic(status: StatusCode) -> serde_json::Value {
    let (code, detail) = match status {
        StatusCode::NOT_FOUND => ("not_found", "no such resource"),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            "this method is not allowed on this resource",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "the request body is too large"),
        StatusCode::REQUEST_TIMEOUT => ("timeout", "the request took too long"),
        s if s.is_server_error() => ("internal", "internal error"),
        _ => ("bad_request", "the request could not be processed"),
    };
    serde_json::to_value(problem(status, code, detail)).unwrap_or_default()
}

/// Fallback for unknown routes.
pub async fn not_found() -> Response {
    problem(StatusCode::NOT_FOUND, "not_found", "no such resource").into_response()
}
