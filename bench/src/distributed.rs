//! The documented distributed deployment, measured process by process: the
//! relay, two Kafka-fed projector processes, the command API and the query
//! API as separate processes (plus tansu and PostgreSQL). Commands/s at 16
//! clients beside raw INSERTs, freshness with and without the token, the
//! relay's throughput against the append rate, each process's peak RSS;
//! then one projector is killed and the time until freshness is back under
//! target is measured.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::cpu::{busy_between, cpu_ticks, Role, Shares};
use crate::load::{self, Api, Latencies};
use crate::procs::{self, peak_rss_mib, Broker, Shopstream};
use crate::report::Report;
use crate::{Args, SECRET};

/// Freshness (with the token, p99) the deployment should stay under.
const TARGET: Duration = Duration::from_millis(100);

/// The light background load freshness is measured under first, commands/s.
const LIGHT: f64 = 50.0;

/// Good probes in a row that count as "back under target".
const STREAK: usize = 5;

/// The log's head and the relay's checkpoint: appended vs published.
async fn head_and_published(pool: &sqlx::PgPool) -> (i64, i64) {
    let head = sqlx::query_scalar("SELECT COALESCE(MAX(position), 0) FROM events")
        .fetch_one(pool)
        .await
        .unwrap_or(0);
    let published =
        sqlx::query_scalar("SELECT COALESCE(MAX(cursor_position), 0) FROM relay_checkpoint")
            .fetch_one(pool)
            .await
            .unwrap_or(0);
    (head, published)
}

/// Where freshness goes: each stage's delay histogram (seconds since the
/// event's append), by the process that records it.
const STAGES: &[(&str, &str)] = &[
    ("append → read by the relay", "relay_read_delay_seconds"),
    (
        "relay: produced → acknowledgement settled",
        "relay_ack_wait_seconds",
    ),
    ("append → broker ack (relay)", "relay_publish_delay_seconds"),
    (
        "append → projector received (Kafka)",
        "projector_kafka_receive_delay_seconds",
    ),
    (
        "append → projection committed",
        "projector_event_delay_seconds",
    ),
    (
        "token wait in the query API",
        "graphql_consistency_wait_seconds",
    ),
];

/// One stage's histogram totals: sum, count, and how many were at most
/// 50 ms and at most 100 ms (the buckets around the freshness target).
#[derive(Debug, Clone, Copy, Default)]
struct Totals {
    sum: f64,
    count: f64,
    within_50ms: f64,
    within_100ms: f64,
}

impl Totals {
    fn add(&mut self, other: Totals) {
        self.sum += other.sum;
        self.count += other.count;
        self.within_50ms += other.within_50ms;
        self.within_100ms += other.within_100ms;
    }
}

/// The [`Totals`] of every [`STAGES`] histogram one process exports at
/// `base/metrics`, over all label sets.
async fn stage_totals(base: &str) -> HashMap<&'static str, Totals> {
    let mut out = HashMap::new();
    let Ok(text) = reqwest::get(format!("{base}/metrics")).await else {
        return out;
    };
    let text = text.text().await.unwrap_or_default();
    for line in text.lines() {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let name = series.split('{').next().unwrap_or_default();
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        for (_, metric) in STAGES {
            let full = format!("shopstream_{metric}");
            let entry: &mut Totals = out.entry(*metric).or_default();
            if name == format!("{full}_sum") {
                entry.sum += value;
            } else if name == format!("{full}_count") {
                entry.count += value;
            } else if name == format!("{full}_bucket") {
                if series.contains("le=\"0.05\"") {
                    entry.within_50ms += value;
                } else if series.contains("le=\"0.1\"") {
                    entry.within_100ms += value;
                }
            }
        }
    }
    out
}

/// [`stage_totals`] over several processes, added up.
async fn all_stage_totals(processes: &[&Shopstream]) -> HashMap<&'static str, Totals> {
    let mut out: HashMap<&'static str, Totals> = HashMap::new();
    for p in processes {
        for (metric, totals) in stage_totals(p.base()).await {
            out.entry(metric).or_default().add(totals);
        }
    }
    out
}

/// Each stage's mean delay between two [`all_stage_totals`], in ms, and
/// the share of its samples over 50 ms and over 100 ms (where the
/// freshness tail comes from).
fn stage_means(
    before: &HashMap<&'static str, Totals>,
    after: &HashMap<&'static str, Totals>,
) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for (label, metric) in STAGES {
        let t0 = before.get(metric).copied().unwrap_or_default();
        let t1 = after.get(metric).copied().unwrap_or_default();
        let n = t1.count - t0.count;
        let mean = (n > 0.0).then(|| (t1.sum - t0.sum) / n * 1000.0);
        let over = |within: f64| (n > 0.0).then(|| 1.0 - within / n);
        out.insert(
            (*label).to_string(),
            json!({
                "mean_ms": mean, "samples": n,
                "over_50ms": over(t1.within_50ms - t0.within_50ms),
                "over_100ms": over(t1.within_100ms - t0.within_100ms),
            }),
        );
    }
    serde_json::Value::Object(out)
}

pub async fn run(args: &Args, report: &mut Report) -> anyhow::Result<()> {
    let broker = match Broker::start().await {
        Ok(b) => b,
        Err(e) => {
            report.note(&format!("distributed group skipped: {e}"));
            return Ok(());
        }
    };
    let db = procs::fresh_database(&args.postgres, "distributed").await?;
    procs::cli(&["migrate"], &db.url)?;
    let kafka = [
        "--kafka-brokers",
        &broker.address(),
        "--kafka-partitions",
        "6",
    ];
    let url = Some(db.url.as_str());
    let relay = Shopstream::start(&["relay"], url, &kafka).await?;
    let projector_a =
        Shopstream::start_on("--operations-listen", &["project"], url, &kafka).await?;
    let projector_b =
        Shopstream::start_on("--operations-listen", &["project"], url, &kafka).await?;
    let commands = Shopstream::start(&["commands"], url, &[]).await?;
    let query = Shopstream::start(&["query"], url, &[]).await?;
    let api = Api::new(commands.base(), SECRET).querying(query.base());
    let pool = sqlx::PgPool::connect(&db.url).await?;
    let dur = Duration::from_secs(args.seconds);

    let skus = api.catalog(50).await?;
    let recorders = [&relay, &projector_a, &projector_b, &query];
    let roles = [
        Role::Pids("relay", vec![relay.pid()]),
        Role::Pids("projectors", vec![projector_a.pid(), projector_b.pid()]),
        Role::Pids("command API", vec![commands.pid()]),
        Role::Pids("query API", vec![query.pid()]),
        Role::Pids("broker (tansu)", vec![broker.pid()]),
        Role::Comm("PostgreSQL", "postgres"),
        Role::Pids("load generator", vec![std::process::id()]),
    ];
    let phases = Phases {
        recorders: &recorders,
        roles: &roles,
        probes: args.probes,
    };
    // Freshness at a light load first, while the topic is young: the test
    // broker's in-memory engine (tansu 0.6) lists every batch a partition
    // holds on each fetch, so after the command phase's tens of thousands
    // of batches each fetch costs it more (BENCHMARKS.md); a Kafka broker
    // finds an offset through its index. The half-rate phase still runs
    // after it, on the grown topic.
    let (light, _) = freshness_phase(&api, &skus, LIGHT, &phases, report).await?;
    let _ = light.stop().await;
    let load = command_phase(&api, &skus, &db.url, &pool, dur, report).await?;
    // Then at half the rate the deployment sustains (how the other groups
    // measure it); that load keeps running through the kill below.
    let half = if load.rate() > 1.0 {
        load.rate() / 2.0
    } else {
        100.0
    };
    let (background, with_token) = freshness_phase(&api, &skus, half, &phases, report).await?;
    for (what, process) in [
        ("relay", &relay),
        ("projector a", &projector_a),
        ("projector b", &projector_b),
        ("command API", &commands),
        ("query API", &query),
    ] {
        report.memory(
            &format!("distributed: {what} under load"),
            peak_rss_mib(process.pid()),
        );
    }

    // One projector dies (SIGKILL) under the same load: how long until the
    // survivor has its partitions and freshness is back under target (or
    // under the p99 before the kill, where that was above the target)?
    let threshold = TARGET.max(Duration::from_secs_f64(with_token.p(99.0) / 1000.0));
    drop(projector_a);
    let after = takeover(&api, threshold).await;
    let done = background.stop().await;
    report.row(
        "distributed",
        "one projector killed under load (60 s after the kill)",
        json!({
            "takeover_s": after.last_failure.map_or(0.0, |d| d.as_secs_f64()),
            "failed_probes": after.failed,
            "after_takeover_p50_ms": after.latencies.p(50.0),
            "after_takeover_p99_ms": after.latencies.p(99.0),
            "after_takeover_probes": after.latencies.samples.len(),
            "back_under_target_after_s": after.recovered.map(|d| d.as_secs_f64()),
            "target_ms": threshold.as_secs_f64() * 1000.0,
            "background_commands_per_s": done.rate(), "background_errors": done.errors,
        }),
    );
    report.memory(
        "distributed: surviving projector after the takeover",
        peak_rss_mib(projector_b.pid()),
    );
    pool.close().await;
    for process in [query, commands, projector_b, relay] {
        process.stop();
    }
    db.drop().await;
    drop(broker);
    Ok(())
}

/// What the freshness phases measure: the processes whose stage
/// histograms add up, the roles whose CPU is read, the probes per phase.
#[derive(Clone, Copy)]
struct Phases<'a> {
    recorders: &'a [&'a Shopstream],
    roles: &'a [Role],
    probes: usize,
}

/// Freshness with and without the token under a paced load of `rate`
/// commands/s, with its legs, the machine's busy share and each role's
/// share of it; the load keeps running and is returned with the
/// with-token latencies.
async fn freshness_phase(
    api: &Api,
    skus: &[String],
    rate: f64,
    phases: &Phases<'_>,
    report: &mut Report,
) -> anyhow::Result<(load::Paced, Latencies)> {
    let Phases {
        recorders,
        roles,
        probes,
    } = *phases;
    let background = api.paced_load(skus.to_vec(), rate);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let totals_before = all_stage_totals(recorders).await;
    let cpu_before = cpu_ticks();
    let shares = Shares::start(roles);
    let (token, without) = api.freshness(probes).await;
    let busy = busy_between(cpu_before, cpu_ticks());
    let cores = shares.cores();
    report.row(
        "distributed",
        &format!("freshness under {rate:.0} commands/s"),
        json!({
            "with_token_p50_ms": token.p(50.0), "with_token_p99_ms": token.p(99.0),
            "without_token_p50_ms": without.p(50.0), "without_token_p99_ms": without.p(99.0),
            "probes_with_token": token.samples.len(), "probes_without_token": without.samples.len(),
            "errors": token.errors + without.errors,
            "machine_busy": busy,
            "cpu_cores": cores,
            "legs": stage_means(&totals_before, &all_stage_totals(recorders).await),
        }),
    );
    Ok((background, token))
}

/// Probes after one projector was killed.
struct AfterKill {
    latencies: Latencies,
    failed: usize,
    last_failure: Option<Duration>,
    recovered: Option<Duration>,
}

/// Probes for 60 s after a kill: when the last probe failed (the takeover)
/// and when freshness stayed under `threshold` for [`STREAK`] probes.
async fn takeover(api: &Api, threshold: Duration) -> AfterKill {
    let killed = Instant::now();
    let (mut streak, mut since, mut recovered) = (0, None, None);
    let (mut last_failure, mut after_takeover, mut failed) = (None, Latencies::default(), 0);
    while killed.elapsed() < Duration::from_secs(60) {
        match api.probe(true).await {
            Some(latency) => {
                after_takeover.samples.push(latency);
                if latency <= threshold {
                    since.get_or_insert(killed.elapsed());
                    streak += 1;
                    if streak >= STREAK && recovered.is_none() {
                        recovered = since;
                    }
                } else {
                    (streak, since) = (0, None);
                }
            }
            None => {
                // Its write not visible in time: the partition has no owner yet.
                failed += 1;
                last_failure = Some(killed.elapsed());
                after_takeover = Latencies::default();
                (streak, since) = (0, None);
            }
        }
    }
    AfterKill {
        latencies: after_takeover,
        failed,
        last_failure,
        recovered,
    }
}

/// Commands at 16 clients beside raw INSERTs, and the relay's published
/// rate against the append rate over the same window; the command load.
async fn command_phase(
    api: &Api,
    skus: &[String],
    url: &str,
    pool: &sqlx::PgPool,
    dur: Duration,
    report: &mut Report,
) -> anyhow::Result<Latencies> {
    let (head0, published0) = head_and_published(pool).await;
    let started = Instant::now();
    let load = api.command_load(skus, 16, dur).await;
    let raw = load::raw_inserts(url, 16, dur).await?;
    // The relay's share of the same window, plus a moment to drain.
    let (head1, published_at_end) = head_and_published(pool).await;
    let window = started.elapsed().as_secs_f64().max(1e-9);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, published1) = head_and_published(pool).await;
    report.row(
        "distributed",
        "commands, 16 clients (command API alone, relay and projectors beside)",
        json!({
            "commands_per_s": load.rate(), "p50_ms": load.p(50.0), "p99_ms": load.p(99.0),
            "errors": load.errors, "failures": load.failures,
            "raw_inserts_per_s": raw.rate(), "ratio": load.rate() / raw.rate().max(1e-9),
        }),
    );
    report.row(
        "distributed",
        "relay: events published vs appended during the command load",
        json!({
            "appended_per_s": (head1 - head0) as f64 / window,
            "published_per_s": (published_at_end - published0) as f64 / window,
            "lag_at_end_events": head1 - published_at_end,
            "lag_2s_later_events": head1 - published1,
        }),
    );

    Ok(load)
}
