//! Outgrowing the embedded default: a seeded SQLite store copied into
//! PostgreSQL with `shopstream store copy` (in two stages, the second
//! resuming the first), then served from PostgreSQL: every GraphQL answer
//! equals the embedded one, idempotency keys replay, and new commands
//! continue the streams where they were.

use std::time::Duration;

use eventlog::testing::TestDatabase;
use serde_json::{json, Value};

use crate::helpers::{cli, run_cli, Server};

/// The answers compared across the two stores.
const QUERY: &str = "{
  customers(first: 100, orderBy: EMAIL_ASC) { nodes { id email name status orderCount
    lifetimeSpend { amountMinor currency } } }
  orders(first: 100) { nodes { id customerId status itemCount total { amountMinor currency }
    payment { status } } }
  analytics {
    revenue(from: \"2000-01-01\", to: \"2100-01-01\", granularity: MONTH, currency: \"EUR\") {
      bucket amount { amountMinor } }
    ordersByStatus { status count }
    newCustomers(from: \"2000-01-01\", to: \"2100-01-01\")
  }
}";

async fn answers(server: &Server, admin: &str) -> Value {
    let (status, body) = server.graphql(Some(admin), None, QUERY, Value::Null).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("errors").is_none(), "{body}");
    body["data"].clone()
}

#[tokio::test]
async fn an_embedded_store_moves_to_postgres_and_carries_on() {
    let data = tempfile::tempdir().expect("tempdir");
    run_cli(
        data.path(),
        &[
            "seed",
            "--customers",
            "12",
            "--orders",
            "30",
            "--days",
            "30",
        ],
    );
    let embedded = Server::start(data.path(), None).await;
    let admin = run_cli(data.path(), &["token", "--sub", "ops", "--role", "admin"]);
    // A command with an idempotency key, whose answer must replay after the move.
    let create = || {
        embedded
            .client()
            .post(format!("{}/v1/products", embedded.base()))
            .bearer_auth(&admin)
            .header("Idempotency-Key", "move-1")
            .json(&json!({"sku": "MOVE-1", "name": "Moving box",
                          "unit_price": {"amount_minor": 500, "currency": "EUR"}}))
    };
    let first = create().send().await.expect("request");
    assert_eq!(first.status().as_u16(), 201);
    let first: Value = first.json().await.expect("body");
    // Wait until the embedded read models hold everything, then remember them.
    let (_, _) = embedded
        .graphql(
            Some(&admin),
            first["position"].as_i64(),
            "{ __typename }",
            Value::Null,
        )
        .await;
    // The token bounds its wait; on a loaded machine, wait for all twelve.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let before = loop {
        let now = answers(&embedded, &admin).await;
        if now["customers"]["nodes"]
            .as_array()
            .is_some_and(|c| c.len() == 12)
        {
            break now;
        }
        assert!(tokio::time::Instant::now() < deadline, "{now}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    embedded.stop().await;

    // The source itself, however spelled, is not a target.
    let itself = format!("sqlite://{}/./shopstream.db", data.path().display());
    let refused = cli(data.path(), &["store", "copy", "--to", &itself]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("the source store itself"));

    let pg = TestDatabase::postgres().await;
    let staged = run_cli(
        data.path(),
        &[
            "store",
            "copy",
            "--to",
            &pg.url,
            "--batch",
            "50",
            "--stop-after",
            "120",
        ],
    );
    assert!(staged.contains("stopped with 120 events"), "{staged}");
    let done = run_cli(
        data.path(),
        &["store", "copy", "--to", &pg.url, "--batch", "50"],
    );
    assert!(done.contains("resumed after 120 events"), "{done}");
    assert!(done.contains("copied and verified (checksum "), "{done}");
    assert!(done.contains("idempotency_keys: 1 rows copied"), "{done}");
    // Copying again finds everything there already, and verifies it.
    let again = run_cli(data.path(), &["store", "copy", "--to", &pg.url]);
    assert!(again.contains("copied and verified"), "{again}");

    // Another store's events are never mixed into a non-empty target.
    let other = tempfile::tempdir().expect("tempdir");
    run_cli(
        other.path(),
        &["seed", "--customers", "2", "--orders", "1", "--seed", "7"],
    );
    let refused = cli(other.path(), &["store", "copy", "--to", &pg.url]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("not a prefix of the source"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    // Served from PostgreSQL, the read models are rebuilt from the copied log.
    let moved = Server::start(data.path(), Some(&pg.url)).await;
    let mut after = Value::Null;
    for _ in 0..100 {
        after = answers(&moved, &admin).await;
        if after == before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        after, before,
        "the moved store answers as the embedded one did"
    );
    // The idempotency key replays its first answer.
    let replay = moved
        .client()
        .post(format!("{}/v1/products", moved.base()))
        .bearer_auth(&admin)
        .header("Idempotency-Key", "move-1")
        .json(&json!({"sku": "MOVE-1", "name": "Moving box",
                      "unit_price": {"amount_minor": 500, "currency": "EUR"}}))
        .send()
        .await
        .expect("request");
    assert_eq!(replay.status().as_u16(), 201);
    assert!(replay.headers().contains_key("idempotent-replayed"));
    assert_eq!(
        replay.json::<Value>().await.expect("body")["id"],
        first["id"]
    );
    // New commands continue the streams: the product's next version.
    let resp = moved
        .client()
        .patch(format!("{}/v1/products/MOVE-1", moved.base()))
        .bearer_auth(&admin)
        .header("If-Match", format!("\"{}\"", first["version"]))
        .json(&json!({"name": "Moving box XL"}))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 200);
    let next: Value = resp.json().await.expect("body");
    assert_eq!(
        next["version"].as_u64(),
        first["version"].as_u64().map(|v| v + 1)
    );
    moved.stop().await;
    pg.drop_database().await;
}

#[tokio::test]
async fn a_killed_copy_resumes_where_it_stopped() {
    let data = tempfile::tempdir().expect("tempdir");
    run_cli(
        data.path(),
        &["seed", "--customers", "100", "--orders", "400"],
    );
    let pg = TestDatabase::postgres().await;
    // One event per transaction: the copy is surely mid-way when killed.
    let mut child = std::process::Command::new(crate::helpers::BIN)
        .args([
            "store",
            "copy",
            "--to",
            &pg.url,
            "--batch",
            "1",
            "--data-dir",
        ])
        .arg(data.path())
        .env_remove("SHOPSTREAM_DATABASE_URL")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    // Kill it once some batches are in.
    let target = sqlx::PgPool::connect(&pg.url).await.expect("target");
    for _ in 0..600 {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events")
            .fetch_one(&target)
            .await
            .unwrap_or(0);
        if n >= 50 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    target.close().await;
    child.kill().expect("kill");
    child.wait().expect("wait");
    let done = run_cli(data.path(), &["store", "copy", "--to", &pg.url]);
    assert!(
        done.contains("resumed after "),
        "killed before its first batch? {done}"
    );
    assert!(done.contains("copied and verified"), "{done}");
    pg.drop_database().await;
}

#[tokio::test]
async fn an_archive_round_trips_and_a_damaged_one_is_refused() {
    let data = tempfile::tempdir().expect("tempdir");
    run_cli(
        data.path(),
        &["seed", "--customers", "10", "--orders", "20"],
    );
    let gz = data.path().join("events.ndjson.gz");
    let out = cli(
        data.path(),
        &["events", "export", "--to", gz.to_str().expect("path")],
    );
    assert!(out.status.success());
    let summary = String::from_utf8_lossy(&out.stderr);
    let exported = summary
        .lines()
        .find(|l| l.contains("events exported"))
        .expect("a summary")
        .to_string();

    let pg = TestDatabase::postgres().await;
    let import = |file: &std::path::Path| {
        cli(
            data.path(),
            &[
                "events",
                "import",
                "--from",
                file.to_str().expect("path"),
                "--database-url",
                &pg.url,
            ],
        )
    };
    let done = import(&gz);
    let stdout = String::from_utf8_lossy(&done.stdout);
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let checksum = |s: &str| {
        s.split("checksum ")
            .nth(1)
            .map(|c| c.trim_end_matches(')').to_string())
    };
    assert_eq!(
        checksum(stdout.trim()),
        checksum(&exported),
        "{stdout} / {exported}"
    );
    // Importing again finds every event there already.
    let again = import(&gz);
    assert!(String::from_utf8_lossy(&again.stdout).contains("resumed after"));
    // The data keys travel with the archive: the imported store reads
    // every customer's name (with the same key file).
    let served = Server::start(data.path(), Some(&pg.url)).await;
    let admin = run_cli(data.path(), &["token", "--sub", "ops", "--role", "admin"]);
    let names = "{ customers(first: 50) { nodes { name } } }";
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (_, body) = served.graphql(Some(&admin), None, names, Value::Null).await;
        let nodes = body["data"]["customers"]["nodes"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if nodes.len() == 10 {
            assert!(
                nodes.iter().all(|n| n["name"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("Customer "))),
                "{body}"
            );
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{body}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    served.stop().await;

    // A plain archive, truncated or altered, is refused by a fresh store.
    let plain = data.path().join("events.ndjson");
    let out = cli(
        data.path(),
        &["events", "export", "--to", plain.to_str().expect("path")],
    );
    assert!(out.status.success());
    let text = std::fs::read_to_string(&plain).expect("archive");
    // Personal data is sealed in the archive; the wrapped keys ride along.
    assert!(!text.contains("Customer 1") && text.contains("\"data_key\""));
    let lines: Vec<&str> = text.lines().collect();
    let truncated = data.path().join("truncated.ndjson");
    std::fs::write(&truncated, lines[..lines.len() - 1].join("\n")).expect("write");
    let altered = data.path().join("altered.ndjson");
    std::fs::write(&altered, text.replacen("Product 1", "Product X", 1)).expect("write");
    for (file, why) in [(&truncated, "truncated"), (&altered, "checksum")] {
        let fresh = TestDatabase::postgres().await;
        let out = cli(
            data.path(),
            &[
                "events",
                "import",
                "--from",
                file.to_str().expect("path"),
                "--database-url",
                &fresh.url,
            ],
        );
        assert!(!out.status.success(), "{why}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(why),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        fresh.drop_database().await;
    }
    pg.drop_database().await;
}
