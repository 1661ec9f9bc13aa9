//! The bulk fill's memory bound, shared by its fold tasks.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::bulk::reserve;

/// The memory bound, shared by the fold tasks: what the process's
/// resident memory grew by since the fill began (Linux; elsewhere the
/// working sets' estimates, scaled) against `limit`. From ¾ of the bound
/// on, the largest working set not being written out already is written
/// out (each task's in turn, as many at once as it takes); over the bound
/// itself, the other tasks wait for those write-outs instead of growing.
#[derive(Debug)]
pub(super) struct Budget {
    limit: usize,
    /// Resident memory when the fill began.
    base: usize,
    /// Events per read of the log (the batches in flight).
    read_batch: u32,
    /// Each task's working set, estimated.
    used: Vec<AtomicUsize>,
    /// Which tasks are writing theirs out.
    spilling: Vec<AtomicBool>,
    /// What the fill held at the last update.
    last_held: AtomicUsize,
    /// Whether memory counts as short whatever it holds (tests).
    short_always: bool,
}

/// What a fold task does after a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// Fold the next batch.
    Fold,
    /// Write the working set out now.
    Spill,
    /// Over the bound while others write theirs out: ask again shortly.
    Wait,
}

/// Resident memory per estimated byte where the process's is unknown
/// (measured on the seeded benchmark store), plus the batches in flight.
const SCALE: usize = 3;

impl Budget {
    /// A bound of `limit` bytes of growth for `tasks` fold tasks reading
    /// `read_batch` events at a time, from now.
    pub fn new(limit: usize, tasks: usize, read_batch: u32) -> Self {
        Self {
            limit,
            base: resident_bytes().unwrap_or(0),
            read_batch,
            used: (0..tasks).map(|_| AtomicUsize::new(0)).collect(),
            spilling: (0..tasks).map(|_| AtomicBool::new(false)).collect(),
            last_held: AtomicUsize::new(0),
            short_always: false,
        }
    }

    /// Memory counts as short whatever it holds, when `always` (tests).
    #[must_use]
    pub fn short_always(mut self, always: bool) -> Self {
        self.short_always = always;
        self
    }

    /// What the fill holds now: the growth of resident memory, or the
    /// estimates where the system does not say.
    fn held(&self) -> usize {
        resident_bytes().map_or_else(
            || {
                let estimated: usize = self.used.iter().map(|u| u.load(Ordering::Relaxed)).sum();
                estimated * SCALE + reserve(self.read_batch)
            },
            |now| now.saturating_sub(self.base),
        )
    }

    /// Records `slot`'s estimated bytes after a batch; what it does next.
    pub fn update(&self, slot: usize, bytes: usize) -> Step {
        self.used[slot].store(bytes, Ordering::Relaxed);
        if self.limit < super::MIN_MEMORY {
            // Below the least a rebuild takes: every batch is written out.
            return if bytes > 0 { Step::Spill } else { Step::Fold };
        }
        let held = self.held();
        self.last_held.store(held, Ordering::Relaxed);
        self.decide(slot, bytes, held)
    }

    /// Whether memory is short (over half the bound at the last update):
    /// the working sets then keep their untouched changed rows compressed.
    pub fn short(&self) -> bool {
        self.short_always || self.last_held.load(Ordering::Relaxed) > self.limit / 2
    }

    /// [`Self::update`]'s choice with `held` bytes of growth.
    fn decide(&self, slot: usize, bytes: usize, held: usize) -> Step {
        // Spilling starts at ¾ of the bound: memory keeps growing while a
        // spill runs (the batches in flight, the other tasks' folds).
        if held <= self.limit / 4 * 3 || bytes == 0 {
            return Step::Fold;
        }
        let largest = (0..self.used.len())
            .filter(|i| !self.spilling[*i].load(Ordering::Relaxed))
            .max_by_key(|i| (self.used[*i].load(Ordering::Relaxed), usize::MAX - i));
        let anyone_spilling = self.spilling.iter().any(|s| s.load(Ordering::Relaxed));
        let step = if held > self.limit {
            // Over the bound: the largest not writing out yet does, and
            // the others wait for those write-outs rather than grow (with
            // none under way, a task does not wait: it writes its own out).
            if largest == Some(slot) || !anyone_spilling {
                Step::Spill
            } else {
                Step::Wait
            }
        } else if largest == Some(slot) && !anyone_spilling {
            // Near the bound: one write-out at a time, the largest.
            Step::Spill
        } else {
            Step::Fold
        };
        if step == Step::Spill {
            self.spilling[slot].store(true, Ordering::Relaxed);
        }
        step
    }

    /// `slot` wrote its working set out, or stopped, or is done.
    pub fn spilled(&self, slot: usize) {
        self.used[slot].store(0, Ordering::Relaxed);
        self.spilling[slot].store(false, Ordering::Relaxed);
    }

    /// The bytes of recently changed rows a spill keeps in memory, per
    /// task: a sixteenth of the bound shared by the tasks (at least 64 KiB,
    /// which a bound too small for any working set spends on them too).
    pub fn retained(&self) -> usize {
        (self.limit / 16 / self.used.len().max(1)).max(64 << 10)
    }
}

/// This process's resident memory, where the system says (Linux).
pub(super) fn resident_bytes() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    fn budget(tasks: usize) -> Budget {
        Budget::new(256 * MIB, tasks, 4096)
    }

    fn set(b: &Budget, sizes: &[usize]) {
        for (i, s) in sizes.iter().enumerate() {
            b.used[i].store(*s, Ordering::Relaxed);
        }
    }

    #[test]
    fn below_three_quarters_every_task_folds() {
        let b = budget(3);
        set(&b, &[10 * MIB, 50 * MIB, 5 * MIB]);
        for slot in 0..3 {
            assert_eq!(
                b.decide(slot, b.used[slot].load(Ordering::Relaxed), 150 * MIB),
                Step::Fold
            );
        }
    }

    #[test]
    fn near_the_bound_the_largest_spills_one_at_a_time() {
        let b = budget(3);
        set(&b, &[10 * MIB, 50 * MIB, 20 * MIB]);
        let near = 200 * MIB;
        assert_eq!(b.decide(0, 10 * MIB, near), Step::Fold);
        assert_eq!(b.decide(1, 50 * MIB, near), Step::Spill);
        // While the largest writes out, the others fold on.
        assert_eq!(b.decide(2, 20 * MIB, near), Step::Fold);
        b.spilled(1);
        assert_eq!(b.used[1].load(Ordering::Relaxed), 0);
        // Then the next largest.
        assert_eq!(b.decide(2, 20 * MIB, near), Step::Spill);
    }

    #[test]
    fn over_the_bound_each_spills_in_turn_and_the_others_wait() {
        let b = budget(3);
        set(&b, &[10 * MIB, 50 * MIB, 20 * MIB]);
        let over = 300 * MIB;
        assert_eq!(b.decide(1, 50 * MIB, over), Step::Spill);
        // Not the largest of the rest: it waits for the write-out.
        assert_eq!(b.decide(0, 10 * MIB, over), Step::Wait);
        // The largest not writing out yet does, beside the first.
        assert_eq!(b.decide(2, 20 * MIB, over), Step::Spill);
        assert_eq!(b.decide(0, 10 * MIB, over), Step::Spill);
        b.spilled(0);
        assert!(!b.spilling[0].load(Ordering::Relaxed));
    }

    #[test]
    fn over_the_bound_with_nobody_spilling_a_task_spills_itself() {
        let b = budget(2);
        set(&b, &[MIB, 40 * MIB]);
        // Task 1 is larger but has not asked yet; task 0 does not wait on
        // a write-out that is not happening.
        assert_eq!(b.decide(0, MIB, 300 * MIB), Step::Spill);
    }

    #[test]
    fn memory_is_short_past_half_the_bound() {
        let b = budget(1);
        assert!(!b.short());
        b.last_held.store(128 * MIB + 1, Ordering::Relaxed);
        assert!(b.short());
        b.last_held.store(100 * MIB, Ordering::Relaxed);
        assert!(!b.short());
    }

    #[test]
    fn an_empty_working_set_never_spills() {
        let b = budget(2);
        assert_eq!(b.decide(0, 0, 300 * MIB), Step::Fold);
    }
}
