//! The command side's aggregate cache: the last state this process saw of
//! recently used aggregates, so that a command can skip loading its stream.
//!
//! A cached state is never trusted on its own. It is the fold of the
//! stream's first `version` events, which never change; a command decided
//! on it appends at `version + 1`, and the store's primary key rejects that
//! append when anyone appended in between. Whatever the cache cannot prove
//! that way (a rejection, a no-op, a fact read from another aggregate) is
//! checked against the store: see [`crate::Repository::read`].

use std::collections::HashMap;
use std::sync::Mutex;

/// A state and the number of events it folds.
#[derive(Clone)]
pub(crate) struct Entry<A> {
    pub aggregate: A,
    pub version: usize,
    pub snapshot: Option<usize>,
}

/// Bounded by `capacity` entries: new and used entries go to the young
/// generation; when it is full the old one is dropped and the young one
/// becomes old. An entry used again while old moves back to the young one,
/// so what stays is roughly the most recently used.
pub(crate) struct Cache<A> {
    half: usize,
    inner: Mutex<Generations<A>>,
}

struct Generations<A> {
    young: HashMap<String, Entry<A>>,
    old: HashMap<String, Entry<A>>,
}

impl<A: Clone> Cache<A> {
    /// A cache of at most `capacity` entries (at least 2).
    pub fn new(capacity: usize) -> Self {
        Self {
            half: (capacity / 2).max(1),
            inner: Mutex::new(Generations {
                young: HashMap::new(),
                old: HashMap::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Generations<A>> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The cached state of `id`, if any.
    pub fn get(&self, id: &str) -> Option<Entry<A>> {
        let mut g = self.lock();
        if let Some(e) = g.young.get(id) {
            return Some(e.clone());
        }
        let e = g.old.remove(id)?;
        let copy = e.clone();
        self.insert(&mut g, id.to_string(), e);
        Some(copy)
    }

    /// Remembers `entry` for `id`, unless a newer state is already cached
    /// (a slow reader must not replace what a later append stored).
    pub fn put(&self, id: &str, entry: Entry<A>) {
        let mut g = self.lock();
        let newer =
            |m: &HashMap<String, Entry<A>>| m.get(id).is_some_and(|e| e.version > entry.version);
        if newer(&g.young) || newer(&g.old) {
            return;
        }
        g.old.remove(id);
        self.insert(&mut g, id.to_string(), entry);
    }

    /// Forgets `id` (its cached state proved stale).
    pub fn forget(&self, id: &str) {
        let mut g = self.lock();
        g.young.remove(id);
        g.old.remove(id);
    }

    fn insert(&self, g: &mut Generations<A>, id: String, entry: Entry<A>) {
        if g.young.len() >= self.half && !g.young.contains_key(&id) {
            g.old = std::mem::take(&mut g.young);
        }
        g.young.insert(id, entry);
    }

    /// Entries held (both generations).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        let g = self.lock();
        g.young.len() + g.old.len()
    }
}

#[cfg(test)]
mod tests {
    use super::{Cache, Entry};

    fn entry(version: usize) -> Entry<u32> {
        Entry {
            aggregate: u32::try_from(version).unwrap_or(0),
            version,
            snapshot: None,
        }
    }

    #[test]
    fn keeps_at_most_its_capacity_and_the_recently_used() {
        let c = Cache::new(4);
        for i in 0..10 {
            c.put(&i.to_string(), entry(1));
            // "0" is used all the time: it must survive.
            assert!(c.get("0").is_some(), "lost the hot entry at {i}");
            assert!(c.len() <= 4, "{} entries", c.len());
        }
        assert!(c.get("1").is_none());
        assert!(c.get("9").is_some());
    }

    #[test]
    fn an_older_state_does_not_replace_a_newer_one() {
        let c = Cache::new(8);
        c.put("a", entry(5));
        c.put("a", entry(3));
        assert_eq!(c.get("a").map(|e| e.version), Some(5));
        c.put("a", entry(6));
        assert_eq!(c.get("a").map(|e| e.version), Some(6));
        c.forget("a");
        assert!(c.get("a").is_none());
    }
}
