//! `shopstream-bench`: the benchmark harness. It starts the real binaries
//! (built with `cargo build --release --bins`) against real databases and
//! prints a table; every figure comes with a baseline measured in the same
//! run on the same machine, as a ratio. It writes the figures as JSON too.
//!
//! ```sh
//! cargo build --release --bins && cargo run --release -p bench -- --out bench/results.json
//! ```
//!
//! Benchmarks report numbers; they assert nothing.

mod analytics;
mod cpu;
mod distributed;
mod flood;
mod load;
mod procs;
mod rebuild;
mod report;
mod scaleout;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use serde_json::json;

use load::Api;
use procs::{peak_rss_mib, Broker, Shopstream};
use report::Report;

/// Benchmarks of the whole platform.
#[derive(Debug, Parser)]
struct Args {
    /// PostgreSQL server (the harness creates and drops its own databases).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    postgres: String,
    /// Seconds per load step.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Events to seed for the rebuild (about 11 events per order).
    #[arg(long, default_value_t = 1_000_000)]
    events: usize,
    /// Freshness probes per profile and mode (with the token, without):
    /// a p99 of fewer than 100 is the slowest probe.
    #[arg(long, default_value_t = 200)]
    probes: usize,
    /// Where to write the JSON results.
    #[arg(long, default_value = "bench/results.json")]
    out: PathBuf,
    /// Small and fast (a smoke run, not figures to quote).
    #[arg(long)]
    quick: bool,
    /// Run only these groups (repeatable): commands, graphql, freshness,
    /// rebuild, analytics, flood, distributed, scaleout.
    #[arg(long)]
    only: Vec<String>,
}

impl Args {
    fn runs(&self, group: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|g| g == group)
    }
}

const SECRET: &str = "bench-secret-bench-secret-bench-secret-0123";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if args.quick {
        args.seconds = args.seconds.min(3);
        args.events = args.events.min(50_000);
        args.probes = args.probes.min(10);
    }
    let mut report = Report::new();
    // The freshness load runs at half the best command rate measured.
    let mut best_rate = 600.0;
    if args.runs("commands") || args.runs("graphql") {
        best_rate = commands_and_graphql(&args, &mut report)
            .await?
            .unwrap_or(best_rate);
    }
    if args.runs("freshness") {
        freshness(&args, &mut report, best_rate).await?;
    }
    if args.runs("rebuild") || args.runs("analytics") {
        rebuild_and_analytics(&args, &mut report).await?;
    }
    if args.runs("distributed") {
        distributed::run(&args, &mut report).await?;
    }
    if args.runs("scaleout") {
        scaleout::run(&args, &mut report).await?;
    }
    if args.runs("flood") {
        flood::connection_flood(&mut report, if args.quick { 1_500 } else { 3_000 }).await?;
    }
    report.print();
    report.write(&args.out, &args)?;
    Ok(())
}

/// Commands over HTTP vs raw INSERTs at 1 / 16 / 64 clients, in the
/// command service alone and with every role in one process; then
/// `customer(id)` with 20 orders vs a bare handler. Returns the best
/// all-roles command rate when commands ran.
async fn commands_and_graphql(args: &Args, report: &mut Report) -> anyhow::Result<Option<f64>> {
    let mut best: Option<f64> = None;
    if args.runs("commands") {
        command_rows(args, report, ("commands", &[]), "command service").await?;
        best = Some(command_rows(args, report, ("serve", &[]), "all roles").await?);
        // The same without the tailers' linger: what it buys.
        let no_linger = ["--projection-linger", "0s"];
        command_rows(args, report, ("serve", &no_linger), "all roles, no linger").await?;
    }
    if args.runs("graphql") {
        graphql_rows(args, report).await?;
    }
    Ok(best)
}

/// Command load on `shopstream ROLE` over a fresh Postgres database, each
/// step followed by the raw-INSERT baseline at the same concurrency.
/// Returns the best rate.
async fn command_rows(
    args: &Args,
    report: &mut Report,
    (role, extra): (&str, &[&str]),
    label: &str,
) -> anyhow::Result<f64> {
    let dur = Duration::from_secs(args.seconds);
    let db = procs::fresh_database(&args.postgres, "commands").await?;
    let server = Shopstream::start(&[role], Some(&db.url), extra).await?;
    let api = Api::new(server.base(), SECRET);
    let skus = api.catalog(50).await?;
    let mut best: f64 = 0.0;
    for clients in [1usize, 16, 64] {
        let l = api.command_load(&skus, clients, dur).await;
        let raw = load::raw_inserts(&db.url, clients, dur).await?;
        best = best.max(l.rate());
        report.row(
            "commands",
            &format!("{clients} clients, {label}"),
            json!({
                "process": format!("shopstream {role} {}", extra.join(" ")).trim_end(),
                "commands_per_s": l.rate(), "p50_ms": l.p(50.0), "p99_ms": l.p(99.0),
                "errors": l.errors, "failures": l.failures,
                "raw_inserts_per_s": raw.rate(), "raw_p50_ms": raw.p(50.0), "raw_p99_ms": raw.p(99.0),
                "ratio": l.rate() / raw.rate().max(1e-9),
            }),
        );
    }
    report.memory(
        &format!("shopstream {role} (postgres, {label}) under command load"),
        peak_rss_mib(server.pid()),
    );
    server.stop();
    db.drop().await;
    Ok(best)
}

/// `customer(id)` with 20 orders through `serve` vs a bare axum handler.
async fn graphql_rows(args: &Args, report: &mut Report) -> anyhow::Result<()> {
    let dur = Duration::from_secs(args.seconds);
    let db = procs::fresh_database(&args.postgres, "graphql").await?;
    let serve = Shopstream::start(&["serve"], Some(&db.url), &[]).await?;
    let api = Api::new(serve.base(), SECRET);
    let skus = api.catalog(50).await?;
    let customer = api.customer_with_orders(&skus, 20).await?;
    let g = api.graphql_customer_load(&customer, 16, dur).await;
    let bare = load::bare_handler_load(&db.url, &customer, 16, dur).await?;
    report.row(
        "graphql",
        "customer(id) with 20 orders, 16 clients",
        analytics::versus_bare(&g, &bare),
    );
    report.memory(
        "serve (postgres) under GraphQL load",
        peak_rss_mib(serve.pid()),
    );
    serve.stop();
    db.drop().await;
    Ok(())
}

/// Command acknowledged → visible through GraphQL, with and without the
/// consistency token, under a background load at half of the profile's own
/// maximum command rate (measured first, 16 clients; `fallback` when that
/// fails), in each profile.
async fn freshness(args: &Args, report: &mut Report, fallback: f64) -> anyhow::Result<()> {
    for (profile, linger) in [
        ("embedded", None),
        ("postgres", None),
        // What the tailers' linger costs in freshness.
        ("postgres", Some("0s")),
        ("kafka", None),
    ] {
        let broker = if profile == "kafka" {
            match Broker::start().await {
                Ok(b) => Some(b),
                Err(e) => {
                    report.note(&format!("kafka freshness skipped: {e}"));
                    continue;
                }
            }
        } else {
            None
        };
        let db = if profile == "embedded" {
            None
        } else {
            Some(procs::fresh_database(&args.postgres, profile).await?)
        };
        let mut extra: Vec<String> = Vec::new();
        if let Some(l) = linger {
            extra.extend(["--projection-linger".into(), l.into()]);
        }
        if let Some(b) = &broker {
            extra.extend([
                "--kafka-brokers".into(),
                b.address(),
                "--kafka-partitions".into(),
                "6".into(),
            ]);
        }
        let extra_refs: Vec<&str> = extra.iter().map(String::as_str).collect();
        let serve =
            Shopstream::start(&["serve"], db.as_ref().map(|d| d.url.as_str()), &extra_refs).await?;
        let api = Api::new(serve.base(), SECRET);
        let skus = api.catalog(20).await?;
        let max = api
            .command_load(&skus, 16, Duration::from_secs(args.seconds.min(5)))
            .await
            .rate();
        let paced = if max > 1.0 { max / 2.0 } else { fallback / 2.0 };
        let background = api.paced_load(skus.clone(), paced);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (with_token, without) = api.freshness(args.probes).await;
        let done = background.stop().await;
        report.row(
            "freshness",
            &format!(
                "{profile}{}, load {paced:.0} commands/s (max {max:.0})",
                linger.map_or(String::new(), |l| format!(" (--projection-linger {l})"))
            ),
            json!({
                "with_token_p50_ms": with_token.p(50.0), "with_token_p99_ms": with_token.p(99.0),
                "without_token_p50_ms": without.p(50.0), "without_token_p99_ms": without.p(99.0),
                "probes": with_token.samples.len() + without.samples.len(),
                "max_commands_per_s": max, "background_commands_per_s": done.rate(),
                "background_errors": done.errors, "background_failures": done.failures,
            }),
        );
        report.memory(
            &format!(
                "serve ({profile}{}) under freshness load",
                linger.map_or(String::new(), |l| format!(", --projection-linger {l}"))
            ),
            peak_rss_mib(serve.pid()),
        );
        serve.stop();
        if let Some(db) = db {
            db.drop().await;
        }
        drop(broker);
    }
    Ok(())
}

/// Seeds ~`events` events, rebuilds each read model (one at a time, then
/// all at once) vs raw batched INSERTs; then analytics over that year.
async fn rebuild_and_analytics(args: &Args, report: &mut Report) -> anyhow::Result<()> {
    let db = procs::fresh_database(&args.postgres, "rebuild").await?;
    let orders = (args.events / 11).max(100);
    let customers = (orders / 7).max(10);
    let seeded = Instant::now();
    let out = procs::cli(
        &[
            "seed",
            "--customers",
            &customers.to_string(),
            "--orders",
            &orders.to_string(),
        ],
        &db.url,
    )?;
    report.note(&format!(
        "seed: {} ({:.1} s)",
        out.trim(),
        seeded.elapsed().as_secs_f64()
    ));
    let store = eventlog::Database::connect(&db.url, &eventlog::DatabaseOptions::default())
        .await
        .context("store")?;
    let keys = eventlog::Keyring::from_file(&store, procs::key_file())?;
    let read = readmodel::ReadDb::connect(&db.url, 8)
        .await?
        .with_keys(keys);
    projectors::ensure_all(&read).await?;
    let log = eventlog::EventLog::new(store.clone());
    let head = log.head().await?;
    if args.runs("rebuild") {
        rebuild::rebuilds(report, &db.url, &log, &read, head).await?;
    }
    if args.runs("analytics") {
        if !args.runs("rebuild") {
            // The read models of the seeded store, built once.
            for (name, r) in projectors::rebuild::rebuild_all(&log, &read, false).await? {
                r.with_context(|| format!("building {name}"))?;
            }
        }
        analytics::rows(args, report, &db.url).await?;
    }
    read.close().await;
    store.close().await;
    db.drop().await;
    Ok(())
}

impl serde::Serialize for Args {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        json!({"seconds": self.seconds, "events": self.events, "probes": self.probes, "quick": self.quick, "only": self.only})
            .serialize(s)
    }
}
