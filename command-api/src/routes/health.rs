//! Liveness and readiness.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use eventlog::Database;
use serde_json::json;

use crate::error::problem;

/// The process is up.
#[utoipa::path(get, path = "/livez", tag = "health", responses((status = 200, description = "Alive")))]
pub async fn livez() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// The event store answers.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, description = "Ready"), (status = 503, description = "The event store does not answer")))]
pub async fn readyz(State(db): State<Database>) -> Response {
    match db.ping().await {
        Ok(()) => Json(
            json!({ "status": "ready", "store": format!("{:?}", db.backend()).to_lowercase() }),
        )
        .into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the event store does not answer",
            )
            .into_response()
        }
    }
}
