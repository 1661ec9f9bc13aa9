//! Answers of the analytics reads kept in memory, each with the position
//! it reflects (at least): a request may take an answer only when that
//! position is at or past the position the request itself promises
//! (`extensions.consistency.position`, which a consistency token raises),
//! so a cached answer is never older than what the request is owed. When
//! the projections move on, requests promise later positions and the old
//! answers stop matching: the commit signal that moves the promised
//! position is what invalidates, in this process and (through `LISTEN`)
//! across processes. Bounded in entries; requests without a promised
//! position (subscriptions) bypass it.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use async_graphql::Context;

/// The position the current request's answer promises to reflect.
#[derive(Debug, Clone, Copy)]
pub struct Promised(pub i64);

/// Most answers kept.
const ENTRIES: usize = 1024;

type Entry = (i64, Arc<dyn Any + Send + Sync>);

/// The cache (one per schema).
#[derive(Clone, Default)]
pub struct Answers(Arc<Mutex<HashMap<String, Entry>>>);

impl Answers {
    fn get<V: Clone + Send + Sync + 'static>(&self, key: &str, at_least: i64) -> Option<V> {
        let map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (position, value) = map.get(key)?;
        if *position < at_least {
            return None;
        }
        value.downcast_ref::<V>().cloned()
    }

    fn put<V: Send + Sync + 'static>(&self, key: String, position: i64, value: V) {
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= ENTRIES && !map.contains_key(&key) {
            // Drop what older positions computed; if that frees nothing, all.
            let newest = map.values().map(|(p, _)| *p).max().unwrap_or(position);
            map.retain(|_, (p, _)| *p >= newest);
            if map.len() >= ENTRIES {
                map.clear();
            }
        }
        match map.get(&key) {
            Some((p, _)) if *p > position => {}
            _ => {
                map.insert(key, (position, Arc::new(value)));
            }
        }
    }

    /// Entries held (for tests).
    pub fn len(&self) -> usize {
        self.0.lock().map(|m| m.len()).unwrap_or_default()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `compute`'s answer for `key`, from the cache when one reflects at least
/// what this request promises; computed (and kept) otherwise.
///
/// # Errors
/// As `compute`.
pub async fn cached<V, E, F>(ctx: &Context<'_>, key: String, compute: F) -> Result<V, E>
where
    V: Clone + Send + Sync + 'static,
    F: Future<Output = Result<V, E>>,
{
    let (Ok(answers), Ok(promised)) = (ctx.data::<Answers>(), ctx.data::<Promised>()) else {
        return compute.await;
    };
    if let Some(v) = answers.get::<V>(&key, promised.0) {
        return Ok(v);
    }
    let v = compute.await?;
    // What was read reflects at least the promised position.
    answers.put(key, promised.0, v.clone());
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_serves_requests_promising_no_more_than_it_reflects() {
        let a = Answers::default();
        a.put("k".into(), 10, vec![1]);
        assert_eq!(a.get::<Vec<i32>>("k", 10), Some(vec![1]));
        assert_eq!(a.get::<Vec<i32>>("k", 9), Some(vec![1]));
        assert_eq!(a.get::<Vec<i32>>("k", 11), None, "older than promised");
        assert_eq!(a.get::<Vec<u8>>("k", 10), None, "another type");
        a.put("k".into(), 5, vec![0]);
        assert_eq!(
            a.get::<Vec<i32>>("k", 10),
            Some(vec![1]),
            "a later answer stays"
        );
        a.put("k".into(), 12, vec![2]);
        assert_eq!(a.get::<Vec<i32>>("k", 11), Some(vec![2]));
    }

    #[test]
    fn it_stays_bounded() {
        let a = Answers::default();
        for i in 0..(ENTRIES * 3) {
            a.put(format!("k{i}"), i as i64 / 100, i);
        }
        assert!(a.len() <= ENTRIES);
        assert_eq!(
            a.get::<usize>(&format!("k{}", ENTRIES * 3 - 1), 0),
            Some(ENTRIES * 3 - 1)
        );
    }
}
