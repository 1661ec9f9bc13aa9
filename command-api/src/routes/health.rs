//! Liveness and readiness.

use std::sync::Arc;

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

/// What readiness depends on: the event store and, when one is
/// configured, the identity provider's keys.
#[derive(Clone)]
pub struct Readiness {
    pub store: Health,
    pub provider: Option<Arc<auth::Provider>>,
}

/// The event store answers (the last background check, every second, so
/// the probe is answered at once even while the database is down) and the
/// identity provider's keys are known.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, description = "Ready"), (status = 503, description = "The event store does not answer, or the identity provider's keys are not known yet")))]
pub async fn readyz(State(r): State<Readiness>) -> Response {
    let state = r.store.current();
    let reason = if state.ready {
        r.provider.as_ref().and_then(|p| p.readiness().err())
    } else {
        Some(
            state
                .reason
                .unwrap_or_else(|| "the event store does not answer".into()),
        )
    };
    let Some(reason) = reason else {
        let store = format!("{:?}", r.store.backend()).to_lowercase();
        return Json(json!({ "status": "ready", "store": store })).into_response();
    };
    let mut response =
        problem(StatusCode::SERVICE_UNAVAILABLE, "unavailable", &reason).into_response();
    response.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        axum::http::HeaderValue::from_static("1"),
    );
    response
}
