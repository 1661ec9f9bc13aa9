//! The `analytics` group: the console's dashboard query at dashboard
//! concurrency, beside bare handlers running the same SQL.

use std::time::Duration;

use serde_json::json;

use crate::load::{self, Api};
use crate::procs::{peak_rss_mib, Shopstream};
use crate::report::Report;
use crate::{Args, SECRET};

/// The console's dashboard query for a year at 16 clients through GraphQL,
/// beside a bare handler running the same SQL (with the monthly roll-up,
/// and with the day rows alone: the query before the roll-up).
pub(crate) async fn rows(args: &Args, report: &mut Report, url: &str) -> anyhow::Result<()> {
    let dur = Duration::from_secs(args.seconds);
    let serve = Shopstream::start(&["serve"], Some(url), &[]).await?;
    let api = Api::new(serve.base(), SECRET);
    let a = api.analytics_load(16, dur).await;
    // The same while sessions are written (every commit moves the
    // positions requests promise, so kept answers are computed again).
    let skus = api.catalog(20).await?;
    let background = api.paced_load(skus, 50.0);
    let busy = api.analytics_load(16, dur).await;
    let written = background.stop().await;
    let rss = peak_rss_mib(serve.pid());
    serve.stop();
    let bare = load::bare_dashboard_load(url, true, 16, dur).await?;
    let by_day = load::bare_dashboard_load(url, false, 16, dur).await?;
    let mut row = versus_bare(&a, &bare);
    row["bare_day_rows_per_s"] = json!(by_day.rate());
    row["bare_day_rows_p50_ms"] = json!(by_day.p(50.0));
    row["bare_day_rows_p99_ms"] = json!(by_day.p(99.0));
    report.row(
        "analytics",
        "dashboard query over a year (revenue by month, top 10 products, funnel, payments, AOV, new customers), 16 clients",
        row,
    );
    report.row(
        "analytics",
        "the same while 50 commands/s are written (answers recomputed after commits), 16 clients",
        json!({
            "requests_per_s": busy.rate(), "p50_ms": busy.p(50.0), "p99_ms": busy.p(99.0),
            "errors": busy.errors, "commands_per_s": written.rate(), "command_errors": written.errors,
        }),
    );
    report.memory("serve (postgres, ~1M events) under analytics load", rss);
    Ok(())
}

/// A load's figures beside its bare handler's, and their ratio.
pub(crate) fn versus_bare(g: &load::Latencies, bare: &load::Latencies) -> serde_json::Value {
    json!({
        "requests_per_s": g.rate(), "p50_ms": g.p(50.0), "p99_ms": g.p(99.0), "errors": g.errors,
        "bare_handler_per_s": bare.rate(), "bare_p50_ms": bare.p(50.0), "bare_p99_ms": bare.p(99.0),
        "ratio": g.rate() / bare.rate().max(1e-9),
    })
}
