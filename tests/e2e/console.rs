//! The console (`/console`), `/docs` and GraphiQL in a real browser
//! (headless Chromium over WebDriver) against a server seeded with known
//! data: the dashboard's figures equal the GraphQL answers, the operations
//! table shows the real positions, a rebuild started from the page swaps,
//! an order's event stream shows every event in log order with its causes,
//! the live feed shows an order as it changes, a customer cannot open
//! another customer's page, and the browser console has no errors (no CSP
//! refusal, no failed load). Screenshots land in `docs/console/`.

use chrono::{Duration, Utc};
use serde_json::{json, Value};

use crate::helpers::{run_cli, DraftOrder, Server, BIN, NO_RATE_LIMITS};
use crate::webdriver::Browser;

/// Minor units of EUR as the console formats them (`Intl`, `en`).
fn eur(minor: i64) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let (units, cents) = (minor.abs() / 100, minor.abs() % 100);
    let digits = units.to_string();
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("{sign}€{grouped}.{cents:02}")
}

fn count(n: i64) -> String {
    eur(n * 100)
        .trim_start_matches('€')
        .trim_end_matches(".00")
        .to_string()
}

async fn assert_no_errors(browser: &Browser, page: &str) {
    let errors = browser.errors().await;
    assert!(
        errors.is_empty(),
        "{page}: browser console errors: {errors:#?}"
    );
}

async fn sign_in(browser: &Browser, base: &str, token: &str) {
    browser.goto(&format!("{base}/console")).await;
    let input = browser.wait_for("#token").await;
    input.send_keys(token).await.expect("type the token");
    browser
        .wait_for("#signin button")
        .await
        .click()
        .await
        .expect("sign in");
    browser.wait_for("#who:not([hidden])").await;
}

const DASHBOARD: &str = "query($from: NaiveDate!, $to: NaiveDate!) { analytics {
  revenue(from: $from, to: $to, granularity: MONTH, currency: \"EUR\") { bucket amount { amountMinor } }
  topProducts(from: $from, to: $to, by: REVENUE, limit: 10) { sku name revenue { amountMinor } }
  funnel(from: $from, to: $to) { created placed paid shipped delivered cancelled }
  paymentOutcomes(from: $from, to: $to) { successRate }
  averageOrderValue(from: $from, to: $to, currency: \"EUR\") { amountMinor }
  newCustomers(from: $from, to: $to) } }";

async fn dashboard(browser: &Browser, server: &Server, admin: &str) {
    let today = Utc::now().date_naive();
    let vars = json!({"from": (today - Duration::days(364)).to_string(), "to": today.to_string()});
    let (_, body) = server.graphql(Some(admin), None, DASHBOARD, vars).await;
    let a = &body["data"]["analytics"];
    assert!(
        a["revenue"].as_array().is_some_and(|r| !r.is_empty()),
        "{body}"
    );
    browser
        .goto(&format!("{}/console#/dashboard", server.base()))
        .await;
    let total: i64 = a["revenue"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|b| b["amount"]["amountMinor"].as_i64().unwrap_or_default())
        .sum();
    assert_eq!(
        browser.text("[data-testid=revenue-total]").await,
        eur(total)
    );
    let aov = a["averageOrderValue"]["amountMinor"].as_i64().expect("aov");
    assert_eq!(
        browser.text("[data-testid=average-order-value]").await,
        eur(aov)
    );
    let new = a["newCustomers"].as_i64().expect("new customers");
    assert_eq!(
        browser.text("[data-testid=new-customers]").await,
        count(new)
    );
    let rate = a["paymentOutcomes"]["successRate"].as_f64().expect("rate");
    assert_eq!(
        browser.text("[data-testid=payment-success]").await,
        format!("{:.1} %", rate * 100.0)
    );
    // The charts' text equivalents carry every value.
    let buckets: Vec<String> = a["revenue"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|b| {
            let minor = b["amount"]["amountMinor"].as_i64().unwrap_or_default();
            format!(
                "{} {}",
                b["bucket"].as_str().unwrap_or_default(),
                eur(minor)
            )
        })
        .collect();
    let label = browser
        .js(
            "return document.querySelector('[data-testid=revenue-chart] svg').getAttribute('aria-label');",
            vec![],
        )
        .await;
    assert_eq!(
        label.as_str().unwrap_or_default(),
        format!("Revenue per month (EUR): {}", buckets.join("; "))
    );
    let products: Vec<String> = a["topProducts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let minor = p["revenue"]["amountMinor"].as_i64().unwrap_or_default();
            format!(
                "{} ({})|{}",
                p["name"].as_str().unwrap_or_default(),
                p["sku"].as_str().unwrap_or_default(),
                eur(minor)
            )
        })
        .collect();
    let shown = browser
        .js(
            "return [...document.querySelectorAll('[data-testid=top-products] table.data tbody tr')]
               .map(tr => tr.cells[0].textContent + '|' + tr.cells[1].textContent);",
            vec![],
        )
        .await;
    assert_eq!(shown, json!(products));
    let f = &a["funnel"];
    let stages = [
        "created",
        "placed",
        "paid",
        "shipped",
        "delivered",
        "cancelled",
    ];
    let funnel: Vec<String> = stages
        .iter()
        .map(|s| {
            let n = f[s].as_i64().unwrap_or_default();
            let mut name = s.to_string();
            name[..1].make_ascii_uppercase();
            format!("{name} {}", count(n))
        })
        .collect();
    let label = browser
        .js(
            "return document.querySelector('[data-testid=funnel] svg').getAttribute('aria-label');",
            vec![],
        )
        .await;
    assert_eq!(
        label.as_str().unwrap_or_default(),
        format!("Funnel: {}", funnel.join("; "))
    );
    browser
        .screenshots("dashboard", "[data-testid=revenue-chart]")
        .await;
    assert_no_errors(browser, "dashboard").await;
}

async fn projections(server: &Server, admin: &str) -> Value {
    let (_, body) = server
        .graphql(
            Some(admin),
            None,
            "{ projections { name generation head lagEvents } }",
            json!({}),
        )
        .await;
    body["data"]["projections"].clone()
}

async fn operations(browser: &Browser, server: &Server, admin: &str) {
    // Caught up first, so that the page and the API agree on one state.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let before = loop {
        let p = projections(server, admin).await;
        let caught_up = p
            .as_array()
            .is_some_and(|a| a.iter().all(|x| x["lagEvents"] == 0));
        if caught_up || std::time::Instant::now() > deadline {
            break p;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    browser
        .goto(&format!("{}/console#/operations", server.base()))
        .await;
    browser.wait_for("[data-testid=projections]").await;
    for p in before.as_array().into_iter().flatten() {
        let name = p["name"].as_str().expect("name");
        let head = p["head"].as_i64().expect("head");
        let lag = p["lagEvents"].as_i64().expect("lag");
        assert_eq!(
            browser.text(&format!("[data-testid=lag-{name}]")).await,
            count(lag)
        );
        assert_eq!(
            browser.text(&format!("[data-testid=head-{name}]")).await,
            count(head)
        );
    }
    let generation = |v: &Value| {
        v.as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"] == "order_view")
            .and_then(|p| p["generation"].as_i64())
    };
    let old = generation(&before).expect("order_view generation");
    browser
        .wait_for("[data-testid=rebuild-order_view]")
        .await
        .click()
        .await
        .expect("start a rebuild");
    browser
        .until(
            "the rebuild swaps",
            "const s = document.querySelector('[data-testid^=job-state-]'); return !!s && s.textContent === 'swapped';",
            vec![],
        )
        .await;
    let new = (old + 1).to_string();
    browser
        .until(
            "the table shows the new generation",
            "const g = document.querySelector('[data-testid=gen-order_view]'); return !!g && g.textContent === arguments[0];",
            vec![json!(new)],
        )
        .await;
    assert_eq!(
        generation(&projections(server, admin).await),
        Some(old + 1),
        "the API agrees"
    );
    let diff = browser.text("[data-testid^=job-] table.diff").await;
    assert!(
        diff.contains("order_view") && diff.contains("same"),
        "{diff}"
    );
    let (s, relay) = server.get_auth("/v1/admin/relay", admin).await;
    assert_eq!(
        (s, &relay["relay"]),
        (200, &Value::Null),
        "no relay in this process"
    );
    browser
        .screenshots("operations", "[data-testid=projections]")
        .await;
    assert_no_errors(browser, "operations").await;
}

/// The order's and its payments' events, in log order, as `position type vN`.
async fn expected_stream(server: &Server, admin: &str, order_id: &str) -> Vec<(String, String)> {
    let (_, order) = server
        .get_auth(&format!("/v1/orders/{order_id}/events"), admin)
        .await;
    let mut events: Vec<Value> = order["events"].as_array().cloned().unwrap_or_default();
    let (_, view) = server
        .graphql(
            Some(admin),
            None,
            "query($id: ID!) { order(id: $id) { payment { paymentId failures { paymentId } } } }",
            json!({"id": order_id}),
        )
        .await;
    let payment = &view["data"]["order"]["payment"];
    let mut payments: Vec<String> = payment["failures"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(std::iter::once(payment))
        .filter_map(|p| p["paymentId"].as_str().map(str::to_string))
        .collect();
    payments.sort();
    payments.dedup();
    assert!(!payments.is_empty(), "{view}");
    for p in payments {
        let (_, s) = server
            .get_auth(&format!("/v1/payments/{p}/events"), admin)
            .await;
        events.extend(s["events"].as_array().cloned().unwrap_or_default());
    }
    events.sort_by_key(|e| e["position"].as_i64());
    events
        .iter()
        .map(|e| {
            (
                e["position"].to_string(),
                format!(
                    "{} v{}",
                    e["event_type"].as_str().unwrap_or_default(),
                    e["event_version"].as_str().unwrap_or_default()
                ),
            )
        })
        .collect()
}

async fn order_story(browser: &Browser, server: &Server, admin: &str, order_id: &str) {
    browser
        .goto(&format!("{}/console#/orders/{order_id}", server.base()))
        .await;
    browser.wait_for("[data-testid=event-stream]").await;
    let rows = browser
        .js(
            "return [...document.querySelectorAll('[data-testid=event-stream] tbody tr')]
               .map(tr => [tr.cells[0].textContent, tr.cells[2].textContent, tr.cells[3].textContent]);",
            vec![],
        )
        .await;
    let rows: Vec<Vec<String>> = serde_json::from_value(rows).expect("rows");
    let shown: Vec<(String, String)> = rows.iter().map(|r| (r[0].clone(), r[1].clone())).collect();
    assert_eq!(shown, expected_stream(server, admin, order_id).await);
    // The saga's commands name their causes: the payment was initiated
    // because the order was placed, and the order paid because it was captured.
    let cause = |event: &str| {
        rows.iter()
            .find(|r| r[1].starts_with(event))
            .map(|r| r[2].clone())
            .unwrap_or_default()
    };
    assert!(
        cause("PaymentInitiated").starts_with("← OrderPlaced @"),
        "{rows:?}"
    );
    assert!(
        cause("OrderPaid").starts_with("← PaymentCaptured @"),
        "{rows:?}"
    );
    assert_eq!(browser.text("[data-testid=order-status]").await, "paid");
    browser
        .screenshots("order", "[data-testid=event-stream]")
        .await;
    assert_no_errors(browser, "order").await;
}

#[tokio::test]
async fn the_console_in_a_real_browser() {
    let data = tempfile::tempdir().expect("tempdir");
    let seeded = run_cli(
        data.path(),
        &[
            "seed",
            "--customers",
            "40",
            "--orders",
            "160",
            "--seed",
            "7",
        ],
    );
    assert!(seeded.contains("seeded"), "{seeded}");
    let args = [
        "serve",
        "--simulate-payments",
        "--simulated-failure-rate",
        "0",
    ];
    let server = Server::start_with_env(BIN, &args, data.path(), None, &NO_RATE_LIMITS).await;
    let admin = run_cli(data.path(), &["token", "--sub", "ops", "--role", "admin"]);
    let browser = Browser::start().await;

    sign_in(&browser, server.base(), &admin).await;
    assert_no_errors(&browser, "sign-in").await;
    dashboard(&browser, &server, &admin).await;
    operations(&browser, &server, &admin).await;

    // Live: an order placed now appears in the feed, and again when paid.
    browser
        .goto(&format!("{}/console#/live", server.base()))
        .await;
    browser.wait_for("[data-testid=feed] li").await;
    let draft = DraftOrder::create(&server, data.path(), "live@example.com", 2).await;
    let (s, _) = server
        .post(
            &format!("/v1/orders/{}/place", draft.order_id),
            Some(&draft.customer),
            Value::Null,
        )
        .await;
    assert_eq!(s, 200);
    browser
        .until(
            "the feed shows the order paid",
            "return [...document.querySelectorAll('[data-testid=feed] li')]
               .some(li => li.dataset.order === arguments[0] && li.textContent.includes('paid'));",
            vec![json!(draft.order_id)],
        )
        .await;
    browser.screenshots("live", "[data-testid=feed] li").await;
    assert_no_errors(&browser, "live").await;

    order_story(&browser, &server, &admin, &draft.order_id).await;

    // Customers: found by e-mail prefix.
    browser
        .goto(&format!("{}/console#/customers", server.base()))
        .await;
    let search = browser.wait_for("input[name=prefix]").await;
    search.send_keys("live@").await.expect("type");
    browser
        .wait_for("form[role=search] button")
        .await
        .click()
        .await
        .expect("find");
    browser
        .until(
            "the customer is found",
            "const r = document.querySelector('[data-testid=customer-results] a'); return !!r && r.textContent === 'live@example.com';",
            vec![],
        )
        .await;
    browser
        .wait_for("[data-testid=customer-results] a")
        .await
        .click()
        .await
        .expect("open");
    assert_eq!(
        browser.text("[data-testid=customer-email]").await,
        "live@example.com"
    );
    browser
        .screenshots("customer", "[data-testid=orders]")
        .await;
    assert_no_errors(&browser, "customers").await;

    // A customer sees their own page, and not another customer's.
    let (_, page) = server
        .graphql(
            Some(&admin),
            None,
            "{ customers(first: 1, filter: { emailPrefix: \"\" }, orderBy: EMAIL_ASC) { edges { node { id orders(first: 1) { edges { node { id } } } } } } }",
            json!({}),
        )
        .await;
    let other = &page["data"]["customers"]["edges"][0]["node"];
    let other_id = other["id"].as_str().expect("another customer").to_string();
    browser
        .wait_for("#signout")
        .await
        .click()
        .await
        .expect("sign out");
    sign_in(&browser, server.base(), &draft.customer).await;
    assert_eq!(
        browser.text("[data-testid=customer-email]").await,
        "live@example.com"
    );
    browser
        .goto(&format!("{}/console#/customers/{other_id}", server.base()))
        .await;
    let refused = browser.text("main .error").await;
    assert!(refused.starts_with("NOT_FOUND"), "{refused}");
    if let Some(order) = other["orders"]["edges"][0]["node"]["id"].as_str() {
        browser
            .goto(&format!("{}/console#/orders/{order}", server.base()))
            .await;
        browser
            .until(
                "another customer's order is refused",
                "const e = document.querySelector('main .error'); return !!e && e.textContent.startsWith('NOT_FOUND');",
                vec![],
            )
            .await;
    }
    assert_no_errors(&browser, "customer token").await;

    // /docs (Scalar) and GraphiQL render from the embedded assets.
    browser.goto(&format!("{}/docs", server.base())).await;
    browser
        .until(
            "Scalar renders the reference",
            "return document.body.innerText.includes('shopstream') && document.querySelectorAll('section').length > 3;",
            vec![],
        )
        .await;
    browser.screenshots("docs", "#app").await;
    assert_no_errors(&browser, "/docs").await;
    browser.goto(&format!("{}/graphql", server.base())).await;
    browser.wait_for(".graphiql-container").await;
    // Its introspection query is answered (not refused as too deep).
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let text = browser.js("return document.body.innerText;", vec![]).await;
    let text = text.as_str().unwrap_or_default();
    assert!(
        !text.contains("\"errors\""),
        "GraphiQL shows an error: {text}"
    );
    browser.screenshots("graphiql", ".graphiql-container").await;
    assert_no_errors(&browser, "GraphiQL").await;
    browser.close().await;
    server.stop().await;
}
