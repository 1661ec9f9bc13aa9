//! A small Prometheus registry shared by every shopstream service: counters,
//! gauges and latency histograms with labels, rendered in the Prometheus
//! text format at `/metrics`.

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

/// Everything recorded, in the Prometheus text exposition format.
pub fn render() -> String {
    with(|r| {
        let mut out = String::new();
        for (name, (kind, help)) in &r.help {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for ((n, l), v) in r
                .counters
                .iter()
                .chain(r.gauges.iter())
                .filter(|((n, _), _)| n == name)
            {
                let _ = writeln!(out, "{n}{} {v}", labels(l, None));
            }
            for ((n, l), h) in r.histograms.iter().filter(|((n, _), _)| n == name) {
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
    })
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
        let text = render();
        assert!(text.contains("# TYPE test_things_total counter"));
        assert!(text.contains("test_things_total{kind=\"a\\\"b\"} 2"));
        assert!(text.contains("test_latency_seconds_bucket{route=\"/x\",le=\"0.005\"} 1"));
        assert!(text.contains("test_latency_seconds_bucket{route=\"/x\",le=\"0.0025\"} 0"));
        assert!(text.contains("test_latency_seconds_count{route=\"/x\"} 1"));
        assert!(text.contains("test_lag 7"));
    }
}
