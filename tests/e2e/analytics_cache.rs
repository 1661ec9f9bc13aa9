//! The analytics answers the query service keeps in memory are never older
//! than a request is owed: after a command, a query carrying its position
//! as the consistency token sees it — through the process that ran the
//! command (`serve`) and through a separate `query-api` process on the
//! same PostgreSQL, whose cache only the commit signal (`LISTEN`) and the
//! promised position can invalidate — and without a token an older kept
//! figure names its older position, and the new one shows within a second.

use serde_json::{json, Value};

use crate::helpers::{run_cli, Server};

const FUNNEL: &str = "query($d: NaiveDate!) { analytics { funnel(from: $d, to: $d) { created } } }";

async fn created(server: &Server, token: &str, position: Option<i64>) -> (i64, Value) {
    let today = chrono::Utc::now().date_naive().to_string();
    let (_, body) = server
        .graphql(Some(token), position, FUNNEL, json!({"d": today}))
        .await;
    let n = body["data"]["analytics"]["funnel"]["created"]
        .as_i64()
        .unwrap_or(-1);
    (n, body)
}

#[tokio::test]
async fn cached_analytics_never_answer_older_than_the_token() {
    let db = eventlog::testing::TestDatabase::postgres().await;
    let data = tempfile::tempdir().expect("tempdir");
    let server = Server::start(data.path(), Some(&db.url)).await;
    let reads = Server::start_bin(
        env!("CARGO_BIN_EXE_query-api"),
        &[],
        data.path(),
        Some(&db.url),
    )
    .await;
    let admin = run_cli(data.path(), &["token", "--sub", "ops", "--role", "admin"]);
    let (s, user) = server
        .post(
            "/v1/users",
            None,
            json!({"email": "cache@example.com", "name": "Cache"}),
        )
        .await;
    assert_eq!(s, 201, "{user}");
    let id = user["id"].as_str().expect("id").to_string();
    let customer = run_cli(data.path(), &["token", "--sub", &id, "--role", "customer"]);
    let mut expected = 0;
    for round in 0..6 {
        // Both processes have answered (and kept) the current figure.
        for api in [&server, &reads] {
            for _ in 0..3 {
                let (n, body) = created(api, &admin, None).await;
                assert!(n <= expected, "round {round}: {body}");
            }
        }
        let (s, order) = server
            .post(
                "/v1/orders",
                Some(&customer),
                json!({"customer_id": id, "currency": "EUR"}),
            )
            .await;
        assert_eq!(s, 201, "{order}");
        expected += 1;
        let position = order["position"].as_i64();
        for api in [&server, &reads] {
            let (n, body) = created(api, &admin, position).await;
            assert_eq!(
                n, expected,
                "round {round}: a kept answer served past the token: {body}"
            );
            assert_eq!(body["extensions"]["consistency"]["stale"], false, "{body}");
        }
    }
    // Without a token the figure moves once the projections commit.
    let (s, order) = server
        .post(
            "/v1/orders",
            Some(&customer),
            json!({"customer_id": id, "currency": "EUR"}),
        )
        .await;
    assert_eq!(s, 201, "{order}");
    expected += 1;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let written = order["position"].as_i64().expect("position");
    loop {
        let (n, body) = created(&reads, &admin, None).await;
        if n == expected {
            break;
        }
        // A kept answer from before the order says it is from before it.
        let claimed = body["extensions"]["consistency"]["position"].as_i64();
        assert!(
            claimed < Some(written),
            "an old figure claims a later position: {body}"
        );
        assert!(std::time::Instant::now() < deadline, "never moved: {body}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    reads.stop().await;
    server.stop().await;
    db.drop_database().await;
}
