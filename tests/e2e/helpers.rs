use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_shopstream");

/// The environment that turns the per-caller rate limits off.
pub const NO_RATE_LIMITS: [(&str, &str); 3] = [
    ("SHOPSTREAM_RATE_LIMIT_SIGNUPS", "0"),
    ("SHOPSTREAM_RATE_LIMIT_COMMANDS", "0"),
    ("SHOPSTREAM_RATE_LIMIT_GRAPHQL", "0"),
];

/// Runs a CLI subcommand against `data_dir`; returns its trimmed stdout.
pub fn run_cli(data_dir: &Path, args: &[&str]) -> String {
    let out = cli(data_dir, args);
    assert!(
        out.status.success(),
        "shopstream {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub fn cli(data_dir: &Path, args: &[&str]) -> Output {
    let mut all: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    all.extend([std::ffi::OsStr::new("--data-dir"), data_dir.as_os_str()]);
    bare_cli(&all)
}

/// `shopstream ARGS` as given (for subcommands without a data directory,
/// such as `healthcheck`).
pub fn bare_cli<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("SHOPSTREAM_DATABASE_URL")
        .env_remove("SHOPSTREAM_JWT_SECRET")
        .output()
        .expect("run shopstream")
}

/// A running `shopstream serve` on a free port.
pub struct Server {
    child: Child,
    base: String,
    client: reqwest::Client,
}

impl Drop for Server {
    /// A failing test must not leave its server running.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Server {
    pub async fn start(data_dir: &Path, database_url: Option<&str>) -> Self {
        Self::start_bin(BIN, &["serve"], data_dir, database_url).await
    }

    /// Starts `bin` with `args` on a free port; the banner names the address.
    pub async fn start_bin(
        bin: &str,
        args: &[&str],
        data_dir: &Path,
        database_url: Option<&str>,
    ) -> Self {
        Self::start_with_env(bin, args, data_dir, database_url, &[]).await
    }

    /// [`Server::start_bin`] with extra environment variables.
    pub async fn start_with_env(
        bin: &str,
        args: &[&str],
        data_dir: &Path,
        database_url: Option<&str>,
        env: &[(&str, &str)],
    ) -> Self {
        Self::start_logging(bin, args, data_dir, database_url, env, Stdio::null()).await
    }

    /// [`Server::start_with_env`], its log (stderr) going to `log`.
    pub async fn start_logging(
        bin: &str,
        args: &[&str],
        data_dir: &Path,
        database_url: Option<&str>,
        env: &[(&str, &str)],
        log: Stdio,
    ) -> Self {
        let mut cmd = Command::new(bin);
        // The suites register many users from one address: rate limits
        // are off unless a test turns them on (flags win over these).
        cmd.envs(NO_RATE_LIMITS).envs(env.iter().copied());
        cmd.args(args)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(data_dir);
        if let Some(url) = database_url {
            cmd.arg("--database-url").arg(url);
        }
        let mut child = cmd
            .env_remove("SHOPSTREAM_DATABASE_URL")
            .env_remove("SHOPSTREAM_JWT_SECRET")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn shopstream");
        let stdout = child.stdout.take().expect("stdout");
        // The banner names the REST API's address.
        let base = tokio::task::spawn_blocking(move || {
            let mut lines = BufReader::new(stdout).lines();
            for line in lines.by_ref() {
                let line = line.expect("banner line");
                let line = line.trim();
                let found = line
                    .strip_prefix("REST API")
                    .map(|r| r.trim().trim_end_matches("/v1").to_string())
                    .or_else(|| {
                        line.strip_prefix("GraphQL")
                            .map(|r| r.trim().trim_end_matches("/graphql").to_string())
                    });
                if let Some(base) = found {
                    // Keep draining what the server prints.
                    std::thread::spawn(move || lines.for_each(drop));
                    return base;
                }
            }
            panic!("shopstream exited without printing its address");
        });
        let base = tokio::time::timeout(Duration::from_secs(60), base)
            .await
            .expect("server start timed out")
            .expect("banner");
        Self {
            child,
            base,
            client: reqwest::Client::new(),
        }
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        let mut req = self.client.post(format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if !body.is_null() {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("request");
        (
            resp.status().as_u16(),
            resp.json().await.unwrap_or(Value::Null),
        )
    }

    pub async fn get_auth(&self, path: &str, token: &str) -> (u16, Value) {
        let resp = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("request");
        (
            resp.status().as_u16(),
            resp.json().await.unwrap_or(Value::Null),
        )
    }

    /// A GraphQL request; returns the HTTP status and the response body.
    pub async fn graphql(
        &self,
        token: Option<&str>,
        consistency: Option<i64>,
        query: &str,
        variables: Value,
    ) -> (u16, Value) {
        let mut req = self.client.post(format!("{}/graphql", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(p) = consistency {
            req = req.header("x-consistency-token", p.to_string());
        }
        let resp = req
            .json(&serde_json::json!({ "query": query, "variables": variables }))
            .send()
            .await
            .expect("request");
        (
            resp.status().as_u16(),
            resp.json().await.unwrap_or(Value::Null),
        )
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// A raw POST to `/graphql`.
    pub async fn graphql_raw(&self, body: String) -> (u16, String) {
        let resp = self
            .client
            .post(format!("{}/graphql", self.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request");
        (
            resp.status().as_u16(),
            resp.text().await.unwrap_or_default(),
        )
    }

    pub async fn text(&self, path: &str) -> String {
        let resp = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("request");
        resp.text().await.expect("body")
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let resp = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("request");
        (
            resp.status().as_u16(),
            resp.json().await.unwrap_or(Value::Null),
        )
    }

    /// SIGTERM, then wait: the server must drain and exit 0.
    pub async fn stop(mut self) {
        let pid = self.child.id().to_string();
        let killed = Command::new("kill")
            .arg("-TERM")
            .arg(&pid)
            .status()
            .expect("kill");
        assert!(killed.success());
        let status = tokio::task::spawn_blocking(move || self.child.wait())
            .await
            .expect("join")
            .expect("wait");
        assert!(status.success(), "shopstream exited with {status}");
    }
}

/// A draft order with `quantity` of one product, through the REST API of
/// `server` (whose data directory is `data_dir`): the catalog entry
/// (admin), a signed-up customer and their token, the order and its item.
pub struct DraftOrder {
    pub admin: String,
    pub customer: String,
    pub order_id: String,
}

impl DraftOrder {
    pub async fn create(server: &Server, data_dir: &Path, email: &str, quantity: u32) -> Self {
        let admin = run_cli(data_dir, &["token", "--sub", "ops", "--role", "admin"]);
        let (s, _) = server.post("/v1/products", Some(&admin), serde_json::json!({"sku": "TEE-1", "name": "Tee", "unit_price": {"amount_minor": 1500, "currency": "EUR"}})).await;
        assert_eq!(s, 201);
        let (s, user) = server
            .post(
                "/v1/users",
                None,
                serde_json::json!({"email": email, "name": "E2E"}),
            )
            .await;
        assert_eq!(s, 201);
        let customer_id = user["id"].as_str().expect("id").to_string();
        let customer = run_cli(
            data_dir,
            &["token", "--sub", &customer_id, "--role", "customer"],
        );
        let (s, order) = server
            .post(
                "/v1/orders",
                Some(&customer),
                serde_json::json!({"customer_id": customer_id, "currency": "EUR"}),
            )
            .await;
        assert_eq!(s, 201);
        let order_id = order["id"].as_str().expect("id").to_string();
        let (s, _) = server
            .post(
                &format!("/v1/orders/{order_id}/items"),
                Some(&customer),
                serde_json::json!({"sku": "TEE-1", "quantity": quantity}),
            )
            .await;
        assert_eq!(s, 200);
        Self {
            admin,
            customer,
            order_id,
        }
    }
}

/// The media type an answer declares (empty when none).
pub fn media_type(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// Signs `email` up through the REST API of `server` (data directory
/// `data_dir`) and waits until the customer view has it; returns the user
/// id and an admin token.
pub async fn visible_customer(server: &Server, data_dir: &Path, email: &str) -> (String, String) {
    let (s, user) = server
        .post(
            "/v1/users",
            None,
            serde_json::json!({"email": email, "name": "Visible"}),
        )
        .await;
    assert_eq!(s, 201, "{user}");
    let id = user["id"].as_str().expect("id").to_string();
    let admin = run_cli(data_dir, &["token", "--sub", "ops", "--role", "admin"]);
    let (_, seen) = server
        .graphql(
            Some(&admin),
            user["position"].as_i64(),
            "query($id: ID!) { customer(id: $id) { id } }",
            serde_json::json!({"id": id}),
        )
        .await;
    assert_eq!(seen["data"]["customer"]["id"], id.as_str(), "{seen}");
    (id, admin)
}

/// Rebuilds `projection` through the admin REST API of `server` and waits
/// until the rebuild has swapped in.
pub async fn rebuild_and_wait(server: &Server, admin: &str, projection: &str) {
    let path = format!("/v1/admin/projections/{projection}/rebuild");
    let (s, job) = server.post(&path, Some(admin), serde_json::json!({})).await;
    assert_eq!(s, 202, "{job}");
    let path = format!("/v1/admin/rebuilds/{}", job["id"].as_u64().expect("job id"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (_, j) = server.get_auth(&path, admin).await;
        if j["state"] == "swapped" {
            return;
        }
        assert!(
            j["state"] == "running" && tokio::time::Instant::now() < deadline,
            "{j}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
