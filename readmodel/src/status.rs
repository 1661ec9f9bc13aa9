//! What operators see: per projection its version, checkpoint, the store's
//! head, lag in events and seconds, and state.

use eventlog::EventLog;
use serde::Serialize;
use sqlx::Row;

use crate::Projection;
use crate::{registry, Analytics, CustomerView, OrderViewProjection, ProjectionError, ReadDb};

/// One projection's status.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ProjectionStatus {
    pub name: String,
    /// The version the running code builds.
    pub code_version: i64,
    /// The version the live generation was built with (a rebuild brings it to `code_version`).
    pub live_version: Option<i64>,
    pub generation: Option<i64>,
    /// `live`, `failed`, or `missing` (never started).
    pub state: String,
    /// Global position of the last event the live generation has seen.
    pub position: i64,
    pub head: i64,
    pub lag_events: i64,
    pub lag_seconds: f64,
    pub events_applied: i64,
    pub error: Option<String>,
    pub error_position: Option<i64>,
    /// A shadow generation being rebuilt: (generation, position).
    pub rebuilding: Option<(i64, i64)>,
    /// Where the live generation's events come from: `store` or `kafka`.
    pub source: String,
}

async fn one<P: Projection>(
    log: &EventLog,
    db: &ReadDb,
    head: i64,
) -> Result<ProjectionStatus, ProjectionError> {
    let generations = registry::generations(db, P::NAME).await?;
    let live_g = registry::live_generation(db, P::NAME).await?;
    let live = generations.iter().find(|g| Some(g.generation) == live_g);
    let rebuilding = generations
        .iter()
        .find(|g| g.state == "rebuilding")
        .map(|g| (g.generation, g.cursor.position));
    let Some(live) = live else {
        return Ok(ProjectionStatus {
            name: P::NAME.into(),
            code_version: P::VERSION,
            live_version: None,
            generation: None,
            state: "missing".into(),
            position: 0,
            head,
            lag_events: head,
            lag_seconds: 0.0,
            events_applied: 0,
            error: None,
            error_position: None,
            rebuilding,
            source: "store".into(),
        });
    };
    let kafka = crate::offsets::consumes_kafka(db, P::NAME, live.generation).await?;
    // Over Kafka the head is what the relay has published (lag = relay
    // head − applied); from the store it is the store's head.
    let relay = if kafka { relay_head(db).await? } else { None };
    let (head, (lag_events, newest)) = match relay {
        Some((relay_head, relay_at)) => {
            let n: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM events WHERE position > $1 AND position <= $2",
            )
            .bind(live.cursor.position)
            .bind(relay_head)
            .fetch_one(db.pool())
            .await?;
            (relay_head, (n, relay_at))
        }
        None => (head, log.backlog_after(live.cursor.position).await?),
    };
    let last = live
        .last_event_at
        .as_deref()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.with_timezone(&chrono::Utc));
    let lag_seconds = match (lag_events, newest, last) {
        (0, _, _) => 0.0,
        (_, Some(newest), Some(last)) => (newest - last).num_milliseconds().max(0) as f64 / 1000.0,
        (_, Some(newest), None) => {
            (chrono::Utc::now() - newest).num_milliseconds().max(0) as f64 / 1000.0
        }
        _ => 0.0,
    };
    Ok(ProjectionStatus {
        name: P::NAME.into(),
        code_version: P::VERSION,
        live_version: Some(live.version),
        generation: Some(live.generation),
        state: live.state.clone(),
        position: live.cursor.position,
        head,
        lag_events,
        lag_seconds,
        events_applied: live.events_applied,
        error: live.error.clone(),
        error_position: live.error_position,
        rebuilding,
        source: if kafka { "kafka" } else { "store" }.into(),
    })
}

/// The relay's acknowledged head: position and recording time.
async fn relay_head(
    db: &ReadDb,
) -> Result<Option<(i64, Option<chrono::DateTime<chrono::Utc>>)>, ProjectionError> {
    let row = sqlx::query(
        "SELECT cursor_position, recorded_at::text FROM relay_checkpoint ORDER BY cursor_position DESC LIMIT 1",
    )
    .fetch_optional(db.pool())
    .await?;
    row.map(|r| {
        let at: Option<String> = r.try_get(1)?;
        let at = at
            .and_then(|s| chrono::DateTime::parse_from_str(&s, "%Y-%m-%d %H:%M:%S%.f%#z").ok())
            .map(|d| d.with_timezone(&chrono::Utc));
        Ok((r.try_get(0)?, at))
    })
    .transpose()
}

/// The status of every projection.
///
/// # Errors
/// Database errors.
pub async fn all(log: &EventLog, db: &ReadDb) -> Result<Vec<ProjectionStatus>, ProjectionError> {
    let head = log.head().await?;
    Ok(vec![
        one::<CustomerView>(log, db, head).await?,
        one::<OrderViewProjection>(log, db, head).await?,
        one::<Analytics>(log, db, head).await?,
    ])
}
