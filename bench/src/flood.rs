//! A connection flood against `serve`: thousands of sockets that send
//! nothing, held, then closed. Reports the server's resident memory before
//! (the baseline, same run), at the height of the flood and after it, how
//! many connections were taken and refused (the connection cap), and how
//! soon the server cut the silent ones (the header timeout).

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::procs::{rss_mib, Shopstream};
use crate::report::Report;

/// Opens `n` silent connections to `serve` (embedded store, default limits
/// except a 5 s header timeout), holds them until the server has dealt with
/// every one, and measures memory around it.
pub async fn connection_flood(report: &mut Report, n: usize) -> anyhow::Result<()> {
    let serve = Shopstream::start(&["serve"], None, &["--http-header-timeout", "5s"]).await?;
    let pid = serve.pid();
    let addr = serve.base().trim_start_matches("http://").to_string();
    // Warm up: the allocator and the runtime reach their working size.
    let client = reqwest::Client::new();
    for _ in 0..200 {
        let _ = client.get(format!("{}/livez", serve.base())).send().await;
    }
    drop(client);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = rss_mib(pid).unwrap_or(0.0);

    let started = Instant::now();
    let mut sockets = Vec::with_capacity(n);
    for _ in 0..n {
        match TcpStream::connect(&addr).await {
            Ok(s) => sockets.push(s),
            Err(_) => break,
        }
    }
    let opened = sockets.len();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let during = rss_mib(pid).unwrap_or(0.0);

    // Each socket ends with the server's 503 (over the cap) or with the
    // server closing it at the header timeout.
    let mut waits = tokio::task::JoinSet::new();
    for mut s in sockets {
        waits.spawn(async move {
            let mut buf = Vec::new();
            let read = tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut buf)).await;
            let refused = String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 503");
            (read.is_ok(), refused, Instant::now())
        });
    }
    let ends: Vec<(bool, bool, Instant)> = waits.join_all().await;
    let closed = ends.iter().filter(|(c, _, _)| *c).count();
    let refused = ends.iter().filter(|(_, r, _)| *r).count();
    let last_close = ends
        .iter()
        .filter(|(c, r, _)| *c && !*r)
        .map(|(_, _, at)| at.duration_since(started).as_secs_f64())
        .fold(0.0, f64::max);
    // Idle afterwards: nothing else makes the workers allocate again, so
    // this shows whether the server hands freed memory back on its own.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = rss_mib(pid).unwrap_or(0.0);
    report.row(
        "flood",
        &format!("{opened} silent connections to serve (cap 1024, header timeout 5 s)"),
        json!({
            "rss_before_mib": before, "rss_during_mib": during, "rss_after_mib": after,
            "after_over_before": after / before.max(1e-9),
            "refused_503": refused, "closed_by_server": closed - refused,
            "still_open_after_30s": opened - closed,
            "last_silent_closed_after_s": last_close,
        }),
    );
    serve.stop();
    Ok(())
}
