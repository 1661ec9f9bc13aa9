//! Projector scale-out on Kafka: what a second projector process buys. The
//! same backlog (a seeded store, published by the relay into a topic of its
//! own) is folded by one projector process, then by two, each run into a
//! fresh database's read models; the figure is store events per second from
//! the processes' start until every projection has caught up to the head.

use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;

use crate::cpu::{busy_between, cpu_seconds, cpu_ticks};
use crate::procs::{self, peak_rss_mib, Broker, Shopstream};
use crate::report::Report;
use crate::Args;

/// How long a backlog may take to publish or to fold before the run gives up.
const PATIENCE: Duration = Duration::from_secs(600);

/// The relay's checkpoint and the log's head.
async fn published(pool: &sqlx::PgPool) -> anyhow::Result<(i64, i64)> {
    let head: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(position), 0) FROM events")
        .fetch_one(pool)
        .await?;
    let done: i64 =
        sqlx::query_scalar("SELECT COALESCE(MAX(cursor_position), 0) FROM relay_checkpoint")
            .fetch_one(pool)
            .await?;
    Ok((head, done))
}

pub async fn run(args: &Args, report: &mut Report) -> anyhow::Result<()> {
    let broker = match Broker::start().await {
        Ok(b) => b,
        Err(e) => {
            report.note(&format!("scale-out group skipped: {e}"));
            return Ok(());
        }
    };
    let (customers, orders) = if args.quick {
        ("300", "2000")
    } else {
        ("2000", "16000")
    };
    for processes in [1usize, 2] {
        let db = procs::fresh_database(&args.postgres, &format!("scaleout{processes}")).await?;
        procs::cli(&["migrate"], &db.url)?;
        procs::cli(
            &["seed", "--customers", customers, "--orders", orders],
            &db.url,
        )?;
        let topic = format!("shopstream.scaleout.{processes}.{}", std::process::id());
        let kafka = [
            "--kafka-brokers",
            &broker.address(),
            "--kafka-topic",
            &topic,
            "--kafka-partitions",
            "6",
        ];
        let url = Some(db.url.as_str());
        let pool = sqlx::PgPool::connect(&db.url).await?;
        // The backlog goes into the topic first: the projectors then only fold.
        let relay = Shopstream::start(&["relay"], url, &kafka).await?;
        let started = Instant::now();
        let head = loop {
            let (head, done) = published(&pool).await?;
            if head > 0 && done >= head {
                break head;
            }
            anyhow::ensure!(
                started.elapsed() < PATIENCE,
                "the relay did not publish the backlog"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let publish_s = started.elapsed().as_secs_f64();
        relay.stop();

        let store = eventlog::Database::connect(&db.url, &eventlog::DatabaseOptions::default())
            .await
            .context("store")?;
        let log = eventlog::EventLog::new(store.clone());
        let read = readmodel::ReadDb::connect(&db.url, 2).await?;
        let started = Instant::now();
        let machine_before = cpu_ticks();
        let mut running = Vec::new();
        for _ in 0..processes {
            running.push(
                Shopstream::start_on("--operations-listen", &["project"], url, &kafka).await?,
            );
        }
        let mut first_progress = None;
        loop {
            let status = readmodel::status::all(&log, &read).await?;
            if first_progress.is_none() && status.iter().any(|s| s.position > 0) {
                first_progress = Some(started.elapsed().as_secs_f64());
            }
            if !status.is_empty() && status.iter().all(|s| s.position >= head) {
                break;
            }
            anyhow::ensure!(
                started.elapsed() < PATIENCE,
                "the projectors did not catch up"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let took = started.elapsed().as_secs_f64().max(1e-9);
        let rss: Vec<f64> = running
            .iter()
            .filter_map(|p| peak_rss_mib(p.pid()))
            .collect();
        let cpu: Vec<f64> = running
            .iter()
            .filter_map(|p| cpu_seconds(p.pid()))
            .collect();
        // How busy both cores were while the projectors folded (Postgres,
        // the projectors and the broker together).
        let machine_busy = busy_between(machine_before, cpu_ticks());
        report.row(
            "scaleout",
            &format!("{processes} projector process(es) folding a {head}-event backlog from Kafka"),
            json!({
                "events": head,
                "seconds": took,
                "events_per_s": head as f64 / took,
                "first_progress_s": first_progress,
                "relay_publish_events_per_s": head as f64 / publish_s.max(1e-9),
                "peak_rss_mib": rss,
                "projector_cpu_s": cpu,
                "machine_busy": machine_busy,
            }),
        );
        for p in running {
            p.stop();
        }
        read.close().await;
        store.close().await;
        pool.close().await;
        db.drop().await;
    }
    drop(broker);
    Ok(())
}
