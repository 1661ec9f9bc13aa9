//! The HTTP listener every role serves on, with connection hygiene: a
//! header-read timeout, a keep-alive idle timeout, a request-body read
//! timeout, a cap on concurrent connections, an early `413` on a declared
//! oversized body, graceful draining with a deadline, and problem+json even
//! on the errors hyper answers by itself (`400`, `414`, `431`).
//!
//! axum's `serve` has none of the timeouts, so this drives hyper's HTTP/1
//! connections directly. Each connection gets a small watchdog that reads
//! the connection's phase from its socket wrapper:
//! - before a request's headers are complete: closed after the header
//!   timeout, counted from the connection's start or the request's first
//!   byte (slowloris);
//! - between requests (keep-alive): closed after the idle timeout;
//! - while a request is being served: left alone (the body timeout and the
//!   handlers' own limits apply).
//!
//! # Layout
//! - `conn`: one connection: the socket wrapper, its phase, the watchdog.
//! - `body`: bounded request bodies (413 early, 408 on a stalled body).
//! - this file: [`Limits`], [`serve`], [`edge`] (the layers of every listener) and [`cors`].

mod body;
mod conn;

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

pub use body::bound_body;
use conn::{now_ms, watchdog, Conn, ConnService, Phase, Timeouts};

use crate::error::problem;

/// Connection and request limits of a listener.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Time to receive a request's headers, from the connection's start or
    /// the request's first byte.
    pub header_timeout: Duration,
    /// Time a keep-alive connection may sit between requests.
    pub idle_timeout: Duration,
    /// Time to receive a whole request body.
    pub body_timeout: Duration,
    /// Largest request body; a larger declared `Content-Length` is refused
    /// before any of it is read.
    pub max_body_bytes: usize,
    /// Most connections open at once (WebSockets included); the next one is
    /// answered `503` and closed.
    pub max_connections: usize,
    /// How long a shutdown waits for in-flight requests.
    pub drain_timeout: Duration,
    /// Browser origins that may call (CORS); none unless configured.
    pub origins: auth::Origins,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(30),
            max_body_bytes: crate::extract::MAX_BODY_BYTES,
            max_connections: 1024,
            drain_timeout: Duration::from_secs(20),
            origins: auth::Origins::default(),
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets
/// in-flight requests finish for up to `limits.drain_timeout`.
///
/// # Errors
/// When the listener fails for good (a transient accept error such as too
/// many open files is logged and retried).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    let draining = Arc::new(AtomicBool::new(false));
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            telemetry::metrics::count(
                "http_connections_refused_total",
                "Connections refused because the connection cap was reached.",
                &[],
                1.0,
            );
            tokio::spawn(refuse(stream));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let phase = Arc::new(Phase::default());
        let io = Conn {
            stream,
            phase: phase.clone(),
            _slot: slot,
            rewrite: None,
        };
        let service = ConnService {
            router: router.clone(),
            phase: phase.clone(),
            peer,
        };
        let limits = Timeouts {
            header_timeout: limits.header_timeout,
            idle_timeout: limits.idle_timeout,
        };
        tokio::spawn(drive(
            io,
            service,
            limits,
            stop_rx.clone(),
            draining.clone(),
        ));
    }
    drop(listener);
    draining.store(true, Ordering::Release);
    let _ = stop_tx.send(true);
    drop(stop_rx);
    if tokio::time::timeout(limits.drain_timeout, stop_tx.closed())
        .await
        .is_err()
    {
        tracing::warn!(
            drain_timeout_ms = limits.drain_timeout.as_millis(),
            "connections still open after the drain timeout; closing them"
        );
    }
    Ok(())
}

/// Serves one connection until it ends, its time limits cut it, or a
/// shutdown lets it finish its request and closes it.
async fn drive(
    io: Conn,
    service: ConnService,
    limits: Timeouts,
    mut stop: watch::Receiver<bool>,
    draining: Arc<AtomicBool>,
) {
    let phase = io.phase.clone();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new());
    // The watchdog owns header timing (hyper's would also cut idle
    // keep-alive connections at the header timeout).
    builder.header_read_timeout(None);
    let conn = builder
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(conn);
    let dog = watchdog(phase, limits, now_ms());
    tokio::pin!(dog);
    let mut stopping = draining.load(Ordering::Acquire);
    if stopping {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                break;
            }
            () = &mut dog => {
                tracing::debug!("connection closed by its time limits");
                break;
            }
            _ = stop.changed(), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
    drop(stop);
}

/// Answers a connection over the cap with `503` and closes it.
async fn refuse(mut stream: TcpStream) {
    let body = serde_json::to_vec(&problem(
        StatusCode::SERVICE_UNAVAILABLE,
        "too_many_connections",
        "the server has as many connections open as it takes; retry shortly",
    ))
    .unwrap_or_default();
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: {}\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n",
        crate::error::PROBLEM_JSON,
        body.len()
    );
    // Read what the client sent first, so closing does not reset the
    // connection before it reads the answer.
    let mut sink = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_millis(100), async {
        use tokio::io::AsyncReadExt;
        stream.read(&mut sink).await
    })
    .await;
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(&body).await?;
        stream.shutdown().await
    })
    .await;
}

/// `router` behind the layers every listener's routes get: bounded bodies
/// (inside) and the request context (request id, access log, problem
/// documents for every error; outside), with panics answered `500`.
pub fn edge(router: Router, limits: &Limits) -> Router {
    let router = router
        .layer(axum::middleware::from_fn_with_state(
            limits.clone(),
            bound_body,
        ))
        .layer(tower_http::catch_panic::CatchPanicLayer::new());
    // CORS inside the request context: preflights get a request id and an
    // access line, and error answers carry the CORS headers a page needs
    // to read them.
    let router = match cors(&limits.origins) {
        Some(layer) => router.layer(layer),
        None => router,
    };
    router.layer(axum::middleware::from_fn(
        crate::request_id::request_context,
    ))
}

/// The CORS policy for `origins` (`None`: cross-origin browsers get no
/// CORS headers, so they cannot read answers): the headers clients send
/// (`Authorization`, `Content-Type`, `Idempotency-Key`, `If-Match`,
/// `X-Consistency-Token`, `X-Correlation-Id`, `X-Request-Id`, `traceparent`)
/// and the ones they must read (`ETag`, `Location`, `X-Request-Id`,
/// `Retry-After`, `Idempotent-Replayed`). Bearer tokens, not cookies: no
/// credentials mode, so `*` is allowed.
pub fn cors(origins: &auth::Origins) -> Option<tower_http::cors::CorsLayer> {
    use axum::http::{HeaderName, Method};
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if !origins.is_configured() {
        return None;
    }
    let allow = if origins.allows_any() {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.exact())
    };
    let request_headers = [
        "authorization",
        "content-type",
        "idempotency-key",
        "if-match",
        "x-consistency-token",
        "x-correlation-id",
        "x-request-id",
        "traceparent",
    ];
    let exposed = [
        "etag",
        "location",
        "x-request-id",
        "retry-after",
        "idempotent-replayed",
    ];
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers(request_headers.map(HeaderName::from_static))
            .expose_headers(exposed.map(HeaderName::from_static))
            .max_age(Duration::from_secs(600)),
    )
}
