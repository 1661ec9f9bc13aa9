//! `spawn_app()`: a fresh database, a port-0 server, a client, tokens.

use std::net::SocketAddr;

use command_api::auth::{Authenticator, Role, Secret};
use command_api::Config;
use eventlog::testing::TestDatabase;
use eventlog::EventLog;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::sync::oneshot;

const SECRET: &str = "test-secret-test-secret-test-secret-42";

/// Which store a test runs on.
#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Postgres,
    Sqlite,
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub auth: Authenticator,
    pub log: EventLog,
    db: Option<TestDatabase>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts a problem document with `status` and returns it.
    #[track_caller]
    pub fn problem(&self, status: u16) -> &Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.body
        );
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "{}",
            self.body
        );
        for field in ["type", "title", "status", "detail", "request_id"] {
            assert!(
                self.body.get(field).is_some(),
                "problem lacks {field}: {}",
                self.body
            );
        }
        assert_eq!(self.body["status"], status);
        &self.body
    }

    /// The `id` of a success body.
    #[track_caller]
    pub fn id(&self) -> String {
        assert!(
            self.status.is_success(),
            "expected success, got {}: {}",
            self.status,
            self.body
        );
        self.body["id"].as_str().expect("id").to_string()
    }
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    let db = match backend {
        Backend::Postgres => TestDatabase::postgres().await,
        Backend::Sqlite => TestDatabase::sqlite().await,
    };
    let mut app = spawn_on(db.db.clone()).await;
    app.db = Some(db);
    app
}

/// Another command API over the same store: what a second process (with
/// its own aggregate cache) is to the first.
async fn spawn_on(db: eventlog::Database) -> TestApp {
    let keys = eventlog::testing::keys(&db);
    let app = command_api::build(db.clone(), &Config::new(Secret::new(SECRET), keys));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run(listener, async {
        let _ = stopped.await;
    }));
    TestApp {
        addr,
        client: reqwest::Client::new(),
        auth: Authenticator::new(Secret::new(SECRET)),
        log: EventLog::new(db),
        db: None,
        stop: Some(stop),
        server: Some(server),
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn admin(&self) -> String {
        self.auth
            .mint("ops", Role::Admin, chrono::Duration::hours(1))
    }

    pub fn service(&self) -> String {
        self.auth.mint(
            "payment-provider",
            Role::Service,
            chrono::Duration::hours(1),
        )
    }

    pub fn customer(&self, user_id: &str) -> String {
        self.auth
            .mint(user_id, Role::Customer, chrono::Duration::hours(1))
    }

    /// Sends a request with a JSON body (or none) and reads the reply.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut req = self.client.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        read(req.send().await.expect("request")).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.send(Method::POST, path, token, Some(body), &[]).await
    }

    pub async fn post_empty(&self, path: &str, token: Option<&str>) -> Reply {
        self.send(Method::POST, path, token, None, &[]).await
    }

    /// The database under the app.
    pub fn database(&self) -> &eventlog::Database {
        &self.db.as_ref().expect("running").db
    }

    /// A second command API process over this app's store (stop it first).
    pub async fn second_process(&self) -> TestApp {
        spawn_on(self.database().clone()).await
    }

    /// The store's head position (to prove that rejected commands append nothing).
    pub async fn head(&self) -> i64 {
        self.log.head().await.expect("head")
    }

    /// Registers a user and returns (id, customer token).
    pub async fn register(&self, email: &str) -> (String, String) {
        let id = self
            .post(
                "/v1/users",
                None,
                json!({"email": email, "name": "Test User"}),
            )
            .await
            .id();
        let token = self.customer(&id);
        (id, token)
    }

    pub async fn product(&self, sku: &str, price: i64, currency: &str) {
        let r = self
            .post("/v1/products", Some(&self.admin()), json!({"sku": sku, "name": format!("Product {sku}"), "unit_price": {"amount_minor": price, "currency": currency}}))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }

    /// A draft EUR order for a fresh customer: (order id, customer id, customer token).
    pub async fn draft_order(&self, email: &str) -> (String, String, String) {
        let (customer, token) = self.register(email).await;
        let order = self
            .post(
                "/v1/orders",
                Some(&token),
                json!({"customer_id": customer, "currency": "EUR"}),
            )
            .await
            .id();
        (order, customer, token)
    }

    /// Stops the server and drops the database.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
        if let Some(db) = self.db.take() {
            db.drop_database().await;
        }
    }
}

pub async fn read(resp: reqwest::Response) -> Reply {
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.expect("body");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    Reply {
        status,
        headers,
        body,
    }
}

/// Runs an async test body on both backends.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod postgres { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let app = $crate::helpers::spawn_app($crate::helpers::Backend::Postgres).await;
                super::$name(&app).await;
                app.stop().await;
            }
        )* }
        mod sqlite { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let app = $crate::helpers::spawn_app($crate::helpers::Backend::Sqlite).await;
                super::$name(&app).await;
                app.stop().await;
            }
        )* }
    };
}
