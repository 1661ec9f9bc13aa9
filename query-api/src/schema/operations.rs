//! What operators and frontends ask about the platform itself: who the
//! caller is (`viewer`), and every projection's state (`projections`).

use async_graphql::{Context, Result, SimpleObject};
use auth::Role;

use super::{require, viewer, StatusSource};
use crate::error::internal;

/// The caller, as the API sees them.
#[derive(SimpleObject, Debug, Clone)]
pub struct ViewerInfo {
    /// The token's subject.
    pub subject: String,
    /// `customer`, `admin`, `service` or `analyst`.
    pub role: String,
    /// A customer's user id (null for other roles, and for a provider's
    /// customer before sign-up).
    pub user_id: Option<String>,
}

/// A shadow generation being rebuilt.
#[derive(SimpleObject, Debug, Clone)]
pub struct RebuildingInfo {
    pub generation: i64,
    pub position: i64,
}

/// One projection's state, for operators.
#[derive(SimpleObject, Debug, Clone)]
pub struct ProjectionInfo {
    pub name: String,
    /// The version the live generation was built with.
    pub version: Option<i64>,
    /// The version this binary builds (a rebuild brings `version` to it).
    pub code_version: i64,
    /// The live generation.
    pub generation: Option<i64>,
    /// `live`, `failed` (stopped on a poison event) or `missing`.
    pub state: String,
    /// Where its events come from: `store` or `kafka`.
    pub source: String,
    /// Global position of the last event the live generation has seen.
    pub position: i64,
    /// The store's head.
    pub head: i64,
    pub lag_events: i64,
    pub lag_seconds: f64,
    pub events_applied: i64,
    /// Why it stopped (a poison event), and where.
    pub error: Option<String>,
    pub error_position: Option<i64>,
    pub rebuilding: Option<RebuildingInfo>,
}

pub(super) fn viewer_info(ctx: &Context<'_>) -> Result<ViewerInfo> {
    let p = viewer(ctx)?;
    Ok(ViewerInfo {
        subject: p.sub.clone(),
        role: p.role.name().to_string(),
        user_id: p.user_id().map(|u| u.to_string()),
    })
}

pub(super) async fn projections(ctx: &Context<'_>) -> Result<Vec<ProjectionInfo>> {
    require(ctx, &[Role::Admin])?;
    let source = ctx.data::<StatusSource>()?;
    let status = readmodel::status::all(&source.log, &source.db)
        .await
        .map_err(|e| internal(&e))?;
    Ok(status
        .into_iter()
        .map(|s| ProjectionInfo {
            name: s.name,
            version: s.live_version,
            code_version: s.code_version,
            generation: s.generation,
            state: s.state,
            source: s.source,
            position: s.position,
            head: s.head,
            lag_events: s.lag_events,
            lag_seconds: s.lag_seconds,
            events_applied: s.events_applied,
            error: s.error,
            error_position: s.error_position,
            rebuilding: s.rebuilding.map(|(generation, position)| RebuildingInfo {
                generation,
                position,
            }),
        })
        .collect())
}
