//! The admin endpoints beside the command API: `GET /v1/admin/projections`
//! (every projection's status), `GET /v1/admin/relay` (the relay running
//! in this process, if any: its role, checkpoint and lag behind the store)
//! and the rebuilds started over HTTP ([`crate::rebuilds`]).

use std::sync::Arc;

use auth::{authenticate, Authenticator, Role};
use axum::extract::{Path, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use command_api::error::ApiError;
use eventlog::{Database, EventLog};
use readmodel::ReadDb;

use crate::rebuilds;

#[derive(Clone)]
struct AdminState {
    auth: Arc<Authenticator>,
    store: Database,
    log: EventLog,
    db: ReadDb,
    jobs: rebuilds::Jobs,
    relay: Option<relay::RelayStatus>,
}

impl AdminState {
    /// The caller, if an admin.
    async fn admin(&self, parts: &Parts) -> Result<(), ApiError> {
        let principal = authenticate(&self.auth, &parts.headers).await?;
        Ok(principal.require(&[Role::Admin])?)
    }
}

/// The admin endpoints: `GET /v1/admin/projections` (the status of every
/// projection) and the rebuilds started over HTTP (`crate::rebuilds`).
pub fn admin_router(
    auth: Authenticator,
    store: &Database,
    db: &ReadDb,
    relay: Option<relay::RelayStatus>,
) -> Router {
    let state = AdminState {
        auth: Arc::new(auth),
        store: store.clone(),
        log: EventLog::new(store.clone()),
        db: db.clone(),
        jobs: rebuilds::Jobs::default(),
        relay,
    };
    Router::new()
        .route("/v1/admin/projections", get(status_handler))
        .route(
            "/v1/admin/projections/{name}/rebuild",
            post(rebuild_handler),
        )
        .route("/v1/admin/relay", get(relay_handler))
        .route("/v1/admin/rebuilds", get(rebuilds_handler))
        .route("/v1/admin/rebuilds/{id}", get(rebuild_job_handler))
        .with_state(state)
}

fn answer(result: Result<Response, ApiError>) -> Response {
    result.unwrap_or_else(IntoResponse::into_response)
}

async fn status_handler(State(s): State<AdminState>, parts: Parts) -> Response {
    answer(
        async {
            s.admin(&parts).await?;
            let status = readmodel::status::all(&s.log, &s.db)
                .await
                .map_err(|e| ApiError::internal(e.to_string()))?;
            Ok(Json(serde_json::json!({ "projections": status })).into_response())
        }
        .await,
    )
}

/// `GET /v1/admin/relay`: `{"relay": null}` when no relay runs in this
/// process (the relay's own process answers on its `/readyz`).
async fn relay_handler(State(s): State<AdminState>, parts: Parts) -> Response {
    answer(
        async {
            s.admin(&parts).await?;
            let Some(relay) = &s.relay else {
                return Ok(Json(serde_json::json!({ "relay": null })).into_response());
            };
            let head = s.log.head().await?;
            let state = relay.get();
            let lag = (head - state.checkpoint).max(0);
            Ok(
                Json(serde_json::json!({ "relay": state, "head": head, "lag_events": lag }))
                    .into_response(),
            )
        }
        .await,
    )
}

async fn rebuild_handler(
    State(s): State<AdminState>,
    Path(name): Path<String>,
    parts: Parts,
    body: axum::body::Bytes,
) -> Response {
    answer(
        async {
            s.admin(&parts).await?;
            rebuilds::start(&s.jobs, &s.store, &s.db, &name, &body)
        }
        .await,
    )
}

async fn rebuilds_handler(State(s): State<AdminState>, parts: Parts) -> Response {
    answer(s.admin(&parts).await.map(|()| rebuilds::list(&s.jobs)))
}

async fn rebuild_job_handler(
    State(s): State<AdminState>,
    Path(id): Path<String>,
    parts: Parts,
) -> Response {
    answer(
        async {
            s.admin(&parts).await?;
            rebuilds::one(&s.jobs, &id)
        }
        .await,
    )
}
