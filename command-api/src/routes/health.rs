//! Liveness and readiness.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use eventlog::Health;
use serde_json::json;

use crate::error::problem;

/// The process is up.
#[utoipa::path(get, path = "/livez", tag = "health", responses((status = 200, description = "Alive")))]
pub async fn livez() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// The event store answers: the last background check (every second), so
/// the probe is answered at once even while the database is down.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, description = "Ready"), (status = 503, description = "The event store does not answer")))]
pub async fn readyz(State(health): State<Health>) -> Response {
    let state = health.current();
    if state.ready {
        return Json(
            json!({ "status": "ready", "store": format!("{:?}", health.backend()).to_lowercase() }),
        )
        .into_response();
    }
    let reason = state
        .reason
        .unwrap_or_else(|| "the event store does not answer".into());
    let mut response =
        problem(StatusCode::SERVICE_UNAVAILABLE, "unavailable", &reason).into_response();
    response.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        axum::http::HeaderValue::from_static("1"),
    );
    response
}
