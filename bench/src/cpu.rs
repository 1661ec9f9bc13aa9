//! CPU accounting from `/proc`: the machine's busy share, and each role's
//! share of a phase (which process the machine's time went to).

use std::collections::BTreeMap;
use std::time::Instant;

/// The machine's busy and total CPU time so far (`/proc/stat`, in ticks).
pub fn cpu_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: u64 = fields.iter().sum();
    // idle and iowait are the 4th and 5th fields.
    let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// The share of the machine's CPU time that was busy between two
/// [`cpu_ticks`] readings.
pub fn busy_between(before: Option<(u64, u64)>, after: Option<(u64, u64)>) -> Option<f64> {
    match (before, after) {
        (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => Some((b1 - b0) as f64 / (t1 - t0) as f64),
        _ => None,
    }
}

/// A process's CPU seconds so far (user + system, `/proc/<pid>/stat`).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// The CPU seconds of every process whose command name is `comm` (all of
/// PostgreSQL's backends, say).
fn cpu_seconds_of(comm: &str) -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == comm)
        })
        .filter_map(cpu_seconds)
        .sum()
}

/// Who takes part in a phase: a label and its process ids, or a command
/// name whose processes all count (they come and go: connection backends).
pub enum Role {
    Pids(&'static str, Vec<u32>),
    Comm(&'static str, &'static str),
}

impl Role {
    fn label(&self) -> &'static str {
        match self {
            Role::Pids(l, _) | Role::Comm(l, _) => l,
        }
    }

    fn seconds(&self) -> f64 {
        match self {
            Role::Pids(_, pids) => pids.iter().filter_map(|p| cpu_seconds(*p)).sum(),
            Role::Comm(_, comm) => cpu_seconds_of(comm),
        }
    }
}

/// A reading of every role's CPU seconds.
pub struct Shares<'a> {
    roles: &'a [Role],
    at: Instant,
    before: Vec<f64>,
}

impl<'a> Shares<'a> {
    pub fn start(roles: &'a [Role]) -> Self {
        Self {
            roles,
            at: Instant::now(),
            before: roles.iter().map(Role::seconds).collect(),
        }
    }

    /// Each role's CPU since [`Shares::start`], in cores (1.0: one core
    /// busy throughout). A backend that ended meanwhile is not counted.
    pub fn cores(&self) -> BTreeMap<&'static str, f64> {
        let wall = self.at.elapsed().as_secs_f64().max(1e-9);
        self.roles
            .iter()
            .zip(&self.before)
            .map(|(r, b)| (r.label(), ((r.seconds() - b) / wall).max(0.0)))
            .collect()
    }
}
