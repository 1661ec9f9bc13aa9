//! Hot read-model rows kept in memory between projection commits.
//!
//! A row read for a request is kept with the commit signal's count at the
//! moment before it was read and the position the request reflected (a
//! lower bound of what the row shows). It serves later requests only while
//! no projection has committed since (the signal, in process or through
//! `LISTEN` across processes, has not moved), for at most [`MAX_AGE`] (the
//! backstop should a signal be lost), and only to a request whose
//! consistency token it reflects. The answer then names the kept row's
//! position when it is lower than the request's. So a hit is what the
//! database would answer, never older than a token, never claiming a
//! position it does not reflect. Any commit empties it; it holds at most
//! [`ENTRIES`] rows.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_graphql::Context;
use readmodel::Wake;

use crate::cache::Promised;

/// The longest a row is kept, whatever the commit signal says.
pub const MAX_AGE: Duration = Duration::from_secs(2);

/// Most rows (and pages of rows) kept.
pub const ENTRIES: usize = 10_000;

struct Kept {
    position: i64,
    at: Instant,
    value: Arc<dyn Any + Send + Sync>,
}

#[derive(Default)]
struct Inner {
    /// The commit count every kept row was read under.
    version: u64,
    rows: HashMap<String, Kept>,
}

/// The kept rows of one query service.
#[derive(Clone)]
pub struct Rows {
    commits: Wake,
    inner: Arc<Mutex<Inner>>,
}

impl Rows {
    /// Rows kept until the next signal of `commits`.
    pub fn new(commits: Wake) -> Self {
        Self {
            commits,
            inner: Arc::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The row kept for `key` if it still holds at commit count `version`
    /// and reflects `token`, with its position.
    fn get<V: Clone + Send + Sync + 'static>(
        &self,
        key: &str,
        version: u64,
        token: i64,
    ) -> Option<(i64, V)> {
        let inner = self.lock();
        if inner.version != version {
            return None;
        }
        let kept = inner.rows.get(key)?;
        if kept.position < token || kept.at.elapsed() >= MAX_AGE {
            return None;
        }
        let value = kept.value.downcast_ref::<V>()?.clone();
        Some((kept.position, value))
    }

    /// Keeps `value`, read under commit count `version` by a request that
    /// reflected `position`.
    fn put<V: Send + Sync + 'static>(&self, key: String, version: u64, position: i64, value: V) {
        let mut inner = self.lock();
        if version < inner.version {
            // Read before a commit another request already saw: outdated.
            return;
        }
        if version > inner.version || inner.rows.len() >= ENTRIES {
            inner.rows.clear();
            inner.version = version;
        }
        let kept = Kept {
            position,
            at: Instant::now(),
            value: Arc::new(value),
        };
        inner.rows.insert(key, kept);
    }

    /// Rows held (for tests).
    pub fn len(&self) -> usize {
        self.lock().rows.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `read`'s rows for `key`: kept ones when they still hold (see the
/// module), else read and kept.
///
/// # Errors
/// As `read`.
pub async fn kept<V, E, F>(ctx: &Context<'_>, key: String, read: F) -> Result<V, E>
where
    V: Clone + Send + Sync + 'static,
    F: Future<Output = Result<V, E>>,
{
    let (Ok(rows), Ok(promised)) = (ctx.data::<Rows>(), ctx.data::<Promised>()) else {
        return read.await;
    };
    // Counted before reading: a commit during the read makes it outdated.
    let version = rows.commits.version();
    if let Some((position, value)) = rows.get::<V>(&key, version, promised.token) {
        promised.used(position);
        return Ok(value);
    }
    let value = read.await?;
    rows.put(key, version, promised.reflected, value.clone());
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commit_empties_it() {
        let commits = Wake::default();
        let rows = Rows::new(commits.clone());
        let v = commits.version();
        rows.put("a".into(), v, 10, 1_i32);
        assert_eq!(rows.get::<i32>("a", v, 0), Some((10, 1)));
        commits.notify();
        let now = commits.version();
        assert_eq!(rows.get::<i32>("a", now, 0), None, "a commit since");
        // A read that began before the commit is not kept after it.
        rows.put("b".into(), now, 11, 2_i32);
        rows.put("a".into(), v, 10, 1_i32);
        assert_eq!(rows.get::<i32>("a", now, 0), None);
        assert_eq!(rows.get::<i32>("b", now, 0), Some((11, 2)));
        assert_eq!(rows.len(), 1, "rows of the old count are gone");
    }

    #[test]
    fn never_older_than_the_token() {
        let commits = Wake::default();
        let rows = Rows::new(commits.clone());
        let v = commits.version();
        rows.put("a".into(), v, 10, 1_i32);
        assert_eq!(rows.get::<i32>("a", v, 10), Some((10, 1)));
        assert_eq!(rows.get::<i32>("a", v, 11), None);
        assert_eq!(rows.get::<u8>("a", v, 0), None, "another type");
    }

    #[test]
    fn rows_age_out_and_stay_bounded() {
        let commits = Wake::default();
        let rows = Rows::new(commits.clone());
        let v = commits.version();
        rows.lock().rows.insert(
            "old".into(),
            Kept {
                position: 1,
                at: Instant::now() - MAX_AGE,
                value: Arc::new(1_i32),
            },
        );
        assert_eq!(rows.get::<i32>("old", v, 0), None, "past MAX_AGE");
        for i in 0..(ENTRIES * 2 + 5) {
            rows.put(format!("k{i}"), v, 1, i);
        }
        assert!(rows.len() <= ENTRIES);
        let last = ENTRIES * 2 + 4;
        assert_eq!(
            rows.get::<usize>(&format!("k{last}"), v, 0),
            Some((1, last))
        );
    }
}
