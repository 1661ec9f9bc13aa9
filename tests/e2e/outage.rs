//! Chaos with real processes: the database server stopped (`-m immediate`,
//! a crash to PostgreSQL) and restarted under 8 writers, and `serve`
//! stopped with SIGTERM under load. Acknowledged commands are never lost,
//! failures during the outage are fast 503 problem documents, and the
//! service recovers without a restart.
//!
//! The outage test runs its own PostgreSQL cluster (initdb on a free port,
//! as the `postgres` user when the tests run as root), so stopping it
//! disturbs no other test.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::{run_cli, Server};

const BIN: &str = env!("CARGO_BIN_EXE_shopstream");

/// A throwaway PostgreSQL cluster of the test's own.
struct Cluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    as_postgres: bool,
}

impl Cluster {
    fn bin_dir() -> PathBuf {
        if let Ok(dir) = std::env::var("PG_BIN") {
            return PathBuf::from(dir);
        }
        let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.path().join("bin"))
                    .collect()
            })
            .unwrap_or_default();
        found.sort();
        found
            .into_iter()
            .rev()
            .find(|p| p.join("initdb").exists())
            .expect("PostgreSQL server binaries (initdb, pg_ctl): install postgresql or set PG_BIN")
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let path = self.bin.join(tool);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        let out = cmd.args(args).output().expect("run a PostgreSQL tool");
        assert!(
            out.status.success(),
            "{tool} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn create() -> Self {
        let as_postgres = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        let dir = tempfile::tempdir().expect("tempdir");
        if as_postgres {
            let ok = Command::new("chown")
                .arg("postgres")
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(ok.success());
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let cluster = Self {
            bin: Self::bin_dir(),
            dir,
            port,
            as_postgres,
        };
        let data = cluster.data();
        cluster.run(
            "initdb",
            &["-D", &data, "-A", "trust", "-U", "postgres", "--no-sync"],
        );
        cluster.start();
        cluster
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log").display().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-o",
                &options,
                "-l",
                &log,
                "-w",
                "start",
            ],
        );
    }

    /// A crash, as far as PostgreSQL is concerned: no checkpoint, every
    /// connection cut.
    fn stop_immediate(&self) {
        self.run(
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        );
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let path = self.bin.join("pg_ctl");
        let data = self.data();
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        let _ = cmd.args(["-D", &data, "-m", "immediate", "stop"]).output();
    }
}

/// What the writers saw.
#[derive(Default)]
struct Outcomes {
    /// Acknowledged registrations: (user id, position).
    acked: Vec<(String, i64)>,
    /// Statuses other than 201, with how long each took.
    failures: Vec<(u16, Duration, String)>,
    /// Requests that got no HTTP answer at all.
    transport_errors: Vec<String>,
}

/// Registers users with unique addresses until `stop` is set.
async fn writer(base: String, n: usize, stop: Arc<AtomicBool>, out: Arc<Mutex<Outcomes>>) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let email = format!("w{n}-{i}@example.com");
        let started = Instant::now();
        let sent = client
            .post(format!("{base}/v1/users"))
            .json(&json!({"email": email, "name": "Writer"}))
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => {
                out.lock()
                    .expect("lock")
                    .transport_errors
                    .push(format!("{email}: {e}"));
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let status = resp.status().as_u16();
        let media = crate::helpers::media_type(&resp);
        let retry_after = resp.headers().contains_key("retry-after");
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        let took = started.elapsed();
        let mut out = out.lock().expect("lock");
        if status == 201 {
            let id = body["id"].as_str().expect("id").to_string();
            let position = body["position"].as_i64().expect("position");
            out.acked.push((id, position));
        } else {
            let ok_shape =
                media.starts_with("application/problem+json") && (status != 503 || retry_after);
            let note = if ok_shape {
                email
            } else {
                format!("{email}: not a problem document with Retry-After: {media} {body}")
            };
            out.failures.push((status, took, note));
        }
    }
}

/// Running writers and what they saw.
struct Writers {
    stop: Arc<AtomicBool>,
    writers: Vec<tokio::task::JoinHandle<()>>,
    out: Arc<Mutex<Outcomes>>,
}

impl Writers {
    /// Stops the writers and returns what they saw.
    async fn finish(self) -> Outcomes {
        self.stop.store(true, Ordering::Relaxed);
        for w in self.writers {
            w.await.expect("writer");
        }
        Arc::try_unwrap(self.out)
            .ok()
            .expect("writers done")
            .into_inner()
            .expect("lock")
    }
}

async fn timed_get(client: &reqwest::Client, url: &str) -> (u16, Duration, Value) {
    let started = Instant::now();
    let resp = client.get(url).send().await.expect("an answer");
    let status = resp.status().as_u16();
    (
        status,
        started.elapsed(),
        resp.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn a_database_crash_under_load_loses_no_acknowledged_command() {
    let cluster = Arc::new(
        tokio::task::spawn_blocking(Cluster::create)
            .await
            .expect("cluster"),
    );
    let data = tempfile::tempdir().expect("tempdir");
    let url = cluster.url();
    let server = Server::start(data.path(), Some(&url)).await;
    let admin = run_cli(data.path(), &["token", "--sub", "ops", "--role", "admin"]);
    let stop = Arc::new(AtomicBool::new(false));
    let out = Arc::new(Mutex::new(Outcomes::default()));
    let writers: Vec<_> = (0..8)
        .map(|n| {
            tokio::spawn(writer(
                server.base().to_string(),
                n,
                stop.clone(),
                out.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = out.lock().expect("lock").acked.len();
    assert!(before > 0, "nothing was acknowledged before the outage");

    tokio::task::spawn_blocking({
        let c = cluster.clone();
        move || c.stop_immediate()
    })
    .await
    .expect("stop");
    let outage = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;

    // During the outage: probes and queries answer fast.
    let client = reqwest::Client::new();
    // /readyz answers at once from the last background check, which
    // notices the outage within a couple of seconds.
    let noticed = Instant::now();
    loop {
        let (status, took, body) = timed_get(&client, &format!("{}/readyz", server.base())).await;
        assert!(took < Duration::from_secs(1), "/readyz took {took:?}");
        if status == 503 {
            assert_eq!(body["type"], "urn:shopstream:problem:unavailable", "{body}");
            break;
        }
        assert!(
            noticed.elapsed() < Duration::from_secs(4),
            "/readyz still ready: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let started = Instant::now();
    let (_, answer) = server
        .graphql(
            Some(&admin),
            None,
            "query($id: ID!) { customer(id: $id) { id } }",
            json!({"id": "00000000-0000-4000-8000-000000000000"}),
        )
        .await;
    let took = started.elapsed();
    let code = answer["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or("none");
    assert!(
        matches!(code, "UNAVAILABLE" | "TIMEOUT"),
        "GraphQL during the outage: {answer}"
    );
    assert!(took < Duration::from_secs(4), "GraphQL took {took:?}");
    tokio::time::sleep(Duration::from_secs(2)).await;

    tokio::task::spawn_blocking({
        let c = cluster.clone();
        move || c.start()
    })
    .await
    .expect("restart");
    let down_for = outage.elapsed();

    // Recovery without a restart of shopstream.
    let recovered = Instant::now();
    loop {
        let acked_now = out.lock().expect("lock").acked.len();
        let (status, _, _) = timed_get(&client, &format!("{}/readyz", server.base())).await;
        if status == 200 && acked_now > before {
            let during: usize = out.lock().expect("lock").acked.len();
            if during > before + 16 {
                break;
            }
        }
        assert!(
            recovered.elapsed() < Duration::from_secs(20),
            "commands did not resume after the database came back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let out = Writers { stop, writers, out }.finish().await;
    // Only 503 problem documents, each within ~2 s, while the store was down.
    for (status, took, note) in &out.failures {
        assert_eq!(*status, 503, "{note}");
        assert!(!note.contains("not a problem"), "{note}");
        assert!(
            *took < Duration::from_millis(3500),
            "a 503 took {took:?}: {note}"
        );
    }
    assert!(
        !out.failures.is_empty(),
        "no command failed while the store was down for {down_for:?}"
    );
    assert!(
        out.transport_errors.is_empty(),
        "requests without an answer: {:?}",
        &out.transport_errors[..out.transport_errors.len().min(5)]
    );

    // Every acknowledged registration is in the store and, once the read
    // models reach the highest acknowledged position, in the read models.
    let highest = out.acked.iter().map(|(_, p)| *p).max().expect("acked");
    for (id, _) in &out.acked {
        let (status, events) = server
            .get_auth(&format!("/v1/users/{id}/events"), &admin)
            .await;
        assert_eq!(status, 200, "acknowledged user {id} is missing: {events}");
    }
    for chunk in out.acked.chunks(50) {
        let fields: String = chunk
            .iter()
            .enumerate()
            .map(|(i, (id, _))| format!("c{i}: customer(id: \"{id}\") {{ id }} "))
            .collect();
        let (_, answer) = server
            .graphql(
                Some(&admin),
                Some(highest),
                &format!("{{ {fields} }}"),
                json!({}),
            )
            .await;
        assert_eq!(
            answer["extensions"]["consistency"]["stale"], false,
            "read models did not catch up: {answer}"
        );
        for (i, (id, _)) in chunk.iter().enumerate() {
            assert_eq!(
                answer["data"][format!("c{i}")]["id"],
                id.as_str(),
                "{answer}"
            );
        }
    }
    eprintln!(
        "outage {down_for:?}: {} acknowledged, {} refused with 503",
        out.acked.len(),
        out.failures.len()
    );
    server.stop().await;
    drop(cluster);
}

#[tokio::test]
async fn sigterm_under_load_drains_and_keeps_acknowledged_work() {
    let data = tempfile::tempdir().expect("tempdir");
    let args = ["serve", "--drain-timeout", "5s"];
    let server = Server::start_bin(BIN, &args, data.path(), None).await;
    let base = server.base().to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let out = Arc::new(Mutex::new(Outcomes::default()));
    let writers: Vec<_> = (0..8)
        .map(|n| tokio::spawn(writer(base.clone(), n, stop.clone(), out.clone())))
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let signalled = Instant::now();
    server.stop().await;
    let exited = signalled.elapsed();
    assert!(exited < Duration::from_secs(8), "exit took {exited:?}");
    let out = Writers { stop, writers, out }.finish().await;
    assert!(!out.acked.is_empty());
    for (status, _, note) in &out.failures {
        assert_eq!(*status, 503, "{note}");
        assert!(!note.contains("not a problem"), "{note}");
    }

    // Restarted on the same data: every acknowledged user is there, and
    // every request that got no answer changed nothing (its address is
    // still free).
    let server = Server::start(data.path(), None).await;
    let admin = run_cli(data.path(), &["token", "--sub", "ops", "--role", "admin"]);
    for (id, _) in &out.acked {
        let (status, _) = server
            .get_auth(&format!("/v1/users/{id}/events"), &admin)
            .await;
        assert_eq!(status, 200, "acknowledged user {id} was lost");
    }
    for failed in &out.transport_errors {
        let email = failed.split(':').next().expect("email");
        let (status, body) = server
            .post("/v1/users", None, json!({"email": email, "name": "Again"}))
            .await;
        assert_eq!(
            status, 201,
            "a request refused at shutdown was applied anyway: {email} {body}"
        );
    }
    eprintln!(
        "SIGTERM: exit in {exited:?}, {} acknowledged, {} refused",
        out.acked.len(),
        out.transport_errors.len() + out.failures.len()
    );
    server.stop().await;
}
