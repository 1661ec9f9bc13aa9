//! One connection: the socket wrapper that records what the connection is
//! doing and rewrites hyper's own error answers, the hyper service that
//! marks requests in flight, and the watchdog that enforces the header and
//! idle timeouts.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Router;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tower::ServiceExt;

use crate::error::problem;

/// The per-connection time limits the watchdog enforces.
#[derive(Clone, Copy)]
pub(super) struct Timeouts {
    pub(super) header_timeout: Duration,
    pub(super) idle_timeout: Duration,
}

/// What a connection is doing, shared by its socket wrapper, its service
/// and its watchdog. Times are milliseconds since [`epoch`].
#[derive(Default)]
pub(super) struct Phase {
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

pub(super) fn now_ms() -> u64 {
    // At least 1, so 0 can mean "not set".
    u64::try_from(epoch().elapsed().as_millis()).unwrap_or(u64::MAX) + 1
}

/// The socket of one connection: records activity into its [`Phase`],
/// holds its slot under the connection cap (also while it is a WebSocket),
/// and rewrites hyper's own bodiless error answers into problem documents.
pub(super) struct Conn {
    pub(super) stream: TcpStream,
    pub(super) phase: Arc<Phase>,
    /// Held, not read: the connection's place under the cap, given back
    /// when the socket (or the WebSocket it became) is dropped.
    pub(super) _slot: OwnedSemaphorePermit,
    /// A replacement answer being written, and how much of it is out.
    pub(super) rewrite: Option<(Vec<u8>, usize)>,
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
pub(super) struct ConnService {
    pub(super) router: Router,
    pub(super) phase: Arc<Phase>,
    pub(super) peer: std::net::SocketAddr,
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
pub(super) async fn watchdog(phase: Arc<Phase>, limits: Timeouts, started: u64) {
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
