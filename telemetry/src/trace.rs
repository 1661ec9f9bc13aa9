//! Logging and tracing setup, shared by every shopstream binary, and the
//! W3C trace context that travels with events.
//!
//! Logs go to stderr (pretty or JSON). When an OTLP endpoint is configured,
//! spans are also exported over OTLP/HTTP (protobuf by default,
//! `OTEL_EXPORTER_OTLP_PROTOCOL=http/json` for JSON), and the trace context
//! of a command is written into its events' metadata (`traceparent`), from
//! where the relay copies it into a Kafka header and projectors and the saga
//! continue the trace: one order's journey is one trace.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// The event-metadata key (and Kafka header) carrying the trace context.
pub const TRACEPARENT: &str = "traceparent";

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable, for development.
    #[default]
    Pretty,
    /// One JSON object per line, for production log pipelines.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pretty" => Ok(Self::Pretty),
            "json" => Ok(Self::Json),
            other => Err(format!("unknown log format '{other}' (use pretty or json)")),
        }
    }
}

/// What [`init`] sets up.
#[derive(Debug, Clone, Default)]
pub struct TelemetryOptions {
    pub log_format: LogFormat,
    /// OTLP/HTTP base address (`http://collector:4318`); traces go to
    /// `<endpoint>/v1/traces`. `None`: no export.
    pub otlp_endpoint: Option<String>,
    /// `service.name` of exported spans, unless `OTEL_SERVICE_NAME` is set.
    pub service_name: String,
}

/// A failure to set up trace export.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up OTLP trace export: {0}")]
pub struct TelemetryError(String);

/// Flushes exported spans when dropped (keep it alive for the process).
#[derive(Debug, Default)]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            if let Err(e) = provider.shutdown_with_timeout(Duration::from_secs(5)) {
                tracing::warn!(error = %e, "flushing traces failed");
            }
        }
    }
}

static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported (an OTLP endpoint is configured).
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// Installs the global subscriber, filtered by `RUST_LOG` (default `info`).
/// Logs go to stderr so stdout stays scriptable. Calling it twice is
/// harmless (the first wins).
///
/// # Errors
/// When the OTLP exporter cannot be built (a malformed endpoint).
pub fn init(options: &TelemetryOptions) -> Result<TelemetryGuard, TelemetryError> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let (otel, provider) = match options.otlp_endpoint.as_deref() {
        Some(endpoint) => {
            let provider = provider(endpoint, &options.service_name)?;
            let tracer = provider.tracer("shopstream");
            // Only shopstream's own spans at info and above: no per-query
            // spans of the libraries underneath.
            let layer = tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_threads(false)
                .with_tracked_inactivity(false)
                .with_filter(tracing_subscriber::filter::LevelFilter::INFO);
            (Some(layer), Some(provider))
        }
        None => (None, None),
    };
    let exporting = provider.is_some();
    let registry = tracing_subscriber::registry().with(filter).with(otel);
    let result = match options.log_format {
        LogFormat::Pretty => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_target(false),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
    if result.is_err() {
        // Already installed (tests, or a second call): keep the first.
        return Ok(TelemetryGuard::default());
    }
    EXPORTING.store(exporting, Ordering::Relaxed);
    Ok(TelemetryGuard { provider })
}

fn provider(endpoint: &str, service_name: &str) -> Result<SdkTracerProvider, TelemetryError> {
    let handle = tokio::runtime::Handle::try_current()
        .map_err(|_| TelemetryError("trace export needs a tokio runtime".into()))?;
    let mut builder = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(TokioHttp {
            client: http_client()?,
            handle,
        });
    builder = builder.with_protocol(protocol()?);
    // The signal-specific variable, when set, names the full URL itself.
    if std::env::var_os("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_none() {
        builder = builder.with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')));
    }
    let exporter = builder.build().map_err(|e| TelemetryError(e.to_string()))?;
    let mut resource = Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name(service_name.to_string());
    }
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build())
}

/// The exporter's HTTP client: plain HTTP or HTTPS (rustls; the system's
/// trust store), with the standard variables for a private CA
/// (`OTEL_EXPORTER_OTLP_(TRACES_)CERTIFICATE`) and mutual TLS
/// (`…_CLIENT_CERTIFICATE` + `…_CLIENT_KEY`). Headers for authenticated
/// collectors come from `OTEL_EXPORTER_OTLP_HEADERS` (the exporter reads it).
fn http_client() -> Result<reqwest::Client, TelemetryError> {
    let read = |name: &str| -> Result<Option<Vec<u8>>, TelemetryError> {
        let traces = name.replace("OTEL_EXPORTER_OTLP_", "OTEL_EXPORTER_OTLP_TRACES_");
        match std::env::var_os(&traces).or_else(|| std::env::var_os(name)) {
            None => Ok(None),
            Some(path) => std::fs::read(&path).map(Some).map_err(|e| {
                TelemetryError(format!(
                    "{name}: cannot read {}: {e}",
                    path.to_string_lossy()
                ))
            }),
        }
    };
    let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(10));
    if let Some(pem) = read("OTEL_EXPORTER_OTLP_CERTIFICATE")? {
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| TelemetryError(format!("OTEL_EXPORTER_OTLP_CERTIFICATE: {e}")))?;
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    match (
        read("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE")?,
        read("OTEL_EXPORTER_OTLP_CLIENT_KEY")?,
    ) {
        (Some(mut cert), Some(key)) => {
            cert.extend_from_slice(b"\n");
            cert.extend_from_slice(&key);
            let identity = reqwest::Identity::from_pem(&cert)
                .map_err(|e| TelemetryError(format!("OTLP client certificate: {e}")))?;
            builder = builder.identity(identity);
        }
        (None, None) => {}
        _ => return Err(TelemetryError(
            "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE and OTEL_EXPORTER_OTLP_CLIENT_KEY go together"
                .into(),
        )),
    }
    builder.build().map_err(|e| TelemetryError(e.to_string()))
}

/// `OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL`: `http/protobuf` (the default)
/// or `http/json`.
fn protocol() -> Result<opentelemetry_otlp::Protocol, TelemetryError> {
    let chosen = std::env::var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        .or_else(|_| std::env::var("OTEL_EXPORTER_OTLP_PROTOCOL"))
        .unwrap_or_default();
    match chosen.as_str() {
        "" | "http/protobuf" => Ok(opentelemetry_otlp::Protocol::HttpBinary),
        "http/json" => Ok(opentelemetry_otlp::Protocol::HttpJson),
        other => Err(TelemetryError(format!(
            "OTLP protocol '{other}' is not supported: use http/protobuf (port 4318) or http/json"
        ))),
    }
}

/// The exporter's HTTP client: the batch processor runs on its own thread,
/// so each export is handed to the service's tokio runtime and awaited.
#[derive(Debug)]
struct TokioHttp {
    client: reqwest::Client,
    handle: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for TokioHttp {
    async fn send_bytes(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        let client = self.client.clone();
        let (parts, body) = request.into_parts();
        let task = self.handle.spawn(async move {
            let response = client
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, headers, body))
        });
        let (status, headers, body) = task.await??;
        let mut response = http::Response::new(body);
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        Ok(response)
    }
}

/// The W3C `traceparent` of the current span, when spans are exported.
pub fn current_traceparent() -> Option<String> {
    traceparent_of(&Span::current())
}

/// The W3C `traceparent` of `span`, when spans are exported.
pub fn traceparent_of(span: &Span) -> Option<String> {
    if !exporting() {
        return None;
    }
    let cx = span.context();
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    carrier.remove(TRACEPARENT)
}

/// Makes `span` (not yet entered) a child of the remote span `traceparent`
/// names. Ignored when nothing is exported or the value is malformed.
pub fn set_parent(span: &Span, traceparent: &str) {
    if !exporting() || !valid_traceparent(traceparent) {
        return;
    }
    let carrier = HashMap::from([(TRACEPARENT.to_string(), traceparent.to_string())]);
    let cx = TraceContextPropagator::new().extract(&carrier);
    if cx.span().span_context().is_valid() {
        // Fails only on a span already entered, which callers never pass.
        let _ = span.set_parent(cx);
    }
}

/// Whether `value` is a well-formed W3C `traceparent` (version 00:
/// `00-<32 hex trace id>-<16 hex span id>-<2 hex flags>`, ids not all zero).
pub fn valid_traceparent(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let nonzero = |s: &str| s.bytes().any(|b| b != b'0');
    matches!(parts.as_slice(), [v, t, s, f]
        if hex(v, 2) && *v != "ff" && hex(t, 32) && nonzero(t) && hex(s, 16) && nonzero(s) && hex(f, 2))
}

/// A span continuing the trace an event carries (`make` builds it), or
/// [`Span::none`] when nothing is exported or the event carries no trace
/// (so untraced work pays nothing).
pub fn follow(metadata: &serde_json::Value, make: impl FnOnce() -> Span) -> Span {
    if !exporting() {
        return Span::none();
    }
    let Some(parent) = event_traceparent(metadata) else {
        return Span::none();
    };
    let span = make();
    set_parent(&span, parent);
    span
}

/// The trace context an event carries in its metadata.
pub fn event_traceparent(metadata: &serde_json::Value) -> Option<&str> {
    metadata
        .get(TRACEPARENT)
        .and_then(serde_json::Value::as_str)
        .filter(|t| valid_traceparent(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_syntax() {
        assert!(valid_traceparent(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        ));
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
        ] {
            assert!(!valid_traceparent(bad), "{bad}");
        }
    }

    #[test]
    fn event_traceparent_reads_only_valid_values() {
        let ok = serde_json::json!({"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"});
        assert!(event_traceparent(&ok).is_some());
        assert!(event_traceparent(&serde_json::json!({"traceparent": "nope"})).is_none());
        assert!(event_traceparent(&serde_json::json!({"traceparent": 7})).is_none());
        assert!(event_traceparent(&serde_json::json!({})).is_none());
    }
}
