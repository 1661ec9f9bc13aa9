//! A small Prometheus registry shared by every shopstream service: counters,
//! gauges and latency histograms with labels, rendered in the Prometheus
//! text format at `/metrics`. Every name is exported with the `shopstream_`
//! prefix (code records `http_requests_total`, Prometheus sees
//! `shopstream_http_requests_total`), beside the standard `process_*`
//! metrics and `shopstream_build_info`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Mutex, OnceLock};

/// Latency buckets, seconds.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Size buckets (events per batch).
const SIZE_BUCKETS: &[f64] = &[1.0, 5.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0];

type Key = (String, Vec<(String, String)>);

#[derive(Default)]
struct Histogram {
    buckets: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

#[derive(Default)]
struct Registry {
    help: BTreeMap<String, (&'static str, &'static str)>,
    counters: BTreeMap<Key, f64>,
    gauges: BTreeMap<Key, f64>,
    histograms: BTreeMap<Key, Histogram>,
}

fn registry() -> &'static Mutex<Registry> {
    static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();
    REGISTRY.get_or_init(Mutex::default)
}

fn key(name: &str, labels: &[(&str, &str)]) -> Key {
    let mut l: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect();
    l.sort();
    (name.to_string(), l)
}

fn with<R>(f: impl FnOnce(&mut Registry) -> R) -> R {
    let mut guard = registry()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    f(&mut guard)
}

/// Adds `by` to a counter.
pub fn count(name: &'static str, help: &'static str, labels: &[(&str, &str)], by: f64) {
    with(|r| {
        r.help.entry(name.to_string()).or_insert(("counter", help));
        *r.counters.entry(key(name, labels)).or_default() += by;
    });
}

/// Sets a gauge.
pub fn gauge(name: &'static str, help: &'static str, labels: &[(&str, &str)], value: f64) {
    with(|r| {
        r.help.entry(name.to_string()).or_insert(("gauge", help));
        r.gauges.insert(key(name, labels), value);
    });
}

fn observe_in(
    name: &'static str,
    help: &'static str,
    labels: &[(&str, &str)],
    value: f64,
    buckets: &'static [f64],
) {
    with(|r| {
        r.help
            .entry(name.to_string())
            .or_insert(("histogram", help));
        let h = r
            .histograms
            .entry(key(name, labels))
            .or_insert_with(|| Histogram {
                buckets,
                counts: vec![0; buckets.len()],
                ..Histogram::default()
            });
        for (i, b) in h.buckets.iter().enumerate() {
            if value <= *b {
                h.counts[i] += 1;
            }
        }
        h.sum += value;
        h.count += 1;
    });
}

/// Records a duration in seconds.
pub fn observe_seconds(
    name: &'static str,
    help: &'static str,
    labels: &[(&str, &str)],
    seconds: f64,
) {
    observe_in(name, help, labels, seconds, BUCKETS);
}

/// Records the time since `at` in seconds (an event's age at some stage of
/// the pipeline); a moment in the future (clocks apart) counts as zero.
pub fn observe_since(
    name: &'static str,
    help: &'static str,
    labels: &[(&str, &str)],
    at: std::time::SystemTime,
) {
    let age = at.elapsed().map_or(0.0, |d| d.as_secs_f64());
    observe_in(name, help, labels, age, BUCKETS);
}

/// Records a size (e.g. events per batch).
pub fn observe_size(name: &'static str, help: &'static str, labels: &[(&str, &str)], size: f64) {
    observe_in(name, help, labels, size, SIZE_BUCKETS);
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn labels(l: &[(String, String)], extra: Option<(&str, String)>) -> String {
    let mut parts: Vec<String> = l
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    if let Some((k, v)) = extra {
        parts.push(format!("{k}=\"{v}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

/// The prefix of every exported shopstream metric.
pub const PREFIX: &str = "shopstream_";

/// Everything recorded, in the Prometheus text exposition format.
pub fn render() -> String {
    let mut out = with(|r| {
        let mut out = String::new();
        for (name, (kind, help)) in &r.help {
            let name = &format!("{PREFIX}{name}");
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for ((n, l), v) in r
                .counters
                .iter()
                .chain(r.gauges.iter())
                .filter(|((n, _), _)| name.strip_prefix(PREFIX) == Some(n.as_str()))
            {
                let _ = writeln!(out, "{PREFIX}{n}{} {v}", labels(l, None));
            }
            for ((n, l), h) in r
                .histograms
                .iter()
                .filter(|((n, _), _)| name.strip_prefix(PREFIX) == Some(n.as_str()))
            {
                let n = &format!("{PREFIX}{n}");
                for (b, c) in h.buckets.iter().zip(&h.counts) {
                    let _ = writeln!(
                        out,
                        "{n}_bucket{} {c}",
                        labels(l, Some(("le", b.to_string())))
                    );
                }
                let _ = writeln!(
                    out,
                    "{n}_bucket{} {}",
                    labels(l, Some(("le", "+Inf".into()))),
                    h.count
                );
                let _ = writeln!(out, "{n}_sum{} {}", labels(l, None), h.sum);
                let _ = writeln!(out, "{n}_count{} {}", labels(l, None), h.count);
            }
        }
        out
    });
    let _ = writeln!(
        out,
        "# HELP {PREFIX}build_info The running build.\n# TYPE {PREFIX}build_info gauge\n{PREFIX}build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    process_metrics(&mut out);
    out
}

/// The standard `process_*` metrics, from `/proc/self` (Linux).
fn process_metrics(out: &mut String) {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return;
    };
    // Fields after the command name, which is in parentheses and may hold spaces.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // /proc counts times in USER_HZ, which the kernel ABI fixes at 100, and
    // resident memory in pages (4 KiB on the platforms shopstream ships for).
    let ticks = 100.0;
    let page = 4096.0;
    let num = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
    // After the name: state is field 0; utime 11, stime 12, starttime 19, rss 21.
    if let (Some(utime), Some(stime)) = (num(11), num(12)) {
        let _ = writeln!(out, "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total {}", (utime + stime) / ticks);
    }
    if let Some(rss) = num(21) {
        let _ = writeln!(out, "# HELP process_resident_memory_bytes Resident memory size in bytes.\n# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes {}", rss * page);
    }
    if let Some(vsize) = num(20) {
        let _ = writeln!(out, "# HELP process_virtual_memory_bytes Virtual memory size in bytes.\n# TYPE process_virtual_memory_bytes gauge\nprocess_virtual_memory_bytes {vsize}");
    }
    if let (Some(start), Some(boot)) = (num(19), boot_time()) {
        let _ = writeln!(out, "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds {}", boot + start / ticks);
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        let _ = writeln!(out, "# HELP process_open_fds Number of open file descriptors.\n# TYPE process_open_fds gauge\nprocess_open_fds {}", fds.count());
    }
}

/// The system's boot time, seconds since the epoch (`btime` in /proc/stat).
fn boot_time() -> Option<f64> {
    std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        count("test_things_total", "Things.", &[("kind", "a\"b")], 2.0);
        observe_seconds(
            "test_latency_seconds",
            "Latency.",
            &[("route", "/x")],
            0.003,
        );
        gauge("test_lag", "Lag.", &[], 7.0);
        let second_ago = std::time::SystemTime::now() - std::time::Duration::from_millis(1500);
        observe_since("test_age_seconds", "Age.", &[], second_ago);
        let ahead = std::time::SystemTime::now() + std::time::Duration::from_secs(60);
        observe_since("test_age_seconds", "Age.", &[], ahead);
        let text = render();
        assert!(text.contains("shopstream_test_age_seconds_bucket{le=\"1\"} 1"));
        assert!(text.contains("shopstream_test_age_seconds_bucket{le=\"2.5\"} 2"));
        assert!(text.contains("shopstream_test_age_seconds_count 2"));
        assert!(text.contains("# TYPE shopstream_test_things_total counter"));
        assert!(text.contains("shopstream_test_things_total{kind=\"a\\\"b\"} 2"));
        assert!(
            text.contains("shopstream_test_latency_seconds_bucket{route=\"/x\",le=\"0.005\"} 1")
        );
        assert!(
            text.contains("shopstream_test_latency_seconds_bucket{route=\"/x\",le=\"0.0025\"} 0")
        );
        assert!(text.contains("shopstream_test_latency_seconds_count{route=\"/x\"} 1"));
        assert!(text.contains("shopstream_test_lag 7"));
        assert!(text.contains("shopstream_build_info{version=\""));
        for standard in [
            "process_cpu_seconds_total ",
            "process_resident_memory_bytes ",
            "process_open_fds ",
            "process_start_time_seconds ",
        ] {
            assert!(text.contains(standard), "{standard} missing");
        }
        // Every sample line is `name{labels} value` or `name value`.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap_or_default();
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
}
