//! Connection hygiene of the real `serve` process, over raw sockets: silent
//! and slow clients are cut off, idle keep-alive connections closed, bodies
//! bounded in size and time, connections capped, and every answer the
//! server gives on the way is a problem document.

use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::Server;

const BIN: &str = env!("CARGO_BIN_EXE_shopstream");

/// `serve` with short limits, so the test sees them act in seconds.
async fn start(data: &std::path::Path) -> Server {
    let args = [
        "serve",
        "--http-header-timeout",
        "1s",
        "--http-idle-timeout",
        "3s",
        "--http-body-timeout",
        "2s",
    ];
    Server::start_bin(BIN, &args, data, None).await
}

async fn open(server: &Server) -> TcpStream {
    TcpStream::connect(server.base().trim_start_matches("http://"))
        .await
        .expect("connect")
}

/// Reads until the server closes the connection (or `within` passes);
/// returns what arrived and when the close came.
async fn read_to_close(stream: &mut TcpStream, within: Duration) -> (Vec<u8>, Option<Duration>) {
    let started = Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let left = within.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (out, Some(started.elapsed())),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (out, None),
        }
    }
}

/// The status and the parsed body of a raw HTTP/1.1 answer; asserts the
/// body is a problem document when the status is an error.
fn problem(raw: &[u8]) -> (u16, Value) {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete answer");
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let lower = head.to_ascii_lowercase();
    assert!(
        lower.contains("content-type: application/problem+json"),
        "not a problem document: {head}"
    );
    let doc: Value = serde_json::from_str(body).expect("problem JSON");
    assert_eq!(doc["status"], status, "{doc}");
    assert!(doc["type"].as_str().is_some_and(|t| !t.is_empty()), "{doc}");
    (status, doc)
}

#[tokio::test]
async fn silent_slow_and_idle_connections_are_closed() {
    let data = tempfile::tempdir().expect("tempdir");
    let server = start(data.path()).await;

    // Sends nothing: closed after the header timeout (1 s).
    let mut silent = open(&server).await;
    let (_, closed) = read_to_close(&mut silent, Duration::from_secs(10)).await;
    let closed = closed.expect("a silent connection is closed");
    assert!(closed < Duration::from_secs(4), "closed after {closed:?}");

    // Headers trickled one line per 300 ms: still cut off at ~1 s.
    let mut slow = open(&server).await;
    slow.write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    let started = Instant::now();
    let mut cut = false;
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        if slow.write_all(b"X-Slow: 1\r\n").await.is_err() {
            cut = true;
            break;
        }
        let mut probe = [0u8; 1];
        if let Ok(Ok(0)) =
            tokio::time::timeout(Duration::from_millis(1), slow.read(&mut probe)).await
        {
            cut = true;
            break;
        }
    }
    assert!(cut, "a slowloris client was never cut off");
    assert!(started.elapsed() < Duration::from_secs(5));

    // Keep-alive: open between requests for the idle timeout (3 s), which
    // is longer than the header timeout, then closed.
    let mut idle = open(&server).await;
    idle.write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut buf = [0u8; 1024];
    let n = idle.read(&mut buf).await.expect("answer");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let (_, closed) = read_to_close(&mut idle, Duration::from_secs(10)).await;
    let closed = closed.expect("an idle keep-alive connection is closed");
    assert!(
        closed > Duration::from_millis(2000) && closed < Duration::from_secs(6),
        "idle connection closed after {closed:?}"
    );

    // A body declared as 100 bytes with 8 sent: 408 after the body timeout.
    let mut stalled = open(&server).await;
    stalled
        .write_all(b"POST /v1/users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"email\"")
        .await
        .expect("write");
    let (raw, _) = read_to_close(&mut stalled, Duration::from_secs(10)).await;
    let (status, doc) = problem(&raw);
    assert_eq!(status, 408, "{doc}");
    assert_eq!(doc["type"], "urn:shopstream:problem:body_timeout");

    // The server still serves.
    assert_eq!(server.get("/livez").await.0, 200);
    server.stop().await;
}

#[tokio::test]
async fn oversized_and_malformed_requests_get_problem_documents() {
    let data = tempfile::tempdir().expect("tempdir");
    let server = start(data.path()).await;

    // A declared 10 GB body: refused at once, nothing read.
    let mut huge = open(&server).await;
    let started = Instant::now();
    huge.write_all(b"POST /v1/users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10000000000\r\n\r\n{")
        .await
        .expect("write");
    let (raw, _) = read_to_close(&mut huge, Duration::from_secs(5)).await;
    let (status, _) = problem(&raw);
    assert_eq!(status, 413);
    assert!(started.elapsed() < Duration::from_secs(2));

    // The same on the GraphQL endpoint.
    let mut huge = open(&server).await;
    huge.write_all(b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10000000000\r\n\r\n")
        .await
        .expect("write");
    let (raw, _) = read_to_close(&mut huge, Duration::from_secs(5)).await;
    assert_eq!(problem(&raw).0, 413);

    // A 1 MiB header: 431, as a problem document (hyper's own answer has
    // no body; the server rewrites it).
    let mut big = open(&server).await;
    let mut request = b"GET /livez HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    request.extend(std::iter::repeat_n(b'x', 1 << 20));
    request.extend_from_slice(b"\r\n\r\n");
    let _ = big.write_all(&request).await;
    let (raw, _) = read_to_close(&mut big, Duration::from_secs(5)).await;
    let (status, doc) = problem(&raw);
    assert_eq!(status, 431, "{doc}");

    // Not HTTP at all: 400, as a problem document.
    let mut garbage = open(&server).await;
    garbage
        .write_all(b"\x16\x03\x01 not http at all\r\n\r\n")
        .await
        .expect("write");
    let (raw, _) = read_to_close(&mut garbage, Duration::from_secs(5)).await;
    assert_eq!(problem(&raw).0, 400);

    assert_eq!(server.get("/livez").await.0, 200);
    server.stop().await;
}

#[tokio::test]
async fn connections_over_the_cap_get_503_and_the_cap_frees_up() {
    let data = tempfile::tempdir().expect("tempdir");
    let args = ["serve", "--http-max-connections", "8"];
    let server = Server::start_bin(BIN, &args, data.path(), None).await;
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(open(&server).await);
    }
    // Let the server accept them all before the ninth.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut ninth = open(&server).await;
    ninth
        .write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let (raw, _) = read_to_close(&mut ninth, Duration::from_secs(5)).await;
    let (status, doc) = problem(&raw);
    assert_eq!(status, 503, "{doc}");
    assert!(String::from_utf8_lossy(&raw)
        .to_ascii_lowercase()
        .contains("retry-after:"));
    drop(held);
    // Slots come back as the held connections close.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let fresh = reqwest::Client::new();
        if let Ok(r) = fresh.get(format!("{}/livez", server.base())).send().await {
            if r.status() == 200 {
                break;
            }
        }
        assert!(Instant::now() < deadline, "the cap never freed up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.stop().await;
}

/// Sends `raw` on a fresh connection and returns the whole answer.
async fn raw_answer(server: &Server, raw: &[u8]) -> Vec<u8> {
    let mut s = open(server).await;
    let _ = s.write_all(raw).await;
    read_to_close(&mut s, Duration::from_secs(10)).await.0
}

#[tokio::test]
async fn every_error_status_the_server_emits_is_a_problem_document() {
    let data = tempfile::tempdir().expect("tempdir");
    let args = [
        "serve",
        "--http-body-timeout",
        "1s",
        "--http-max-connections",
        "4",
        "--max-token-lifetime",
        "1h",
    ];
    let server = Server::start_bin(BIN, &args, data.path(), None).await;
    let admin = crate::helpers::run_cli(data.path(), &["token", "--sub", "ops", "--role", "admin"]);
    let long_lived = crate::helpers::run_cli(
        data.path(),
        &["token", "--sub", "ops", "--role", "admin", "--ttl", "2h"],
    );
    let (_, user) = server
        .post(
            "/v1/users",
            None,
            serde_json::json!({"email": "walk@example.com", "name": "Walk"}),
        )
        .await;
    let user_id = user["id"].as_str().expect("id").to_string();
    let customer = crate::helpers::run_cli(
        data.path(),
        &["token", "--sub", &user_id, "--role", "customer"],
    );
    let ok = "{\"email\":\"w2@example.com\",\"name\":\"W\"}";
    let http = |method: &str, path: &str, headers: &[(&str, &str)], body: &str| {
        let mut raw = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
        for (k, v) in headers {
            raw.push_str(&format!("{k}: {v}\r\n"));
        }
        if !body.is_empty() || method != "GET" {
            raw.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        raw.push_str("\r\n");
        raw.push_str(body);
        raw.into_bytes()
    };
    let admin_h = format!("Bearer {admin}");
    let customer_h = format!("Bearer {customer}");
    let long_h = format!("Bearer {long_lived}");
    let cases: Vec<(u16, Vec<u8>)> = vec![
        (400, http("POST", "/v1/users", &[], "{not json")),
        (400, b"NOT-HTTP\r\n\r\n".to_vec()),
        (401, http("POST", "/v1/products", &[], "{}")),
        // A token longer-lived than --max-token-lifetime.
        (401, http("POST", "/v1/products", &[("Authorization", &long_h)], "{}")),
        (403, http("POST", "/v1/products", &[("Authorization", &customer_h)], "{\"sku\":\"A\",\"name\":\"A\",\"unit_price\":{\"amount_minor\":1,\"currency\":\"EUR\"}}")),
        (404, http("GET", "/nowhere", &[], "")),
        (404, http("POST", "/v1/orders/00000000-0000-4000-8000-000000000000/place", &[("Authorization", &admin_h)], "")),
        (405, http("DELETE", "/v1/users", &[], "")),
        (409, http("POST", "/v1/users", &[], "{\"email\":\"walk@example.com\",\"name\":\"Again\"}")),
        (412, http("PATCH", &format!("/v1/users/{user_id}"), &[("Authorization", &admin_h), ("If-Match", "\"9\"")], "{\"name\":\"New\"}")),
        (413, http("POST", "/v1/users", &[], &"x".repeat(70_000))),
        (414, format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(70_000)).into_bytes()),
        (415, {
            let mut r = http("POST", "/v1/users", &[], ok);
            let text = String::from_utf8_lossy(&r).replace("application/json", "text/plain");
            r = text.into_bytes();
            r
        }),
        (422, http("POST", "/v1/users", &[], "{\"email\":\"\",\"name\":\"\"}")),
        (431, {
            let mut r = b"GET /livez HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
            r.extend(std::iter::repeat_n(b'x', 1 << 20));
            r.extend_from_slice(b"\r\n\r\n");
            r
        }),
    ];
    for (expected, raw) in &cases {
        let answer = raw_answer(&server, raw).await;
        let (status, doc) = problem(&answer);
        assert_eq!(
            status,
            *expected,
            "{} → {doc}",
            String::from_utf8_lossy(&raw[..raw.len().min(60)])
        );
    }
    // 408: a body that never completes.
    let mut stalled = open(&server).await;
    stalled
        .write_all(b"POST /v1/users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10\r\n\r\n{")
        .await
        .expect("write");
    let (raw, _) = read_to_close(&mut stalled, Duration::from_secs(10)).await;
    assert_eq!(problem(&raw).0, 408);
    // 503: over the connection cap (4).
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(open(&server).await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let answer = raw_answer(&server, b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(problem(&answer).0, 503);
    drop(held);
    server.stop().await;
}
