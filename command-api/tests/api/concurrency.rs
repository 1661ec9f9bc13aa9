//! Racing commands: optimistic concurrency, never a lost update.

use std::sync::Arc;

use futures::future::join_all;
use serde_json::json;

use crate::both_backends;
use crate::helpers::TestApp;

async fn fifty_concurrent_commands_on_one_order(app: &TestApp) {
    for i in 0..50 {
        app.product(&format!("C-{i}"), 100 + i, "EUR").await;
    }
    let (order, _, token) = app.draft_order("racer@example.com").await;
    let path = format!("/v1/orders/{order}/items");
    let replies = join_all((0..50).map(|i| {
        app.post(
            &path,
            Some(&token),
            json!({"sku": format!("C-{i}"), "quantity": 1}),
        )
    }))
    .await;
    let winners = replies.iter().filter(|r| r.status.is_success()).count();
    for r in replies.iter().filter(|r| !r.status.is_success()) {
        assert_eq!(
            r.problem(409)["type"],
            "urn:shopstream:problem:concurrent_modification",
            "{}",
            r.body
        );
    }
    assert!(winners >= 1);
    let stream = app.log.stream("Order", &order).await.expect("stream");
    let added = stream
        .iter()
        .filter(|e| e.event_type == "OrderItemAdded")
        .count();
    assert_eq!(
        added, winners,
        "every winner appended exactly one event, no loser did"
    );
    let sequences: Vec<i64> = stream.iter().map(|e| e.sequence).collect();
    assert_eq!(
        sequences,
        (1..=stream.len() as i64).collect::<Vec<_>>(),
        "sequences are gapless"
    );
    // Versions returned to winners are distinct: no two commands both won the same slot.
    let mut versions: Vec<u64> = replies
        .iter()
        .filter_map(|r| r.body["version"].as_u64())
        .collect();
    versions.sort_unstable();
    versions.dedup();
    assert_eq!(versions.len(), winners);
}

async fn racing_with_if_match_yields_412(app: &TestApp) {
    let (customer, token) = app.register("ifmatch-race@example.com").await;
    let path = format!("/v1/users/{customer}");
    let replies = join_all((0..10).map(|i| {
        app.send(
            reqwest::Method::PATCH,
            &path,
            Some(&token),
            Some(json!({"name": format!("Name {i}")})),
            &[("if-match", "\"1\"")],
        )
    }))
    .await;
    let winners = replies.iter().filter(|r| r.status.is_success()).count();
    assert_eq!(winners, 1, "exactly one writer of version 1 wins");
    for r in replies.iter().filter(|r| !r.status.is_success()) {
        r.problem(412);
    }
    assert_eq!(
        app.log
            .stream("User", &customer)
            .await
            .expect("stream")
            .len(),
        2
    );
}

async fn one_email_one_user_even_when_racing(app: &TestApp) {
    let app = Arc::new(app);
    let emails = ["Race@Example.com", "race@example.com", " RACE@EXAMPLE.COM "];
    let replies = join_all((0..12).map(|i| {
        app.post(
            "/v1/users",
            None,
            json!({"email": emails[i % 3], "name": "Racer"}),
        )
    }))
    .await;
    let created = replies.iter().filter(|r| r.status.as_u16() == 201).count();
    assert_eq!(created, 1);
    for r in replies.iter().filter(|r| r.status.as_u16() != 201) {
        assert_eq!(r.problem(409)["type"], "urn:shopstream:problem:email_taken");
    }
    let registered = app
        .log
        .read_settled_from(eventlog::Cursor::START, 1000)
        .await
        .expect("read");
    assert_eq!(
        registered
            .iter()
            .filter(|e| e.event_type == "UserRegistered")
            .count(),
        1
    );
}

/// A registration writes its event and its address's reservation
/// together; a second registration of the address writes neither.
async fn registration_reserves_its_address_with_its_event(app: &TestApp) {
    let (id, _) = app.register("Owner@Example.com").await;
    let holder = |app: &TestApp| {
        let db = app.database().clone();
        async move {
            // The reservation holds the address's keyed hash, never the address.
            let address = domain::Email::parse("owner@example.com").expect("email");
            let index = eventlog::testing::keys(&db)
                .email_index(&address)
                .await
                .expect("index");
            let sql = "SELECT user_id FROM user_emails WHERE email = $1 OR email LIKE '%@%'";
            match &db {
                eventlog::Database::Postgres(p) => eventlog::sqlx::query_scalar::<_, String>(sql)
                    .bind(&index)
                    .fetch_all(p)
                    .await
                    .expect("select"),
                eventlog::Database::Sqlite(p) => eventlog::sqlx::query_scalar::<_, String>(sql)
                    .bind(&index)
                    .fetch_all(p)
                    .await
                    .expect("select"),
            }
        }
    };
    assert_eq!(holder(app).await, std::slice::from_ref(&id));
    let head = app.head().await;
    let again = app
        .post(
            "/v1/users",
            None,
            json!({"email": "owner@example.com", "name": "Second"}),
        )
        .await;
    assert_eq!(
        again.problem(409)["type"],
        "urn:shopstream:problem:email_taken"
    );
    assert_eq!(app.head().await, head, "nothing appended");
    assert_eq!(holder(app).await, [id], "the reservation stays the owner's");
}

both_backends!(
    registration_reserves_its_address_with_its_event,
    fifty_concurrent_commands_on_one_order,
    racing_with_if_match_yields_412,
    one_email_one_user_even_when_racing,
);
