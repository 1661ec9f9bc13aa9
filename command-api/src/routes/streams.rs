//! `GET /v1/{users|orders|payments|products}/{id}/events`: an aggregate's
//! stream, for audit (admin).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::CommandErrors;
use crate::auth::{Caller, Principal, Role};
use crate::error::ApiError;
use commands::Commands;

/// One stored event.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    pub sequence: i64,
    /// Global position in the store.
    pub position: i64,
    pub event_id: String,
    pub event_type: String,
    pub event_version: String,
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    /// Request id, correlation id, actor, idempotency key.
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    pub recorded_at: DateTime<Utc>,
}

/// An aggregate's whole stream.
#[derive(Debug, Serialize, ToSchema)]
pub struct StreamView {
    pub aggregate_type: String,
    pub aggregate_id: String,
    /// Number of events (the current version).
    pub version: u64,
    pub events: Vec<EventView>,
}

async fn stream(
    commands: &Commands,
    principal: &Principal,
    aggregate_type: &str,
    id: &str,
) -> Result<Json<StreamView>, ApiError> {
    principal.require(&[Role::Admin])?;
    // SKUs are stored upper-cased.
    let id = if aggregate_type == "Product" {
        id.to_ascii_uppercase()
    } else {
        id.to_string()
    };
    let id = id.as_str();
    let events = commands.log.stream(aggregate_type, id).await?;
    if events.is_empty() {
        return Err(ApiError::not_found(format!(
            "{} {id} not found",
            aggregate_type.to_lowercase()
        )));
    }
    Ok(Json(StreamView {
        aggregate_type: aggregate_type.to_string(),
        aggregate_id: id.to_string(),
        version: events.len() as u64,
        events: events
            .into_iter()
            .map(|e| EventView {
                sequence: e.sequence,
                position: e.position,
                event_id: e.event_id.to_string(),
                event_type: e.event_type,
                event_version: e.event_version,
                payload: e.payload,
                metadata: e.metadata,
                recorded_at: e.recorded_at,
            })
            .collect(),
    }))
}

macro_rules! stream_route {
    ($name:ident, $path:literal, $type:literal, $tag:literal) => {
        #[doc = concat!("The event stream of one ", $type, " (admin).")]
        #[utoipa::path(get, path = $path, tag = $tag,
            params(("id" = String, Path, description = "Aggregate id")),
            responses((status = 200, description = "The stream", body = StreamView), CommandErrors),
            security(("bearer" = [])))]
        pub async fn $name(
            State(commands): State<Arc<Commands>>,
            Caller(principal): Caller,
            Path(id): Path<String>,
        ) -> Result<Json<StreamView>, ApiError> {
            stream(&commands, &principal, $type, &id).await
        }
    };
}

stream_route!(user_events, "/v1/users/{id}/events", "User", "users");
stream_route!(order_events, "/v1/orders/{id}/events", "Order", "orders");
stream_route!(
    payment_events,
    "/v1/payments/{id}/events",
    "Payment",
    "payments"
);
stream_route!(
    product_events,
    "/v1/products/{id}/events",
    "Product",
    "products"
);
