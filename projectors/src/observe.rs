//! What the projectors tell the operators: a span per traced event a
//! batch folds, and each committed batch in the metrics (both sources).

use std::time::Duration;

use eventlog::StoredEvent;
use readmodel::Projection;

/// One span per traced event `P` folds, continuing each event's trace; held
/// while the batch is folded and committed, so a trace shows when its event
/// became visible in each read model. Empty when traces are not exported.
pub fn event_spans<'a, P: Projection>(
    events: impl IntoIterator<Item = &'a StoredEvent>,
) -> Vec<tracing::Span> {
    if !telemetry::exporting() {
        return Vec::new();
    }
    events
        .into_iter()
        .filter(|e| P::handles(&e.event_type))
        .map(|e| {
            telemetry::follow(&e.metadata, || {
                tracing::info_span!(
                    "project",
                    otel.name = %format!("project {}", P::NAME),
                    otel.kind = "consumer",
                    projection = P::NAME,
                    event_type = %e.event_type,
                    aggregate_id = %e.aggregate_id,
                    position = e.position,
                )
            })
        })
        .filter(|s| !s.is_none())
        .collect()
}

/// Records one committed batch in the metrics (both sources); `oldest`:
/// when the oldest event the batch applied was appended.
pub fn record_batch(
    projection: &str,
    events: usize,
    took: Duration,
    oldest: Option<chrono::DateTime<chrono::Utc>>,
) {
    let labels = [("projection", projection)];
    if let Some(at) = oldest {
        telemetry::metrics::observe_since(
            "projector_event_delay_seconds",
            "From an event's append to its projection's commit (the oldest event of each batch).",
            &labels,
            at.into(),
        );
    }
    telemetry::metrics::observe_size(
        "projector_batch_events",
        "Events per projector batch.",
        &labels,
        events as f64,
    );
    telemetry::metrics::observe_seconds(
        "projector_batch_duration_seconds",
        "Time to fold and commit one batch.",
        &labels,
        took.as_secs_f64(),
    );
    telemetry::metrics::count(
        "projector_events_total",
        "Events seen by each projection.",
        &labels,
        events as f64,
    );
}
