//! The distributed profile with real processes, real Postgres and a real
//! Kafka-protocol broker (tansu, memory storage, on loopback): the relay
//! (store → Kafka) and projector processes in a consumer group.
//!
//! tansu must be installed (`cargo install tansu --locked --features
//! dynostore`; `scripts/test` and `.ci/run` do it when it is missing), or
//! named by `TANSU_BIN`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use eventlog::testing::TestDatabase;
use eventlog::EventLog;
use projectors::rebuild::{self, Options};
use projectors::testing::Shop;
use rand::Rng;
use readmodel::ReadDb;
use serde_json::json;

use crate::helpers::Server;

const BIN: &str = env!("CARGO_BIN_EXE_shopstream");
const PROJECTORS: &str = env!("CARGO_BIN_EXE_projectors");
const COMMAND_API: &str = env!("CARGO_BIN_EXE_command-api");

/// The JWT secret every process of a test shares.
const SECRET: &str = "kafka-test-secret-kafka-test-secret-0123";

/// One broker per test and several processes each: run these one at a time.
pub(crate) static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn tansu_bin() -> PathBuf {
    if let Ok(bin) = std::env::var("TANSU_BIN") {
        return PathBuf::from(bin);
    }
    let home = std::env::var("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|_| std::env::var("HOME").map(|h| Path::new(&h).join(".cargo")))
        .unwrap_or_default();
    let installed = home.join("bin").join("tansu");
    if installed.exists() {
        return installed;
    }
    PathBuf::from("tansu")
}

/// A tansu broker on a loopback port.
pub(crate) struct Broker {
    port: u16,
    /// The port clients are told to use (a TLS proxy in front), when not `port`.
    advertised: Option<u16>,
    child: Option<Child>,
}

impl Broker {
    pub(crate) fn new() -> Self {
        Self {
            port: free_port(),
            advertised: None,
            child: None,
        }
    }

    pub(crate) fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub(crate) async fn start(&mut self) {
        let url = format!("tcp://{}", self.address());
        let advertised = format!("tcp://127.0.0.1:{}", self.advertised.unwrap_or(self.port));
        let child = Command::new(tansu_bin())
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &advertised])
            .args(["--storage-engine", "memory://tansu/"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start tansu ({e}); install it with `cargo install tansu --locked --features dynostore` or set TANSU_BIN"
                )
            });
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect(self.address())
            .await
            .is_err()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "tansu did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn signal(&self, signal: &str) {
        let pid = self
            .child
            .as_ref()
            .expect("broker running")
            .id()
            .to_string();
        let ok = Command::new("kill")
            .args([signal, &pid])
            .status()
            .expect("kill");
        assert!(ok.success());
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // A frozen broker must be thawed to die cleanly.
            let _ = Command::new("kill")
                .args(["-CONT", &c.id().to_string()])
                .status();
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Every record of `topic` (key, headers and value as bytes), read from the
/// beginning of each partition until the topic stays quiet for 3 s.
pub(crate) async fn all_records(brokers: &str, topic: &str) -> Vec<Vec<u8>> {
    use rdkafka::consumer::{Consumer, StreamConsumer};
    use rdkafka::message::{Headers, Message};
    let consumer: StreamConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set(
            "group.id",
            format!("scan-{}", uuid::Uuid::new_v4().simple()),
        )
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    // Every partition from its start, without a group's rebalance.
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let mut partitions = rdkafka::TopicPartitionList::new();
    for p in metadata.topics().iter().flat_map(|t| t.partitions()) {
        partitions
            .add_partition_offset(topic, p.id(), rdkafka::Offset::Beginning)
            .expect("partition");
    }
    assert!(partitions.count() > 0, "topic {topic} has no partitions");
    consumer.assign(&partitions).expect("assign");
    let mut records = Vec::new();
    let mut quiet = Duration::from_secs(20);
    while let Ok(Ok(m)) = tokio::time::timeout(quiet, consumer.recv()).await {
        let mut bytes = m.key().unwrap_or_default().to_vec();
        if let Some(h) = m.headers() {
            for header in h.iter() {
                bytes.extend_from_slice(header.key.as_bytes());
                bytes.extend_from_slice(header.value.unwrap_or_default());
            }
        }
        bytes.extend_from_slice(m.payload().unwrap_or_default());
        records.push(bytes);
        quiet = Duration::from_secs(3);
    }
    records
}

/// The flags every Kafka-profile process of one test shares.
struct Profile {
    url: String,
    brokers: String,
    topic: String,
    data: PathBuf,
    _cleanup: Option<tempfile::TempDir>,
}

impl Profile {
    fn new(url: &str, broker: &Broker) -> Self {
        let tag = uuid::Uuid::new_v4().simple().to_string();
        let dir = tempfile::tempdir().expect("tempdir");
        // The processes and the tests' in-process writers share one master key.
        eventlog::testing::install_keys(dir.path());
        Self {
            url: url.to_string(),
            brokers: broker.address(),
            topic: format!("shopstream.test.{tag}"),
            data: dir.path().to_path_buf(),
            // SHOPSTREAM_TEST_KEEP_LOGS=1 keeps the processes' logs.
            _cleanup: if std::env::var_os("SHOPSTREAM_TEST_KEEP_LOGS").is_some() {
                eprintln!("process logs in {}", dir.keep().display());
                None
            } else {
                Some(dir)
            },
        }
    }

    fn args(&self) -> Vec<String> {
        [
            "--database-url",
            &self.url,
            "--data-dir",
            &self.data.display().to_string(),
            "--kafka-brokers",
            &self.brokers,
            "--kafka-topic",
            &self.topic,
            "--kafka-partitions",
            "4",
            "--kafka-session-timeout-ms",
            "6000",
        ]
        .iter()
        .map(|s| (*s).to_string())
        .collect()
    }

    fn spawn(&self, bin: &str, role: &[&str], listen: Option<u16>) -> Proc {
        self.spawn_with(bin, role, &[], listen)
    }

    /// [`Profile::spawn`] with `extra` flags after the profile's own.
    fn spawn_with(&self, bin: &str, role: &[&str], extra: &[&str], listen: Option<u16>) -> Proc {
        let mut cmd = Command::new(bin);
        cmd.envs(crate::helpers::NO_RATE_LIMITS);
        cmd.args(role).args(self.args()).args(extra);
        if let Some(port) = listen {
            cmd.arg("--listen").arg(format!("127.0.0.1:{port}"));
        }
        // Each process logs to a file beside the test's data (kept for a
        // failing run: SHOPSTREAM_TEST_KEEP_LOGS=1).
        let log = tempfile::Builder::new()
            .prefix("process-")
            .suffix(".log")
            .tempfile_in(&self.data)
            .and_then(|f| f.keep().map_err(|e| e.error))
            .map(|(f, _)| f)
            .map_or_else(|_| Stdio::null(), Stdio::from);
        cmd.env(
            "RUST_LOG",
            std::env::var("SHOPSTREAM_TEST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .env_remove("SHOPSTREAM_DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map(Proc)
        .expect("spawn")
    }

    /// The `command-api` binary on a free port, against this profile's store.
    async fn command_api(&self) -> Server {
        Server::start_bin(
            COMMAND_API,
            &["--database-url", &self.url, "--jwt-secret", SECRET],
            &self.data,
            None,
        )
        .await
    }

    fn relay(&self, port: u16) -> Proc {
        self.spawn(BIN, &["relay"], Some(port))
    }

    fn projectors(&self) -> Proc {
        self.spawn(PROJECTORS, &[], None)
    }

    fn projectors_with_metrics(&self, port: u16) -> Proc {
        let address = format!("127.0.0.1:{port}");
        self.spawn(PROJECTORS, &["--operations-listen", &address], None)
    }
}

/// A child process that dies with its handle (a failing test leaves none
/// behind).
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn kill(child: &mut Proc) {
    let _ = child.0.kill();
    let _ = child.0.wait();
}

fn alive(child: &mut Proc) -> bool {
    matches!(child.0.try_wait(), Ok(None))
}

/// Reads customer `id` through GraphQL with the token `position`: relay →
/// Kafka → projector → read model. The first event also waits for the
/// consumer group to form, which under a loaded test run can take longer
/// than one token wait (2 s): ask again while the answer says it is stale.
async fn customer_through_kafka(
    server: &Server,
    admin: &str,
    position: i64,
    id: &str,
) -> serde_json::Value {
    let mut body = serde_json::Value::Null;
    for _ in 0..15 {
        let (s, answer) = server
            .graphql(
                Some(admin),
                Some(position),
                "query($id: ID!) { customer(id: $id) { email name } }",
                json!({"id": id}),
            )
            .await;
        assert_eq!(s, 200, "{answer}");
        body = answer;
        if body["extensions"]["consistency"]["stale"] == false {
            break;
        }
    }
    body
}

/// Waits until every projection consumes Kafka, is live, and has applied
/// everything in the store.
async fn caught_up(log: &EventLog, db: &ReadDb, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let head = log.head().await.expect("head");
        let status = readmodel::status::all(log, db).await.expect("status");
        assert!(
            status.iter().all(|s| s.state == "live"),
            "a projection stopped: {status:#?}"
        );
        if status
            .iter()
            .all(|s| s.source == "kafka" && s.position == head)
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "projections did not catch up to {head}: {status:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every read model equals a from-scratch rebuild from the store (which
/// then takes over and continues from Kafka).
async fn equals_rebuild(log: &EventLog, db: &ReadDb) {
    for name in readmodel::NAMES {
        let mut progress = |_p: rebuild::Progress| {};
        let report = rebuild::rebuild(name, log, db, Options::new(true, &mut progress))
            .await
            .unwrap_or_else(|e| panic!("{name} fed by Kafka differs from a rebuild: {e:?}"));
        assert!(report.diff.iter().all(|d| d.same()), "{report:?}");
        assert!(
            report.diff.iter().any(|d| d.live_rows > 0),
            "{name} is empty"
        );
    }
}

async fn readyz(port: u16) -> (u16, String, String) {
    match reqwest::get(format!("http://127.0.0.1:{port}/readyz")).await {
        Ok(r) => {
            let status = r.status().as_u16();
            let ct = r
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            (status, ct, r.text().await.unwrap_or_default())
        }
        Err(e) => (0, String::new(), e.to_string()),
    }
}

/// Brings a live generation of every projection to the current code version
/// before the Kafka consumers start (the customer view's version moved).
async fn open_read_db(t: &TestDatabase) -> ReadDb {
    t.db.migrate().await.expect("migrate");
    let db = ReadDb::connect(&t.url, 4)
        .await
        .expect("read db")
        .with_keys(t.keys());
    projectors::ensure_all(&db).await.expect("read models");
    db
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_flow_through_kafka_to_two_projector_processes() {
    let _serial = SERIAL.lock().await;
    let t = TestDatabase::postgres().await;
    let db = open_read_db(&t).await;
    let log = EventLog::new(t.db.clone());
    let mut broker = Broker::new();
    let profile = Profile::new(&t.url, &broker);

    // Relay and projectors start before the broker: they wait, never crash.
    let relay_port = free_port();
    let mut relay = profile.relay(relay_port);
    let mut first = profile.projectors();
    let metrics_port = free_port();
    let mut second = profile.projectors_with_metrics(metrics_port);
    let api = profile.command_api().await;
    let mut shop = Shop::new(&t.db, 7);
    shop.activity(3, 6).await;
    let (status, _) = api
        .post(
            "/v1/users",
            None,
            json!({"email": "kafka@example.com", "name": "Kafka"}),
        )
        .await;
    assert_eq!(status, 201, "commands succeed without a broker");
    // Give them a few seconds without a broker, then the relay must say
    // why it is not ready (polled: a slow start is not a failure).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let (code, content_type, body) = loop {
        let answer = readyz(relay_port).await;
        if answer.0 == 503 || tokio::time::Instant::now() > deadline {
            break answer;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(code, 503, "{body}");
    assert!(
        content_type.starts_with("application/problem+json"),
        "{content_type}"
    );
    assert!(body.contains("kafka"), "{body}");
    assert!(alive(&mut relay) && alive(&mut first) && alive(&mut second));

    broker.start().await;
    caught_up(&log, &db, Duration::from_secs(90)).await;
    let (code, _, body) = readyz(relay_port).await;
    assert_eq!(code, 200, "{body}");
    let relay_metrics = reqwest::get(format!("http://127.0.0.1:{relay_port}/metrics"))
        .await
        .expect("relay metrics")
        .text()
        .await
        .unwrap_or_default();
    assert!(
        relay_metrics.contains("relay_events_published_total"),
        "{relay_metrics}"
    );
    let projector_metrics = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .await
        .expect("projector metrics")
        .text()
        .await
        .unwrap_or_default();
    assert!(
        projector_metrics.contains("projector_lag_events"),
        "{projector_metrics}"
    );

    // More traffic while both consumers share the partitions; then one
    // dies and the other takes its partitions over.
    shop.activity(4, 10).await;
    caught_up(&log, &db, Duration::from_secs(60)).await;
    // A process is one member for all its projections: each takes the
    // same share, so each process's one consumer reads half the topic.
    let (members, leases): (i64, i64) =
        sqlx::query_as("SELECT count(DISTINCT member_id), count(*) FROM projection_kafka_members")
            .fetch_one(db.pool())
            .await
            .expect("members");
    assert_eq!(
        (members, leases),
        (2, 6),
        "two processes, three projections each"
    );
    kill(&mut first);
    shop.activity(3, 10).await;
    caught_up(&log, &db, Duration::from_secs(60)).await;

    // Equal to a rebuild from the store; the rebuilt generations take over
    // and continue from Kafka without a gap or a double apply.
    equals_rebuild(&log, &db).await;
    shop.activity(2, 8).await;
    caught_up(&log, &db, Duration::from_secs(60)).await;
    equals_rebuild(&log, &db).await;

    // Lag is reported against the relay's head.
    let status = readmodel::status::all(&log, &db).await.expect("status");
    assert!(status
        .iter()
        .all(|s| s.lag_events == 0 && s.source == "kafka"));

    kill(&mut second);
    kill(&mut relay);
    api.stop().await;
    db.close().await;
    t.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_relays_and_projectors_lose_and_duplicate_nothing() {
    let _serial = SERIAL.lock().await;
    let t = TestDatabase::postgres().await;
    let db = open_read_db(&t).await;
    let log = EventLog::new(t.db.clone());
    let mut broker = Broker::new();
    broker.start().await;
    let profile = Profile::new(&t.url, &broker);

    // Two relays (one active, one standby) and two projectors.
    let mut relays = [profile.relay(free_port()), profile.relay(free_port())];
    let mut workers = [profile.projectors(), profile.projectors()];
    let writer_db = t.db.clone();
    let writer = tokio::spawn(async move {
        let mut shop = Shop::new(&writer_db, 11);
        for _ in 0..40 {
            shop.activity(1, 2).await;
        }
    });
    let mut rng = rand::thread_rng();
    for round in 0..10 {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(100..900))).await;
        let i = rng.gen_range(0..2);
        kill(&mut relays[i]);
        relays[i] = profile.relay(free_port());
        tokio::time::sleep(Duration::from_millis(rng.gen_range(100..900))).await;
        let j = (round + rng.gen_range(0..2)) % 2;
        kill(&mut workers[j]);
        workers[j] = profile.projectors();
    }
    writer.await.expect("writer");
    caught_up(&log, &db, Duration::from_secs(120)).await;
    equals_rebuild(&log, &db).await;

    // The standby takes over from a dead active relay within seconds.
    for r in &mut relays {
        kill(r);
    }
    let ports = [free_port(), free_port()];
    let mut pair = [profile.relay(ports[0]), profile.relay(ports[1])];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let active = loop {
        let mut roles = Vec::new();
        for port in ports {
            let (_, _, body) = readyz(port).await;
            let role = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["relay"]["role"].as_str().map(str::to_string));
            roles.push(role);
        }
        let active: Vec<usize> = (0..2)
            .filter(|i| roles[*i].as_deref() == Some("active"))
            .collect();
        if active.len() == 1 && roles.iter().any(|r| r.as_deref() == Some("standby")) {
            break active[0];
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "expected one active and one standby relay: {roles:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    kill(&mut pair[active]);
    let killed = tokio::time::Instant::now();
    let mut shop = Shop::new(&t.db, 12);
    shop.activity(2, 4).await;
    caught_up(&log, &db, Duration::from_secs(15)).await;
    assert!(
        killed.elapsed() < Duration::from_secs(15),
        "the standby took {:?} to take over",
        killed.elapsed()
    );

    for r in &mut pair {
        kill(r);
    }
    for w in &mut workers {
        kill(w);
    }
    db.close().await;
    t.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_broker_delays_read_models_but_never_commands() {
    let _serial = SERIAL.lock().await;
    let t = TestDatabase::postgres().await;
    let db = open_read_db(&t).await;
    let log = EventLog::new(t.db.clone());
    let mut broker = Broker::new();
    broker.start().await;
    let profile = Profile::new(&t.url, &broker);
    let relay_port = free_port();
    let mut relay = profile.relay(relay_port);
    let mut worker = profile.projectors();
    let api = profile.command_api().await;
    let mut shop = Shop::new(&t.db, 21);
    shop.activity(2, 4).await;
    caught_up(&log, &db, Duration::from_secs(90)).await;

    broker.signal("-STOP");
    let frozen = tokio::time::Instant::now();
    let mut n = 0;
    while frozen.elapsed() < Duration::from_secs(30) {
        n += 1;
        let (status, body) = api
            .post(
                "/v1/users",
                None,
                json!({"email": format!("frozen{n}@example.com"), "name": "Frozen"}),
            )
            .await;
        assert_eq!(
            status, 201,
            "a command failed while the broker was frozen: {body}"
        );
        shop.activity(1, 1).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (code, _, body) = readyz(relay_port).await;
    assert_eq!(code, 503, "the relay reports the broker: {body}");
    broker.signal("-CONT");
    caught_up(&log, &db, Duration::from_secs(120)).await;
    equals_rebuild(&log, &db).await;
    assert!(alive(&mut relay) && alive(&mut worker));

    kill(&mut relay);
    kill(&mut worker);
    api.stop().await;
    db.close().await;
    t.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_kafka_runs_every_role_in_one_process() {
    let _serial = SERIAL.lock().await;
    let t = TestDatabase::postgres().await;
    let mut broker = Broker::new();
    broker.start().await;
    let profile = Profile::new(&t.url, &broker);
    let collector = crate::traces::Collector::start().await;
    let server = Server::start_with_env(
        BIN,
        &[
            "serve",
            "--kafka-brokers",
            &profile.brokers,
            "--kafka-topic",
            &profile.topic,
            "--kafka-partitions",
            "3",
        ],
        &profile.data,
        Some(&t.url),
        &collector.env(),
    )
    .await;
    let admin =
        crate::helpers::run_cli(&profile.data, &["token", "--sub", "ops", "--role", "admin"]);
    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let (s, user) = crate::traces::post_traced(
        &server,
        "/v1/users",
        None,
        Some(&format!("00-{trace_id}-b7ad6b7169203331-01")),
        json!({"email": "one@example.com", "name": "One Process"}),
    )
    .await;
    assert_eq!(s, 201, "{user}");
    let id = user["id"].as_str().expect("id").to_string();
    let position = user["position"].as_i64().expect("position");

    // Read your writes through relay → Kafka → projector → GraphQL.
    let body = customer_through_kafka(&server, &admin, position, &id).await;
    assert_eq!(body["extensions"]["consistency"]["stale"], false, "{body}");
    assert_eq!(
        body["data"]["customer"]["email"], "one@example.com",
        "{body}"
    );

    // The trace went through the relay and Kafka to the projectors.
    let publish = format!("publish {}", profile.topic);
    collector
        .wait_for(
            trace_id,
            &[
                ("POST /v1/users", 1),
                (publish.as_str(), 1),
                ("project customer_view", 1),
            ],
        )
        .await;

    let log = EventLog::new(t.db.clone());
    let db = ReadDb::connect(&t.url, 2)
        .await
        .expect("read db")
        .with_keys(t.keys());
    caught_up(&log, &db, Duration::from_secs(30)).await;

    // The console's relay card: the in-process relay, active, caught up.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let relay = loop {
        let (s, relay) = server.get_auth("/v1/admin/relay", &admin).await;
        assert_eq!(s, 200, "{relay}");
        if relay["lag_events"] == 0 || std::time::Instant::now() > deadline {
            break relay;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(relay["relay"]["role"], "active", "{relay}");
    assert_eq!(relay["relay"]["kafka_reachable"], true, "{relay}");
    assert_eq!(relay["relay"]["checkpoint"], relay["head"], "{relay}");
    assert_eq!(relay["lag_events"], 0, "{relay}");
    // At rest the stored checkpoint is the acknowledged head too (while
    // records are in flight it is stored at most every 50 ms).
    let stored = relay::checkpoint(&t.db, "default")
        .await
        .expect("relay checkpoint")
        .expect("stored");
    assert_eq!(
        serde_json::json!(stored.cursor.position),
        relay["head"],
        "{relay}"
    );
    let (s, _) = server.get("/v1/admin/relay").await;
    assert_eq!(s, 401, "admin only");
    server.stop().await;
    db.close().await;
    t.drop_database().await;
}

/// Kafka over TLS: tansu 0.6 cannot open a TLS listener itself (its
/// `--cert` and `--key` flags sit in one exclusive clap group, so both
/// cannot be given), so the broker is fronted by a TLS-terminating proxy —
/// as a load balancer in front of a cluster would — and advertises the
/// proxy's address. The clients (relay, producer; projectors, consumers)
/// speak TLS to the proxy; the certificates come from a CA made in the test.
mod tls {
    use std::time::Duration;

    use serde_json::json;

    use super::{free_port, Broker, Profile, BIN, SERIAL};
    use crate::helpers::Server;
    use crate::tls::{certificates, tls_proxy};
    use eventlog::testing::TestDatabase;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn relay_and_projectors_work_over_tls_and_a_wrong_ca_is_named() {
        let _serial = SERIAL.lock().await;
        let t = TestDatabase::postgres().await;
        let certs = tempfile::tempdir().expect("tempdir");
        let (ca, cert, key) = certificates(certs.path(), "broker");
        let (other_ca, _, _) = certificates(certs.path(), "stranger");
        let proxy_port = free_port();
        let mut broker = Broker::new();
        broker.advertised = Some(proxy_port);
        broker.start().await;
        let proxy = tls_proxy(proxy_port, &cert, &key, broker.address()).await;
        let mut profile = Profile::new(&t.url, &broker);
        profile.brokers = format!("127.0.0.1:{proxy_port}");
        let ca_arg = ca.display().to_string();
        let server = Server::start_bin(
            BIN,
            &[
                "serve",
                "--kafka-brokers",
                &profile.brokers,
                "--kafka-topic",
                &profile.topic,
                "--kafka-partitions",
                "2",
                "--kafka-security-protocol",
                "ssl",
                "--kafka-ca",
                &ca_arg,
            ],
            &profile.data,
            Some(&t.url),
        )
        .await;
        let admin =
            crate::helpers::run_cli(&profile.data, &["token", "--sub", "ops", "--role", "admin"]);
        let (s, user) = server
            .post(
                "/v1/users",
                None,
                json!({"email": "tls@example.com", "name": "Over TLS"}),
            )
            .await;
        assert_eq!(s, 201, "{user}");
        let id = user["id"].as_str().expect("id").to_string();
        let position = user["position"].as_i64();
        // Relay → Kafka over TLS → Kafka-fed projectors over TLS → GraphQL.
        let position = position.expect("position");
        let answer = super::customer_through_kafka(&server, &admin, position, &id).await;
        assert_eq!(
            answer["data"]["customer"]["email"], "tls@example.com",
            "{answer}"
        );

        // The in-process relay holds the relay lock; stop it, so the next
        // relay is the active one.
        server.stop().await;

        // A relay that trusts another CA: refused, and it says why.
        let relay_port = free_port();
        let other = other_ca.display().to_string();
        let _relay = profile.spawn_with(
            BIN,
            &["relay"],
            &["--kafka-security-protocol", "ssl", "--kafka-ca", &other],
            Some(relay_port),
        );
        let client = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let mut last = serde_json::Value::Null;
        let detail = loop {
            let r = client
                .get(format!("http://127.0.0.1:{relay_port}/readyz"))
                .send()
                .await;
            if let Ok(r) = r {
                let status = r.status().as_u16();
                let body: serde_json::Value = r.json().await.unwrap_or_default();
                let detail = body["detail"].as_str().unwrap_or_default().to_string();
                if status == 503 && detail.to_ascii_lowercase().contains("certificate") {
                    break detail;
                }
                last = body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the relay never named the certificate failure: {last}"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        };
        assert!(detail.contains("kafka"), "{detail}");
        // Commands keep succeeding meanwhile (the command API needs no Kafka).
        let commands = profile.command_api().await;
        let (s, body) = commands
            .post(
                "/v1/users",
                None,
                json!({"email": "still@example.com", "name": "Still"}),
            )
            .await;
        assert_eq!(s, 201, "{body}");
        // And the relay's log names it too.
        let logged = std::fs::read_dir(&profile.data)
            .expect("logs")
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with("process-"))
            .any(|e| {
                std::fs::read_to_string(e.path())
                    .is_ok_and(|l| l.contains("certificate verify failed"))
            });
        assert!(logged, "no relay log line names the certificate failure");
        commands.stop().await;
        proxy.abort();
        t.drop_database().await;
    }
}
