//! OTLP trace export: a real OTLP/HTTP receiver (protobuf, as collectors
//! and Jaeger accept it) and the real binary. One order's journey — the
//! REST command, the projections, the saga, the payment provider and the
//! commands the saga issues — is one trace, continued from the caller's
//! `traceparent`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value;
use prost::Message;
use serde_json::{json, Value};

use crate::helpers::{DraftOrder, Server};

const BIN: &str = env!("CARGO_BIN_EXE_shopstream");

/// One received span.
#[derive(Debug, Clone)]
pub struct Received {
    pub service: String,
    pub name: String,
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
}

/// An OTLP/HTTP trace receiver on a free loopback port.
pub struct Collector {
    pub endpoint: String,
    spans: Arc<Mutex<Vec<Received>>>,
    /// The `Authorization` header of every export request.
    authorizations: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Collector {
    pub async fn start() -> Self {
        let spans: Arc<Mutex<Vec<Received>>> = Arc::default();
        let authorizations: Arc<Mutex<Vec<String>>> = Arc::default();
        let sink = spans.clone();
        let seen = authorizations.clone();
        let app = axum::Router::new().route(
            "/v1/traces",
            post(move |headers: axum::http::HeaderMap, body: Bytes| {
                let sink = sink.clone();
                if let Some(v) = headers.get("authorization").and_then(|v| v.to_str().ok()) {
                    seen.lock().expect("lock").push(v.to_string());
                }
                async move {
                    let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                    let mut sink = sink.lock().expect("lock");
                    for rs in request.resource_spans {
                        let service = rs
                            .resource
                            .iter()
                            .flat_map(|r| r.attributes.iter())
                            .find(|a| a.key == "service.name")
                            .and_then(|a| a.value.as_ref()?.value.clone())
                            .map(|v| match v {
                                any_value::Value::StringValue(s) => s,
                                other => format!("{other:?}"),
                            })
                            .unwrap_or_default();
                        for span in rs.scope_spans.into_iter().flat_map(|s| s.spans) {
                            sink.push(Received {
                                service: service.clone(),
                                name: span.name,
                                trace_id: hex(&span.trace_id),
                                span_id: hex(&span.span_id),
                                parent_span_id: hex(&span.parent_span_id),
                            });
                        }
                    }
                    (
                        [("content-type", "application/x-protobuf")],
                        ExportTraceServiceResponse::default().encode_to_vec(),
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("collector");
        });
        Self {
            endpoint: format!("http://{addr}"),
            spans,
            authorizations,
            task,
        }
    }

    /// The environment that points a shopstream process at this receiver
    /// (and exports batches every 100 ms instead of every 5 s).
    pub fn env(&self) -> [(&str, &str); 2] {
        [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", self.endpoint.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ]
    }

    pub fn trace(&self, trace_id: &str) -> Vec<Received> {
        self.spans
            .lock()
            .expect("lock")
            .iter()
            .filter(|s| s.trace_id == trace_id)
            .cloned()
            .collect()
    }

    /// Waits until the trace holds every span `want` names (with how many
    /// at least), or fails listing what arrived.
    pub async fn wait_for(&self, trace_id: &str, want: &[(&str, usize)]) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let trace = self.trace(trace_id);
            let missing: Vec<&(&str, usize)> = want
                .iter()
                .filter(|(name, n)| trace.iter().filter(|s| s.name == *name).count() < *n)
                .collect();
            if missing.is_empty() {
                return trace;
            }
            assert!(
                Instant::now() < deadline,
                "trace {trace_id} lacks {missing:?}; it has {:#?}",
                trace
                    .iter()
                    .map(|s| format!("{} {}", s.service, s.name))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

pub async fn post_traced(
    server: &Server,
    path: &str,
    token: Option<&str>,
    traceparent: Option<&str>,
    body: Value,
) -> (u16, Value) {
    let mut req = server
        .client()
        .post(format!("{}{path}", server.base()))
        .json(&body);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    if let Some(t) = traceparent {
        req = req.header("traceparent", t);
    }
    let response = req.send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn one_orders_journey_is_one_trace() {
    let collector = Collector::start().await;
    let data = tempfile::tempdir().expect("tempdir");
    let server = Server::start_with_env(
        BIN,
        &[
            "serve",
            "--simulate-payments",
            "--simulated-failure-rate",
            "0",
        ],
        data.path(),
        None,
        &collector.env(),
    )
    .await;
    let DraftOrder {
        admin,
        customer,
        order_id,
        ..
    } = DraftOrder::create(&server, data.path(), "traced@example.com", 1).await;

    // The caller's trace: placing the order continues it.
    let trace_id = "5b8efff798038103d269b633813fc60c";
    let caller_span = "eee19b7ec3c1b174";
    let traceparent = format!("00-{trace_id}-{caller_span}-01");
    let (s, placed) = post_traced(
        &server,
        &format!("/v1/orders/{order_id}/place"),
        Some(&customer),
        Some(&traceparent),
        json!(null),
    )
    .await;
    assert_eq!(s, 200, "{placed}");

    let trace = collector
        .wait_for(
            trace_id,
            &[
                ("POST /v1/orders/{id}/place", 1),
                ("saga OrderPlaced", 1),
                ("payment provider", 1),
                ("saga PaymentCaptured", 1),
                // OrderPlaced, then the saga's and the provider's events.
                ("project order_view", 2),
                ("project customer_view", 1),
                ("project analytics", 1),
            ],
        )
        .await;
    let request = trace
        .iter()
        .find(|s| s.name == "POST /v1/orders/{id}/place")
        .expect("request span");
    assert_eq!(request.parent_span_id, caller_span, "continues the caller");
    assert_eq!(request.service, "shopstream-serve");
    // Every span hangs off a span of this trace (or the caller's).
    let ids: Vec<&str> = trace.iter().map(|s| s.span_id.as_str()).collect();
    for span in &trace {
        assert!(
            span.parent_span_id == caller_span || ids.contains(&span.parent_span_id.as_str()),
            "{span:?} has a parent outside the trace"
        );
    }

    // The order is paid: the saga's commands ran under this trace.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (s, body) = server
            .graphql(
                Some(&admin),
                None,
                "query($id: ID!) { order(id: $id) { status } }",
                json!({"id": order_id}),
            )
            .await;
        assert_eq!(s, 200, "{body}");
        if body["data"]["order"]["status"] == "paid" {
            break;
        }
        assert!(Instant::now() < deadline, "order not paid: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A request without a traceparent starts its own trace, and a
    // malformed one is ignored (never an error).
    let (s, _) = post_traced(
        &server,
        &format!("/v1/orders/{order_id}/cancel"),
        Some(&customer),
        Some("00-not-a-trace-01"),
        json!({"reason": "changed my mind"}),
    )
    .await;
    assert!(s == 200 || s == 409, "status {s}");
    server.stop().await;
}

/// Production logs: one JSON object per line, and every line of a command
/// request names its request id and correlation id.
#[tokio::test]
async fn json_logs_carry_request_and_correlation_ids() {
    let data = tempfile::tempdir().expect("tempdir");
    let log_path = data.path().join("serve.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let server = Server::start_logging(
        BIN,
        &["serve", "--log-format", "json"],
        data.path(),
        None,
        &[],
        log.into(),
    )
    .await;
    let response = server
        .client()
        .post(format!("{}/v1/users", server.base()))
        .header("x-request-id", "req-json-logs-1")
        .header("x-correlation-id", "corr-json-logs-1")
        .json(&json!({"email": "logs@example.com", "name": "Logs"}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 201);
    server.stop().await;
    let text = std::fs::read_to_string(&log_path).expect("log");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let finished = lines
        .iter()
        .find(|l| {
            l["fields"]["message"] == "request finished"
                && l["span"]["request_id"] == "req-json-logs-1"
        })
        .unwrap_or_else(|| panic!("no access log line for the request in {text}"));
    assert_eq!(
        finished["span"]["correlation_id"], "corr-json-logs-1",
        "{finished}"
    );
    assert_eq!(finished["fields"]["status"], 201, "{finished}");
}

/// OTLP over HTTPS to a collector with a private CA that wants a token:
/// the standard `OTEL_EXPORTER_OTLP_CERTIFICATE` and
/// `OTEL_EXPORTER_OTLP_HEADERS` are honoured, and nothing goes in clear.
#[tokio::test]
async fn traces_reach_an_https_collector_with_its_token() {
    let collector = Collector::start().await;
    let certs = tempfile::tempdir().expect("tempdir");
    let (ca, cert, key) = crate::tls::certificates(certs.path(), "collector");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let upstream = collector.endpoint.trim_start_matches("http://").to_string();
    let proxy = crate::tls::tls_proxy(port, &cert, &key, upstream).await;
    let endpoint = format!("https://127.0.0.1:{port}");
    let ca = ca.display().to_string();
    let data = tempfile::tempdir().expect("tempdir");
    let server = Server::start_with_env(
        BIN,
        &["serve"],
        data.path(),
        None,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", ca.as_str()),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "authorization=Bearer collector-token",
            ),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    )
    .await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let (s, body) = post_traced(
        &server,
        "/v1/users",
        None,
        Some(&format!("00-{trace_id}-00f067aa0ba902b7-01")),
        json!({"email": "https@example.com", "name": "Over HTTPS"}),
    )
    .await;
    assert_eq!(s, 201, "{body}");
    collector.wait_for(trace_id, &[("POST /v1/users", 1)]).await;
    let seen = collector.authorizations.lock().expect("lock").clone();
    assert!(
        !seen.is_empty() && seen.iter().all(|a| a == "Bearer collector-token"),
        "{seen:?}"
    );
    server.stop().await;
    proxy.abort();
}
