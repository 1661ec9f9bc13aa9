//! [`CommandContext`]: what every command carries into its events'
//! metadata, whoever sent it.

use std::collections::HashMap;

/// Who caused a command and how to find it again: the request, the
/// correlation, the expected version, the idempotency key, the causing
/// event, the trace.
#[derive(Debug, Clone, Default)]
pub struct CommandContext {
    pub request_id: String,
    pub correlation_id: String,
    /// The version the caller expects the aggregate to have (`If-Match`).
    pub expected_version: Option<u64>,
    /// The idempotency key, scoped to the caller, when sent.
    pub idempotency_key: Option<String>,
    /// The event that caused this command (commands issued by a process manager).
    pub causation_id: Option<String>,
    /// W3C trace context written into the events (`traceparent`): the
    /// serving span's when traces are exported, else the caller's, passed on.
    pub traceparent: Option<String>,
}

impl CommandContext {
    /// The context of a command issued in process in reaction to an event:
    /// it continues the event's correlation, names the event as its cause,
    /// and carries a deterministic idempotency key.
    pub fn caused_by(correlation_id: &str, causation_id: &str, idempotency_key: String) -> Self {
        Self {
            request_id: uuid::Uuid::new_v4().to_string(),
            correlation_id: correlation_id.to_string(),
            expected_version: None,
            idempotency_key: Some(idempotency_key),
            causation_id: Some(causation_id.to_string()),
            traceparent: telemetry::current_traceparent(),
        }
    }

    /// Continues the trace of the event that caused this command when no
    /// span of this process carries it (trace export off).
    #[must_use]
    pub fn following(mut self, cause: &serde_json::Value) -> Self {
        if self.traceparent.is_none() {
            self.traceparent = telemetry::event_traceparent(cause).map(str::to_string);
        }
        self
    }

    /// Event metadata for a command issued by `actor`.
    pub fn metadata(&self, actor: &str) -> HashMap<String, String> {
        let mut m = HashMap::from([
            ("request_id".to_string(), self.request_id.clone()),
            ("correlation_id".to_string(), self.correlation_id.clone()),
            ("actor".to_string(), actor.to_string()),
        ]);
        if let Some(key) = &self.idempotency_key {
            m.insert("idempotency_key".to_string(), key.clone());
        }
        if let Some(cause) = &self.causation_id {
            m.insert("causation_id".to_string(), cause.clone());
        }
        if let Some(trace) = &self.traceparent {
            m.insert(telemetry::TRACEPARENT.to_string(), trace.clone());
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_names_the_cause_and_the_key() {
        let ctx = CommandContext::caused_by("corr", "event-1", "saga|event-1|pay".into());
        let m = ctx.metadata("service:saga");
        assert_eq!(m["correlation_id"], "corr");
        assert_eq!(m["causation_id"], "event-1");
        assert_eq!(m["idempotency_key"], "saga|event-1|pay");
        assert_eq!(m["actor"], "service:saga");
        assert!(!m.contains_key("traceparent") || ctx.traceparent.is_some());
    }
}
