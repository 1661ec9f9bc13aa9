//! A real browser (headless Chromium) against the real server: a page on
//! an allowed origin calls the GraphQL and REST APIs across origins (CORS
//! preflights included) and subscribes over the GraphQL WebSocket; the
//! same page on another origin is blocked by the browser — its reads fail,
//! its command is never sent, its WebSocket is refused.

use std::process::Command;

use serde_json::json;

use crate::helpers::Server;

const BIN: &str = env!("CARGO_BIN_EXE_shopstream");

fn chromium() -> String {
    if let Ok(bin) = std::env::var("CHROMIUM") {
        return bin;
    }
    for candidate in ["chromium", "chromium-browser", "google-chrome"] {
        if Command::new(candidate)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return candidate.to_string();
        }
    }
    panic!("no Chromium: install Debian's `chromium` (scripts/test does) or set CHROMIUM")
}

/// The page: one GraphQL query, one REST command, one subscription; each
/// outcome is written into `<pre id="out">`.
fn page(api: &str, token: &str, id: &str, email: &str) -> String {
    format!(
        r#"<!doctype html><html><body><pre id="out"></pre><script>
const API = "{api}", TOKEN = "{token}", ID = "{id}";
const lines = [];
function log(s) {{ lines.push(s); document.getElementById("out").textContent = lines.join("\n");
  fetch("/report", {{ method: "POST", body: s }}); }}
const auth = {{ "Content-Type": "application/json", "Authorization": "Bearer " + TOKEN }};
fetch(API + "/graphql", {{ method: "POST", headers: auth,
  body: JSON.stringify({{ query: "query($id: ID!) {{ customer(id: $id) {{ email }} }}", variables: {{ id: ID }} }}) }})
  .then(r => r.json().then(j => log("GRAPHQL " + r.status + " " + JSON.stringify(j.data))))
  .catch(e => log("GRAPHQL-ERROR " + e));
fetch(API + "/v1/users", {{ method: "POST", headers: {{ "Content-Type": "application/json", "Idempotency-Key": "page-{email}" }},
  body: JSON.stringify({{ email: "{email}", name: "From a page" }}) }})
  .then(r => log("REST " + r.status + " location=" + (r.headers.get("Location") !== null) + " request-id=" + (r.headers.get("X-Request-Id") !== null)))
  .catch(e => log("REST-ERROR " + e));
const ws = new WebSocket(API.replace("http", "ws") + "/graphql/ws", "graphql-transport-ws");
ws.onopen = () => ws.send(JSON.stringify({{ type: "connection_init", payload: {{ Authorization: "Bearer " + TOKEN }} }}));
ws.onmessage = (m) => {{
  const d = JSON.parse(m.data);
  if (d.type === "connection_ack") ws.send(JSON.stringify({{ id: "1", type: "subscribe",
    payload: {{ query: "subscription($id: ID!) {{ customerUpdated(id: $id) {{ email }} }}", variables: {{ id: ID }} }} }}));
  else if (d.type === "next") {{ log("WS " + JSON.stringify(d.payload.data)); ws.close(); }}
}};
ws.onerror = () => log("WS-ERROR");
</script></body></html>"#
    )
}

/// What a page reported (each `log` line is POSTed to its own origin).
type Reports = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

/// Serves `html` at `/` and collects `/report` lines on `listener`.
fn page_server(
    listener: tokio::net::TcpListener,
    html: String,
) -> (Reports, tokio::task::JoinHandle<()>) {
    let reports = Reports::default();
    let sink = reports.clone();
    let app = axum::Router::new()
        .route(
            "/",
            axum::routing::get(move || {
                let html = html.clone();
                async move { axum::response::Html(html) }
            }),
        )
        .route(
            "/report",
            axum::routing::post(move |line: String| {
                let sink = sink.clone();
                async move { sink.lock().expect("lock").push(line) }
            }),
        );
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (reports, task)
}

/// Opens `url` in headless Chromium until the page has reported `want`
/// lines (or 30 s pass); returns them.
async fn run_page(url: &str, reports: &Reports, want: usize) -> Vec<String> {
    let profile = tempfile::tempdir().expect("tempdir");
    let mut browser = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            &format!("--user-data-dir={}", profile.path().display()),
            url,
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run chromium");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while reports.lock().expect("lock").len() < want && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let _ = browser.kill();
    let _ = browser.wait();
    reports.lock().expect("lock").clone()
}

#[tokio::test]
async fn a_browser_page_on_an_allowed_origin_works_and_another_is_blocked() {
    let data = tempfile::tempdir().expect("tempdir");
    // The allowed page's origin must be known before the server starts.
    let allowed_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let allowed_origin = format!("http://{}", allowed_listener.local_addr().expect("addr"));
    let server = Server::start_bin(
        BIN,
        &["serve", "--cors-origin", &allowed_origin],
        data.path(),
        None,
    )
    .await;
    let (id, admin) =
        crate::helpers::visible_customer(&server, data.path(), "browser@example.com").await;

    let html = page(server.base(), &admin, &id, "allowed-page@example.com");
    allowed_listener.set_nonblocking(true).expect("nonblocking");
    let listener = tokio::net::TcpListener::from_std(allowed_listener).expect("listener");
    let (reports, allowed) = page_server(listener, html);
    let out = run_page(&format!("{allowed_origin}/"), &reports, 3)
        .await
        .join("\n");
    assert!(
        out.contains("GRAPHQL 200 {\"customer\":{\"email\":\"browser@example.com\"}}"),
        "{out}"
    );
    assert!(
        out.contains("REST 201 location=true request-id=true"),
        "{out}"
    );
    assert!(
        out.contains("WS {\"customerUpdated\":{\"email\":\"browser@example.com\"}}"),
        "{out}"
    );

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let other_origin = format!("http://{}", listener.local_addr().expect("addr"));
    let html = page(server.base(), &admin, &id, "blocked-page@example.com");
    let (reports, other) = page_server(listener, html);
    let out = run_page(&format!("{other_origin}/"), &reports, 3)
        .await
        .join("\n");
    assert!(out.contains("GRAPHQL-ERROR"), "{out}");
    assert!(out.contains("REST-ERROR"), "{out}");
    assert!(out.contains("WS-ERROR"), "{out}");
    assert!(!out.contains("WS {"), "{out}");
    // The blocked page's command never reached the server: its address is free.
    let (s, body) = server
        .post(
            "/v1/users",
            None,
            json!({"email": "blocked-page@example.com", "name": "Later"}),
        )
        .await;
    assert_eq!(s, 201, "the blocked page's command was applied: {body}");
    allowed.abort();
    other.abort();
    server.stop().await;
}
