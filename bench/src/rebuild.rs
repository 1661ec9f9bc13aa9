//! The rebuild group: each read model rebuilt alone, then
//! `shopstream projections rebuild --all` as operators run it (one bulk
//! fill for all three) at the default memory bound, at 1 GiB (no spill)
//! and at 64 MiB, against
//! raw binary `COPY` into a copy of the `order_view` table and the time it
//! takes just to read the log.

use std::time::Instant;

use serde_json::json;
use sqlx::Connection;

use crate::procs;
use crate::report::Report;

/// Rebuilds of the seeded store at `url` (head `head`), with baselines.
pub async fn rebuilds(
    report: &mut Report,
    url: &str,
    log: &eventlog::EventLog,
    read: &readmodel::ReadDb,
    head: i64,
) -> anyhow::Result<()> {
    let mut rows_written = 0;
    for name in readmodel::NAMES {
        let mut quiet = |_p: projectors::rebuild::Progress| {};
        let options = projectors::rebuild::Options::new(false, &mut quiet);
        let r = projectors::rebuild::rebuild(name, log, read, options)
            .await
            .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        let rows: i64 = r.diff.iter().map(|d| d.rebuilt_rows).sum();
        rows_written += rows;
        report.row(
            "rebuild",
            &format!("{name} alone"),
            json!({"events": r.events, "seconds": r.seconds, "events_per_s": r.events_per_second,
                   "rows": rows, "spills": r.spills}),
        );
    }
    let (read_rate, raw_copy) = (read_log(log).await?, raw_copy(url, 200_000).await?);
    for (label, memory) in [
        ("--all", "256MiB"),
        ("--all --rebuild-memory 1GiB", "1GiB"),
        ("--all --rebuild-memory 64MiB", "64MiB"),
    ] {
        let run = procs::cli_measured(
            &[
                "projections",
                "rebuild",
                "--all",
                "--rebuild-memory",
                memory,
            ],
            url,
        )?;
        let spills: u32 = run
            .stdout
            .lines()
            .filter_map(|l| l.split("wrote out early ").nth(1))
            .filter_map(|rest| rest.split_whitespace().next()?.parse::<u32>().ok())
            .sum();
        let rate = head as f64 / run.seconds.max(1e-9);
        report.row(
            "rebuild",
            &format!("projections rebuild {label}"),
            json!({
                "store_events": head, "seconds": run.seconds, "store_events_per_s": rate,
                "rows_written": rows_written, "rows_per_s": rows_written as f64 / run.seconds.max(1e-9),
                "raw_copy_rows_per_s": raw_copy,
                "ratio_rows_to_raw_copy": rows_written as f64 / run.seconds.max(1e-9) / raw_copy.max(1e-9),
                "read_log_events_per_s": read_rate,
                "spills": spills, "peak_rss_mib": run.peak_mib,
            }),
        );
        report.memory(
            &format!("`projections rebuild {label}` (1 M events)"),
            run.peak_mib,
        );
    }
    Ok(())
}

/// Events per second of reading the whole log as the bulk fill reads it
/// (the floor under any rebuild): batches of 4,096 typed events, each
/// decoded on the runtime's workers while the next read runs, two batches
/// decoding at most. (An earlier baseline decoded each batch on the reading
/// task before the next read, and ran at under half this rate: slower than
/// a rebuild of one projection, so no floor.)
async fn read_log(log: &eventlog::EventLog) -> anyhow::Result<f64> {
    const DECODING: usize = 2;
    let started = Instant::now();
    let mut after = eventlog::Cursor::START;
    let mut decoding = std::collections::VecDeque::new();
    let mut events = 0usize;
    loop {
        let raw = log.read_rows_from(after, 4096).await?;
        let (count, last) = (raw.len(), raw.last());
        if count > 0 {
            decoding.push_back(tokio::spawn(async move { raw.decode() }));
        }
        while decoding.len() > DECODING {
            if let Some(task) = decoding.pop_front() {
                events += task.await??.len();
            }
        }
        match last {
            Some(last) if count == 4096 => after = last,
            _ => break,
        }
    }
    for task in decoding {
        events += task.await??.len();
    }
    Ok(events as f64 / started.elapsed().as_secs_f64().max(1e-9))
}

/// Rows per second of one binary `COPY` of `rows` order rows (the shape
/// and document size of `order_view`'s) into a copy of the live
/// `order_view` table with its indexes.
async fn raw_copy(url: &str, rows: usize) -> anyhow::Result<f64> {
    let mut conn = sqlx::PgConnection::connect(url).await?;
    let g: i64 =
        sqlx::query_scalar("SELECT generation FROM projection_live WHERE name = 'order_view'")
            .fetch_one(&mut conn)
            .await?;
    sqlx::query(&format!(
        "CREATE TABLE bench_copy_order_view (LIKE order_view_g{g} INCLUDING ALL)"
    ))
    .execute(&mut conn)
    .await?;
    let doc = json!({"items": [{"sku": "TEE-1", "name": "Tee", "quantity": 2, "unit_price_minor": 1999, "line_total_minor": 3998}],
                     "history": [{"status": "placed", "at": "2026-03-14T09:26:53Z"}], "payment": null})
    .to_string();
    let at = "2026-03-14T09:26:53.000000Z";
    let started = Instant::now();
    let mut copy = conn
        .copy_in_raw(
            "COPY bench_copy_order_view (order_id, customer_id, status, currency, total_minor, \
             item_count, created_at, updated_at, doc) FROM STDIN (FORMAT binary)",
        )
        .await?;
    let mut buf = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0".to_vec();
    let text = |buf: &mut Vec<u8>, s: &str| {
        buf.extend_from_slice(&(s.len() as i32).to_be_bytes());
        buf.extend_from_slice(s.as_bytes());
    };
    let int4 = |buf: &mut Vec<u8>, i: i32| {
        buf.extend_from_slice(&4i32.to_be_bytes());
        buf.extend_from_slice(&i.to_be_bytes());
    };
    for _ in 0..rows {
        buf.extend_from_slice(&9i16.to_be_bytes());
        text(&mut buf, &uuid::Uuid::new_v4().to_string());
        text(&mut buf, &uuid::Uuid::new_v4().to_string());
        text(&mut buf, "placed");
        text(&mut buf, "EUR");
        int4(&mut buf, 3998);
        int4(&mut buf, 2);
        text(&mut buf, at);
        text(&mut buf, at);
        text(&mut buf, &doc);
        if buf.len() >= 1 << 20 {
            copy.send(std::mem::take(&mut buf)).await?;
        }
    }
    buf.extend_from_slice(&(-1i16).to_be_bytes());
    copy.send(buf).await?;
    copy.finish().await?;
    let rate = rows as f64 / started.elapsed().as_secs_f64().max(1e-9);
    sqlx::query("DROP TABLE bench_copy_order_view")
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    Ok(rate)
}
