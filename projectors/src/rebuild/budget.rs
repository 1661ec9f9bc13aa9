//! The bulk fill's memory bound, shared by its fold tasks.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use super::bulk::{reserve, READ_BATCH};

/// The memory bound, shared by the fold tasks: what the process's
/// resident memory grew by since the fill began (Linux; elsewhere the
/// working sets' estimates, scaled) against `limit`. At the bound the task with the largest working set writes it
/// out; then nobody does for a moment, while the allocator hands the freed
/// pages back.
#[derive(Debug)]
pub(super) struct Budget {
    limit: usize,
    /// Resident memory when the fill began.
    base: usize,
    /// Each task's working set, estimated.
    pub used: Vec<AtomicUsize>,
    /// No spill starts before this (set by the last large spill).
    settle_until: std::sync::Mutex<Option<Instant>>,
}

/// Resident memory per estimated byte where the process's is unknown
/// (measured on the seeded benchmark store), plus the batches in flight.
const SCALE: usize = 3;
/// After a spill of [`LARGE`] bytes or more, how long before the next.
const SETTLE: std::time::Duration = std::time::Duration::from_millis(250);
const LARGE: usize = 4 << 20;

impl Budget {
    /// Records `slot`'s estimated bytes; whether `slot` should spill now.
    pub fn update(&self, slot: usize, bytes: usize) -> bool {
        self.used[slot].store(bytes, Ordering::Relaxed);
        if self.limit < super::MIN_MEMORY {
            // Below the least a rebuild takes: every batch is written out.
            return bytes > 0;
        }
        let all: Vec<usize> = self
            .used
            .iter()
            .map(|u| u.load(Ordering::Relaxed))
            .collect();
        let held = resident_bytes().map_or_else(
            || all.iter().sum::<usize>() * SCALE + reserve(READ_BATCH),
            |now| now.saturating_sub(self.base),
        );
        // Spilling starts at ¾ of the bound: memory keeps growing while a
        // spill runs, and freed pages reach the system a moment later.
        if held <= self.limit / 4 * 3 || bytes == 0 || all.iter().any(|b| *b > bytes) {
            return false;
        }
        let mut settle = self
            .settle_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if settle.is_some_and(|until| Instant::now() < until) {
            return false;
        }
        // Nobody else starts one while this one runs.
        *settle = Some(Instant::now() + SETTLE * 40);
        true
    }

    /// `slot` wrote out `bytes` (estimated), or stopped.
    pub fn spilled(&self, slot: usize, bytes: usize) {
        self.used[slot].store(0, Ordering::Relaxed);
        let pause = if bytes >= LARGE {
            SETTLE
        } else {
            std::time::Duration::ZERO
        };
        *self
            .settle_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Instant::now() + pause);
    }
}

/// This process's resident memory, where the system says (Linux).
pub(super) fn resident_bytes() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

impl Budget {
    /// A bound of `limit` bytes of growth for `tasks` fold tasks, from now.
    pub fn new(limit: usize, tasks: usize) -> Self {
        Self {
            limit,
            base: resident_bytes().unwrap_or(0),
            used: (0..tasks).map(|_| AtomicUsize::new(0)).collect(),
            settle_until: std::sync::Mutex::new(None),
        }
    }

    /// The bytes of recently changed rows a spill keeps in memory: a
    /// sixteenth of the bound (at least 64 KiB, which a bound too small
    /// for any working set spends on them too).
    pub fn retained(&self) -> usize {
        (self.limit / 16).max(64 << 10)
    }

    /// `slot` is done.
    pub fn done(&self, slot: usize) {
        self.used[slot].store(0, Ordering::Relaxed);
    }
}
