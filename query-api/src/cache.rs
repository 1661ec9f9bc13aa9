//! Answers of the analytics reads kept in memory, each with the position
//! it reflects (at least) and when it was computed. A request takes a kept
//! answer when it reflects what the request would read anyway (its
//! position is at or past the request's), or — when it is younger than
//! [`MAX_AGE`] and at or past the request's consistency token, if any — an
//! older one; the answer then says so: `extensions.consistency.position`
//! becomes the lowest position of the answers it used. So a token is always
//! honoured, a position is never claimed that the data does not reflect,
//! and under a steady write load each answer is computed at most about
//! once per [`MAX_AGE`] instead of once per request. When the projections
//! move on (the commit signal, in this process and through `LISTEN` across
//! processes), requests reflect later positions and older answers age out.
//! Bounded in entries; requests without a position (subscriptions) bypass it.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_graphql::Context;

/// What the current request reads at (`reflected`), what it is owed (its
/// consistency token, or 0), and the lowest position of the kept answers
/// it used.
#[derive(Debug, Clone)]
pub struct Promised {
    pub reflected: i64,
    pub token: i64,
    used: Arc<AtomicI64>,
}

impl Promised {
    pub fn new(reflected: i64, token: Option<i64>) -> Self {
        Self {
            reflected,
            token: token.unwrap_or(0),
            used: Arc::new(AtomicI64::new(i64::MAX)),
        }
    }

    /// Records that a kept answer of `position` was used.
    pub fn used(&self, position: i64) {
        self.used.fetch_min(position, Ordering::Relaxed);
    }

    /// The position the whole answer reflects: `reflected`, or lower when
    /// an older kept answer was used.
    pub fn position(&self) -> i64 {
        self.reflected.min(self.used.load(Ordering::Relaxed))
    }
}

/// How old a kept answer may be and still serve a request that reflects a
/// later position (the answer then names its own, older position).
pub const MAX_AGE: Duration = Duration::from_secs(1);

/// Most answers kept.
const ENTRIES: usize = 1024;

type Entry = (i64, Instant, Arc<dyn Any + Send + Sync>);

/// The cache (one per schema).
#[derive(Clone, Default)]
pub struct Answers {
    entries: Arc<Mutex<HashMap<String, Entry>>>,
    /// One computation per key at a time: the requests that miss together
    /// wait for the first, then take its answer.
    flights: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

impl Answers {
    /// A kept answer for `key` usable by `p`, and its position.
    fn get<V: Clone + Send + Sync + 'static>(&self, key: &str, p: &Promised) -> Option<(i64, V)> {
        let map = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (position, at, value) = map.get(key)?;
        let current = *position >= p.reflected;
        let recent = *position >= p.token && at.elapsed() < MAX_AGE;
        if !(current || recent) {
            return None;
        }
        value.downcast_ref::<V>().cloned().map(|v| (*position, v))
    }

    fn put<V: Send + Sync + 'static>(&self, key: String, position: i64, value: V) {
        let mut map = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= ENTRIES && !map.contains_key(&key) {
            // Drop what older positions computed; if that frees nothing, all.
            let newest = map.values().map(|(p, ..)| *p).max().unwrap_or(position);
            map.retain(|_, (p, ..)| *p >= newest);
            if map.len() >= ENTRIES {
                map.clear();
            }
        }
        match map.get(&key) {
            Some((p, ..)) if *p > position => {}
            _ => {
                map.insert(key, (position, Instant::now(), Arc::new(value)));
            }
        }
    }

    /// The turn to compute `key`.
    fn flight(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut flights = self
            .flights
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        flights.entry(key.to_string()).or_default().clone()
    }

    /// Forgets `key`'s turn when nobody else waits for it.
    fn land(&self, key: &str) {
        let mut flights = self
            .flights
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if flights.get(key).is_some_and(|f| Arc::strong_count(f) == 1) {
            flights.remove(key);
        }
    }

    /// Entries held (for tests).
    pub fn len(&self) -> usize {
        self.entries.lock().map(|m| m.len()).unwrap_or_default()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `compute`'s answer for `key`: a kept one when usable (see the module),
/// else computed and kept.
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
    let hit = |answers: &Answers| {
        answers.get::<V>(&key, promised).map(|(position, v)| {
            promised.used(position);
            v
        })
    };
    if let Some(v) = hit(answers) {
        return Ok(v);
    }
    let flight = answers.flight(&key);
    let turn = flight.lock().await;
    // Another request may have computed it while this one waited.
    let result = match hit(answers) {
        Some(v) => Ok(v),
        None => compute.await.inspect(|v| {
            // What was read reflects at least the request's position.
            answers.put(key.clone(), promised.reflected, v.clone());
        }),
    };
    drop(turn);
    drop(flight);
    answers.land(&key);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_answer_never_falls_short_of_a_token() {
        let a = Answers::default();
        a.put("k".into(), 10, vec![1]);
        let at = |reflected, token| Promised::new(reflected, token);
        assert_eq!(a.get::<Vec<i32>>("k", &at(10, None)), Some((10, vec![1])));
        assert_eq!(a.get::<Vec<i32>>("k", &at(9, Some(9))), Some((10, vec![1])));
        // Later than the answer: a young answer serves, naming its position…
        assert_eq!(a.get::<Vec<i32>>("k", &at(12, None)), Some((10, vec![1])));
        assert_eq!(
            a.get::<Vec<i32>>("k", &at(12, Some(10))),
            Some((10, vec![1]))
        );
        // …never one older than the token.
        assert_eq!(a.get::<Vec<i32>>("k", &at(12, Some(11))), None);
        assert_eq!(a.get::<Vec<u8>>("k", &at(10, None)), None, "another type");
        a.put("k".into(), 5, vec![0]);
        assert_eq!(
            a.get::<Vec<i32>>("k", &at(10, None)),
            Some((10, vec![1])),
            "a later answer stays"
        );
        a.put("k".into(), 12, vec![2]);
        assert_eq!(
            a.get::<Vec<i32>>("k", &at(12, Some(12))),
            Some((12, vec![2]))
        );
    }

    #[test]
    fn an_old_answer_serves_only_requests_at_its_position() {
        let a = Answers::default();
        a.entries.lock().expect("lock").insert(
            "k".into(),
            (
                10,
                Instant::now() - MAX_AGE - Duration::from_millis(1),
                Arc::new(1_i32),
            ),
        );
        assert_eq!(
            a.get::<i32>("k", &Promised::new(11, None)),
            None,
            "too old for a later request"
        );
        assert_eq!(a.get::<i32>("k", &Promised::new(10, None)), Some((10, 1)));
    }

    #[test]
    fn the_answer_names_the_oldest_position_it_used() {
        let p = Promised::new(20, None);
        assert_eq!(p.position(), 20);
        p.used.fetch_min(14, Ordering::Relaxed);
        p.used.fetch_min(17, Ordering::Relaxed);
        assert_eq!(p.position(), 14);
    }

    #[tokio::test]
    async fn requests_missing_together_compute_once() {
        use async_graphql::{EmptyMutation, EmptySubscription, Object, Schema};
        use std::sync::atomic::AtomicUsize;
        struct Q;
        #[Object]
        impl Q {
            async fn n(&self, ctx: &Context<'_>) -> async_graphql::Result<i64> {
                let runs = ctx.data::<Arc<AtomicUsize>>()?.clone();
                let v = cached(ctx, "n".into(), async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Ok::<i64, async_graphql::Error>(7)
                })
                .await?;
                Ok(v)
            }
        }
        let runs = Arc::new(AtomicUsize::new(0));
        let answers = Answers::default();
        let schema = Schema::build(Q, EmptyMutation, EmptySubscription)
            .data(answers.clone())
            .data(runs.clone())
            .finish();
        let requests = (0..16).map(|_| {
            let r = async_graphql::Request::new("{ n }").data(Promised::new(3, None));
            schema.execute(r)
        });
        for response in futures::future::join_all(requests).await {
            assert!(response.errors.is_empty(), "{:?}", response.errors);
        }
        assert_eq!(
            runs.load(Ordering::SeqCst),
            1,
            "one computation for 16 requests"
        );
        assert!(
            answers.flights.lock().expect("lock").is_empty(),
            "no turn left behind"
        );
    }

    #[test]
    fn it_stays_bounded() {
        let a = Answers::default();
        for i in 0..(ENTRIES * 3) {
            a.put(format!("k{i}"), i as i64 / 100, i);
        }
        assert!(a.len() <= ENTRIES);
        let last = format!("k{}", ENTRIES * 3 - 1);
        let newest = (ENTRIES * 3 - 1) as i64 / 100;
        let p = Promised::new(newest, None);
        assert_eq!(a.get::<usize>(&last, &p), Some((newest, ENTRIES * 3 - 1)));
    }
}
