//! The table on stdout and the JSON file.

use std::io::Write;
use std::path::Path;

use serde_json::{json, Value};

#[derive(Default)]
pub struct Report {
    rows: Vec<(String, String, Value)>,
    memory: Vec<(String, Option<f64>)>,
    notes: Vec<String>,
}

fn f(v: &Value, key: &str) -> String {
    match v.get(key).and_then(Value::as_f64) {
        Some(x) if x >= 100.0 => format!("{x:.0}"),
        Some(x) => format!("{x:.2}"),
        None => "-".into(),
    }
}

impl Report {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn row(&mut self, group: &str, name: &str, figures: Value) {
        // Progress on stderr while the run goes on.
        let _ = writeln!(std::io::stderr(), "{group:<10} {name}: {figures}");
        self.rows.push((group.into(), name.into(), figures));
    }

    pub fn memory(&mut self, what: &str, mib: Option<f64>) {
        self.memory.push((what.into(), mib));
    }

    pub fn note(&mut self, note: &str) {
        let _ = writeln!(std::io::stderr(), "note: {note}");
        self.notes.push(note.into());
    }

    pub fn print(&self) {
        let mut out = std::io::stdout().lock();
        let mut lines = Vec::new();
        for (group, name, v) in &self.rows {
            let line = match group.as_str() {
                "commands" => format!(
                    "commands   {name:<44} {:>8} cmd/s  p50 {:>6} ms  p99 {:>6} ms | raw INSERT {:>8}/s p50 {:>6} p99 {:>6} | ratio {}",
                    f(v, "commands_per_s"), f(v, "p50_ms"), f(v, "p99_ms"),
                    f(v, "raw_inserts_per_s"), f(v, "raw_p50_ms"), f(v, "raw_p99_ms"), f(v, "ratio")
                ),
                "graphql" => format!(
                    "graphql    {name:<44} {:>8} req/s  p50 {:>6} ms  p99 {:>6} ms | bare handler {:>8}/s | ratio {}",
                    f(v, "requests_per_s"), f(v, "p50_ms"), f(v, "p99_ms"),
                    f(v, "bare_handler_per_s"), f(v, "ratio")
                ),
                "freshness" => format!(
                    "freshness  {name:<44} with token p50 {:>6} ms p99 {:>6} ms | without p50 {:>6} ms p99 {:>6} ms",
                    f(v, "with_token_p50_ms"), f(v, "with_token_p99_ms"),
                    f(v, "without_token_p50_ms"), f(v, "without_token_p99_ms")
                ),
                "rebuild" => format!(
                    "rebuild    {name:<44} {:>8} events/s {:>8} store events/s | rows/s {:>8} vs raw COPY {:>8} ({}) | read the log {:>8} events/s | spills {} | peak {} MiB",
                    f(v, "events_per_s"), f(v, "store_events_per_s"), f(v, "rows_per_s"),
                    f(v, "raw_copy_rows_per_s"), f(v, "ratio_rows_to_raw_copy"),
                    f(v, "read_log_events_per_s"), f(v, "spills"), f(v, "peak_rss_mib")
                ),
                "flood" => format!(
                    "flood      {name:<44} RSS before {:>6} MiB during {:>6} after {:>6} | after/before {} | refused {} closed by server {} still open {}",
                    f(v, "rss_before_mib"), f(v, "rss_during_mib"), f(v, "rss_after_mib"),
                    f(v, "after_over_before"), f(v, "refused_503"), f(v, "closed_by_server"),
                    f(v, "still_open_after_30s")
                ),
                _ => format!("{group} {name} {v}"),
            };
            lines.push(line);
        }
        for (what, mib) in &self.memory {
            lines.push(format!(
                "memory     {what:<44} peak RSS {} MiB",
                mib.map_or("-".into(), |m| format!("{m:.1}"))
            ));
        }
        for n in &self.notes {
            lines.push(format!("note       {n}"));
        }
        let _ = writeln!(out, "\n{}", lines.join("\n"));
    }

    pub fn write(&self, path: &Path, args: &impl serde::Serialize) -> anyhow::Result<()> {
        let machine = machine();
        let json = json!({
            "machine": machine,
            "args": args,
            "at": chrono::Utc::now().to_rfc3339(),
            "results": self.rows.iter().map(|(g, n, v)| json!({"group": g, "name": n, "figures": v})).collect::<Vec<_>>(),
            "memory_peak_rss_mib": self.memory.iter().map(|(w, m)| json!({"process": w, "mib": m})).collect::<Vec<_>>(),
            "notes": self.notes,
        });
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, serde_json::to_string_pretty(&json)?)?;
        let _ = writeln!(std::io::stderr(), "wrote {}", path.display());
        Ok(())
    }
}

fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().next().map(str::to_string))
        .unwrap_or_default();
    json!({"cpu": cpu, "cores": cores, "memory": mem})
}
