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

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use http_body_util::BodyExt;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt;

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

/// The per-connection time limits the watchdog enforces.
#[derive(Clone, Copy)]
struct Timeouts {
    header_timeout: Duration,
    idle_timeout: Duration,
}

/// What a connection is doing, shared by its socket wrapper, its service
/// and its watchdog. Times are milliseconds since [`epoch`].
#[derive(Default)]
struct Phase {
    /// Requests handed to the router and not yet answered.
    serving: AtomicUsize,
    /// When the pending request's first byte arrived (0: none pending).
    head_since: AtomicU64,
    /// Last byte read or written.
    last_io: AtomicU64,
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_ms() -> u64 {
    // At least 1, so 0 can mean "not set".
    u64::try_from(epoch().elapsed().as_millis()).unwrap_or(u64::MAX) + 1
}

/// The socket of one connection: records activity into its [`Phase`],
/// holds its slot under the connection cap (also while it is a WebSocket),
/// and rewrites hyper's own bodiless error answers into problem documents.
struct Conn {
    stream: TcpStream,
    phase: Arc<Phase>,
    _slot: OwnedSemaphorePermit,
    /// A replacement answer being written, and how much of it is out.
    rewrite: Option<(Vec<u8>, usize)>,
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            let now = now_ms();
            self.phase.last_io.store(now, Ordering::Relaxed);
            if self.phase.serving.load(Ordering::Acquire) == 0 {
                let _ = self.phase.head_since.compare_exchange(
                    0,
                    now,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                );
            }
        }
        polled
    }
}

/// hyper's answer to a request it could not parse: a status line, an empty
/// body, written while no request is being served. Returns the status.
fn hyper_error_answer(bytes: &[u8]) -> Option<StatusCode> {
    let head = bytes.strip_prefix(b"HTTP/1.1 ")?;
    let code = std::str::from_utf8(head.get(..3)?)
        .ok()?
        .parse::<u16>()
        .ok()?;
    let status = StatusCode::from_u16(code).ok()?;
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let empty = bytes[..end]
        .split(|&b| b == b'\n')
        .any(|l| l.eq_ignore_ascii_case(b"content-length: 0\r"));
    (status.is_client_error() && empty).then_some(status)
}

fn problem_answer(status: StatusCode) -> Vec<u8> {
    let (code, detail) = match status {
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => (
            "headers_too_large",
            "the request's headers are too large or too many",
        ),
        StatusCode::URI_TOO_LONG => ("uri_too_long", "the request target is too long"),
        _ => ("malformed_request", "the request is not valid HTTP/1.1"),
    };
    let body = serde_json::to_vec(&problem(status, code, detail)).unwrap_or_default();
    let mut out = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: {}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error"),
        crate::error::PROBLEM_JSON,
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(&body);
    out
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.rewrite.is_none() && this.phase.serving.load(Ordering::Acquire) == 0 {
            if let Some(status) = hyper_error_answer(buf) {
                this.rewrite = Some((problem_answer(status), 0));
            }
        }
        if let Some((answer, written)) = &mut this.rewrite {
            while *written < answer.len() {
                match Pin::new(&mut this.stream).poll_write(cx, &answer[*written..]) {
                    Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    Poll::Ready(Ok(n)) => *written += n,
                    other => return other,
                }
            }
            // hyper closes after its error answer; anything after it is dropped.
            return Poll::Ready(Ok(buf.len()));
        }
        let polled = Pin::new(&mut this.stream).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.phase.last_io.store(now_ms(), Ordering::Relaxed);
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// The router as one connection's hyper service, marking its phase.
#[derive(Clone)]
struct ConnService {
    router: Router,
    phase: Arc<Phase>,
    peer: std::net::SocketAddr,
}

/// Marks a request answered when dropped (also if its future is dropped).
struct Serving(Arc<Phase>);

impl Drop for Serving {
    fn drop(&mut self) {
        self.0.last_io.store(now_ms(), Ordering::Relaxed);
        self.0.serving.fetch_sub(1, Ordering::AcqRel);
    }
}

impl hyper::service::Service<hyper::Request<hyper::body::Incoming>> for ConnService {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Self::Error>> + Send>>;

    fn call(&self, req: hyper::Request<hyper::body::Incoming>) -> Self::Future {
        self.phase.serving.fetch_add(1, Ordering::AcqRel);
        self.phase.head_since.store(0, Ordering::Release);
        let serving = Serving(self.phase.clone());
        let router = self.router.clone();
        let mut req = req.map(Body::new);
        req.extensions_mut().insert(auth::rate::PeerAddr(self.peer));
        Box::pin(async move {
            let response = router.oneshot(req).await;
            drop(serving);
            response
        })
    }
}

/// Resolves when the connection has broken one of its time limits.
async fn watchdog(phase: Arc<Phase>, limits: Timeouts, started: u64) {
    let header_ms = u64::try_from(limits.header_timeout.as_millis()).unwrap_or(u64::MAX);
    let idle_ms = u64::try_from(limits.idle_timeout.as_millis()).unwrap_or(u64::MAX);
    let tick = (limits.header_timeout.min(limits.idle_timeout) / 4)
        .clamp(Duration::from_millis(20), Duration::from_secs(1));
    let mut served_one = false;
    loop {
        tokio::time::sleep(tick).await;
        if phase.serving.load(Ordering::Acquire) > 0 {
            served_one = true;
            continue;
        }
        let now = now_ms();
        let head = phase.head_since.load(Ordering::Acquire);
        let last = phase.last_io.load(Ordering::Relaxed).max(started);
        let expired = if head != 0 {
            now.saturating_sub(head) > header_ms
        } else if served_one || phase.last_io.load(Ordering::Relaxed) != 0 {
            now.saturating_sub(last) > idle_ms
        } else {
            // Nothing received since the connection opened.
            now.saturating_sub(started) > header_ms
        };
        if expired {
            return;
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
            eventlog::metrics::count(
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
        let mut stop = stop_rx.clone();
        let draining = draining.clone();
        tokio::spawn(async move {
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
        });
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

/// Bounds every request body: a declared `Content-Length` over the limit
/// gets `413` before anything is read; the body is read whole within the
/// body timeout (`408` otherwise) and handed on in memory. Requests without
/// a body (GET, WebSocket upgrades) pass untouched.
pub async fn bound_body(State(limits): State<Limits>, req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().parse::<u64>());
    let chunked = req.headers().contains_key(header::TRANSFER_ENCODING);
    let max = limits.max_body_bytes;
    match declared {
        Some(Ok(n)) if n > max as u64 => return too_large(max),
        Some(Ok(0)) | None if !chunked => return next.run(req).await,
        _ => {}
    }
    let (parts, body) = req.into_parts();
    let limited = http_body_util::Limited::new(body, max);
    match tokio::time::timeout(limits.body_timeout, limited.collect()).await {
        Err(_) => closing(
            problem(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                &format!(
                    "the request body did not arrive within {} ms",
                    limits.body_timeout.as_millis()
                ),
            )
            .into_response(),
        ),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => too_large(max),
        Ok(Err(_)) => closing(
            problem(
                StatusCode::BAD_REQUEST,
                "malformed_body",
                "the request body could not be read",
            )
            .into_response(),
        ),
        Ok(Ok(collected)) => {
            let req = Request::from_parts(parts, Body::from(collected.to_bytes()));
            next.run(req).await
        }
    }
}

fn too_large(max: usize) -> Response {
    closing(
        problem(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            &format!("the request body is larger than {max} bytes"),
        )
        .into_response(),
    )
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

/// The body was not read to its end: the connection cannot be reused.
fn closing(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hyper_error_answers_are_recognised() {
        let hyper = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Tue, 01 Dec 2026 03:00:00 GMT\r\n\r\n";
        assert_eq!(
            hyper_error_answer(hyper),
            Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
        );
        let ours = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/problem+json\r\ncontent-length: 120\r\n\r\n{";
        assert_eq!(hyper_error_answer(ours), None);
        assert_eq!(
            hyper_error_answer(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"),
            None
        );
        let answer =
            String::from_utf8(problem_answer(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)).unwrap();
        assert!(answer.starts_with("HTTP/1.1 431 "));
        assert!(answer.contains("application/problem+json"));
        assert!(answer.ends_with('}'));
    }
}
