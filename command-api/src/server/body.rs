//! Bounded request bodies.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;

use super::Limits;
use crate::error::problem;

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

/// The body was not read to its end: the connection cannot be reused.
fn closing(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}
