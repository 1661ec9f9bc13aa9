//! Black-box tests: the real `shopstream` binary, started as a user starts
//! it, spoken to over HTTP.

mod analytics_cache;
mod browser;
mod connections;
mod console;
mod crash;
mod edge;
mod forget;
mod fuzz;
mod graphql;
mod helpers;
mod kafka;
mod keys;
mod oidc;
mod outage;
mod row_cache;
mod saga;
mod store_copy;
mod tls;
mod traces;
mod versions;
mod webdriver;

use serde_json::json;

use helpers::{run_cli, DraftOrder, Server};

#[tokio::test]
async fn embedded_default_runs_a_whole_order_flow_and_keeps_its_data() {
    let data = tempfile::tempdir().expect("tempdir");
    let server = Server::start(data.path(), None).await;
    let DraftOrder {
        admin,
        customer,
        order_id,
        ..
    } = DraftOrder::create(&server, data.path(), "e2e@example.com", 2).await;
    let service = run_cli(
        data.path(),
        &["token", "--sub", "psp", "--role", "service", "--ttl", "10m"],
    );
    let (s, placed) = server
        .post(
            &format!("/v1/orders/{order_id}/place"),
            Some(&customer),
            json!(null),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(placed["version"], 3);
    let (s, payment) = server
        .post(
            "/v1/payments",
            Some(&customer),
            json!({"order_id": order_id}),
        )
        .await;
    assert_eq!(s, 201);
    let payment_id = payment["id"].as_str().expect("id").to_string();
    let (s, failed) = server
        .post(
            &format!("/v1/payments/{payment_id}/fail"),
            Some(&service),
            json!({"reason": "card declined"}),
        )
        .await;
    assert_eq!(s, 200, "{failed}");
    let (s, problem) = server
        .post(
            &format!("/v1/payments/{payment_id}/authorize"),
            Some(&service),
            json!({"amount_minor": 3000}),
        )
        .await;
    assert_eq!(
        (s, problem["rule"].as_str()),
        (409, Some("payment_not_initiated"))
    );

    // The read models follow; operators see them through the admin endpoint and the CLI.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (s, status) = server.get_auth("/v1/admin/projections", &admin).await;
        assert_eq!(s, 200, "{status}");
        let list = status["projections"]
            .as_array()
            .expect("projections")
            .clone();
        assert_eq!(list.len(), 3);
        if list
            .iter()
            .all(|p| p["state"] == "live" && p["lag_events"] == 0)
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "read models did not catch up: {status}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (s, _) = server.get_auth("/v1/admin/projections", &customer).await;
    assert_eq!(s, 403);
    let metrics = server.text("/metrics").await;
    for series in [
        "shopstream_http_requests_total{method=\"POST\",route=\"/v1/orders/{id}/place\",status=\"200\"} 1",
        "shopstream_commands_total{aggregate=\"Payment\",outcome=\"rejected\"} 1",
        "shopstream_projector_lag_events{projection=\"order_view\"} 0",
        "# TYPE shopstream_event_append_duration_seconds histogram",
        "shopstream_db_pool_connections{pool=\"event_store\",state=\"idle\"}",
    ] {
        assert!(
            metrics.contains(series),
            "/metrics lacks {series}:\n{metrics}"
        );
    }
    let status = run_cli(data.path(), &["projections", "status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&status).expect("status JSON");
    assert_eq!(status.as_array().map(Vec::len), Some(3));
    let rebuilt = run_cli(
        data.path(),
        &["projections", "rebuild", "--all", "--verify"],
    );
    assert_eq!(rebuilt.matches("is live").count(), 3, "{rebuilt}");
    assert!(!rebuilt.contains("DIFFERS"), "{rebuilt}");

    // A graceful stop, a restart on the same data directory: the store and the secret persist.
    server.stop().await;
    let server = Server::start(data.path(), None).await;
    let (s, problem) = server
        .post(
            "/v1/users",
            None,
            json!({"email": "E2E@example.com", "name": "Again"}),
        )
        .await;
    assert_eq!(
        (s, problem["type"].as_str()),
        (409, Some("urn:shopstream:problem:email_taken"))
    );
    let (s, _) = server
        .post(
            &format!("/v1/orders/{order_id}/cancel"),
            Some(&customer),
            json!({"reason": "payment failed"}),
        )
        .await;
    assert_eq!(s, 200, "the token minted before the restart still works");
    server.stop().await;
}

#[tokio::test]
async fn postgres_profile_via_database_url() {
    let db = eventlog::testing::TestDatabase::postgres().await;
    let data = tempfile::tempdir().expect("tempdir");
    let server = Server::start(data.path(), Some(&db.url)).await;
    let (s, body) = server
        .post(
            "/v1/users",
            None,
            json!({"email": "pg@example.com", "name": "Pg"}),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let (s, ready) = server.get("/readyz").await;
    assert_eq!((s, ready["store"].as_str()), (200, Some("postgres")));

    // The query API as its own process: a token written through `serve` is
    // waited for (woken by Postgres notifications) and then visible.
    let reads = Server::start_bin(
        env!("CARGO_BIN_EXE_query-api"),
        &["--production"],
        data.path(),
        Some(&db.url),
    )
    .await;
    let user_id = body["id"].as_str().expect("id").to_string();
    let token = run_cli(
        data.path(),
        &["token", "--sub", &user_id, "--role", "customer"],
    );
    let (s, order) = server
        .post(
            "/v1/orders",
            Some(&token),
            json!({"customer_id": user_id, "currency": "EUR"}),
        )
        .await;
    assert_eq!(s, 201);
    let (_, answer) = reads
        .graphql(
            Some(&token),
            order["position"].as_i64(),
            "{ me { orderCount } }",
            json!({}),
        )
        .await;
    assert_eq!(answer["data"]["me"]["orderCount"], 1, "{answer}");
    assert_eq!(answer["extensions"]["consistency"]["stale"], false);
    // Production: no introspection, no GraphiQL.
    let (_, schema) = reads
        .graphql(
            Some(&token),
            None,
            "{ __schema { queryType { name } } }",
            json!({}),
        )
        .await;
    assert!(
        schema["data"]["__schema"].is_null(),
        "introspection must be off in production: {schema}"
    );
    let (s, _) = reads.get("/graphql").await;
    assert_eq!(s, 404);
    reads.stop().await;
    server.stop().await;
    let events = eventlog::EventLog::new(db.db.clone())
        .stream("User", body["id"].as_str().expect("id"))
        .await
        .expect("stream");
    assert_eq!(events.len(), 1);
    db.drop_database().await;
}

#[test]
fn token_refuses_a_short_secret_and_help_documents_every_flag() {
    let data = tempfile::tempdir().expect("tempdir");
    let out = helpers::cli(
        data.path(),
        &[
            "token",
            "--sub",
            "x",
            "--role",
            "admin",
            "--jwt-secret",
            "short",
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 32"));
    let help = helpers::cli(data.path(), &["--help"]);
    let text = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--listen",
        "--data-dir",
        "--database-url",
        "--jwt-secret",
        "SHOPSTREAM_LISTEN",
        "SHOPSTREAM_DATA_DIR",
        "SHOPSTREAM_DATABASE_URL",
        "SHOPSTREAM_JWT_SECRET",
    ] {
        assert!(text.contains(flag), "--help does not mention {flag}");
    }
    // Each subcommand shows the flags it uses: the APIs the identity
    // provider's, `token` none of them.
    for (args, has) in [
        (&["serve", "--help"][..], true),
        (&["query", "--help"][..], true),
        (&["commands", "--help"][..], true),
        (&["token", "--help"][..], false),
        (&["project", "--help"][..], false),
    ] {
        let help = helpers::cli(data.path(), args);
        let text = String::from_utf8_lossy(&help.stdout);
        for flag in [
            "--oidc-issuer",
            "--jwks-url",
            "--jwt-audience",
            "--roles-claim",
        ] {
            assert_eq!(text.contains(flag), has, "{args:?} and {flag}");
        }
    }
    let migrate = helpers::cli(data.path(), &["migrate"]);
    assert!(
        migrate.status.success(),
        "{}",
        String::from_utf8_lossy(&migrate.stderr)
    );
    assert!(data.path().join("shopstream.db").exists());
}

/// `shopstream seed` is deterministic, spreads activity over the range, and
/// writes events every projection folds.
#[tokio::test]
async fn seed_is_deterministic_and_foldable() {
    use shopstream::seed::{seed, SeedOptions};
    let options = SeedOptions {
        customers: 20,
        orders: 60,
        seed: 7,
        days: 90,
        end: chrono::NaiveDate::from_ymd_opt(2026, 6, 30).expect("date"),
    };
    let mut stories = Vec::new();
    for _ in 0..2 {
        let t = eventlog::testing::TestDatabase::sqlite().await;
        let report = seed(&t.db, &t.keys(), &options).await.expect("seed");
        let log = eventlog::EventLog::new(t.db.clone());
        let events = log
            .read_from(eventlog::Cursor::START, 100_000)
            .await
            .expect("read");
        assert_eq!(events.len(), report.events);
        let days: std::collections::BTreeSet<_> =
            events.iter().map(|e| e.recorded_at.date_naive()).collect();
        assert!(
            days.len() > 20,
            "activity is spread over the range: {} days",
            days.len()
        );
        assert!(days.iter().all(|d| *d <= options.end));
        let db = readmodel::ReadDb::connect(&t.url, 2)
            .await
            .expect("read db")
            .with_keys(t.keys());
        for name in readmodel::NAMES {
            let mut progress = |_p: projectors::rebuild::Progress| {};
            let report = projectors::rebuild::rebuild(
                name,
                &log,
                &db,
                projectors::rebuild::Options::new(true, &mut progress),
            )
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(report.diff.iter().any(|d| d.rebuilt_rows > 0));
        }
        db.close().await;
        stories.push(
            events
                .into_iter()
                .map(|e| {
                    (
                        e.aggregate_id,
                        e.sequence,
                        e.event_type,
                        unsealed(e.payload),
                    )
                })
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(
        stories[0], stories[1],
        "the same seed writes the same events"
    );
}

#[tokio::test]
async fn healthcheck_probes_the_running_server() {
    let data = tempfile::tempdir().expect("tempdir");
    let server = Server::start(data.path(), None).await;
    let listen = server.base().trim_start_matches("http://").to_string();
    let probe = |listen: String, path: &'static str| async move {
        tokio::task::spawn_blocking(move || {
            helpers::bare_cli(&["healthcheck", "--listen", &listen, "--path", path])
        })
        .await
        .expect("join")
    };
    let up = probe(listen.clone(), "/livez").await;
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let missing = probe(listen.clone(), "/nowhere").await;
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("answered 404"));
    server.stop().await;
    let down = probe(listen, "/livez").await;
    assert!(!down.status.success(), "a stopped server passed the probe");
    assert!(String::from_utf8_lossy(&down.stderr).contains("cannot connect"));
}

#[tokio::test]
async fn operations_port_serves_metrics_and_probes_off_the_public_port() {
    let data = tempfile::tempdir().expect("tempdir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let ops = format!("127.0.0.1:{port}");
    let server = Server::start_bin(
        env!("CARGO_BIN_EXE_shopstream"),
        &["serve", "--operations-listen", &ops],
        data.path(),
        None,
    )
    .await;
    // The public port: the API and probes, no metrics.
    let (s, _) = server.get("/metrics").await;
    assert_eq!(s, 404);
    assert_eq!(server.get("/livez").await.0, 200);
    // The operations port: metrics with the prefix, the standard process
    // metrics and the build, and the probes.
    let client = reqwest::Client::new();
    let text = client
        .get(format!("http://{ops}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("body");
    for series in [
        "shopstream_build_info{version=",
        "process_resident_memory_bytes ",
        "shopstream_db_pool_connections{",
    ] {
        assert!(text.contains(series), "operations /metrics lacks {series}");
    }
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        assert!(
            line.starts_with("shopstream_") || line.starts_with("process_"),
            "unprefixed series: {line}"
        );
    }
    for probe in ["livez", "readyz"] {
        let r = client
            .get(format!("http://{ops}/{probe}"))
            .send()
            .await
            .expect("probe");
        assert_eq!(r.status(), 200, "{probe}");
    }
    // The container probe follows the operations port.
    let out = tokio::task::spawn_blocking(move || {
        helpers::bare_cli(&[
            "healthcheck",
            "--listen",
            "127.0.0.1:1",
            "--operations-listen",
            &ops,
        ])
    })
    .await
    .expect("join");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    server.stop().await;
}

/// `payload` with every sealed value replaced by `"sealed"`: two stores seal
/// with keys of their own, so only the ciphertexts differ.
fn unsealed(payload: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match payload {
        Value::Object(map) if map.contains_key("sealed") => Value::String("sealed".into()),
        Value::Object(map) => {
            Value::Object(map.into_iter().map(|(k, v)| (k, unsealed(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(unsealed).collect()),
        other => other,
    }
}
