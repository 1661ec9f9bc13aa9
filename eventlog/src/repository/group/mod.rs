//! Group commit on PostgreSQL: guarded appends that arrive while others
//! are being written go out together, in one statement (one transaction,
//! one WAL flush) instead of one each.
//!
//! Each append keeps its own outcome. Its guards (and a registration's
//! e-mail claim) are checked for its own rows only: a guard that fails, or
//! an address already taken, skips that append's events, not the others'.
//! A group never holds two appends that touch one stream (one's stream is
//! another's stream or guard) or claim one address: such an append waits
//! for the next group, so within a group every decision was made on states
//! nobody else in it changes. When the statement fails for a reason of the
//! data (another process took a stream's next slot first), each append of
//! the group is tried again on its own, so the loser gets its conflict and
//! the others go through; when the database is unreachable, all fail as
//! unavailable at once, and an append never waits for a connection longer
//! than a lone one would (the pool's acquire timeout).

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use sqlx::{PgConnection, PgPool};
use tokio::sync::{oneshot, Notify};

use crate::StoreError;

mod insert;

use insert::{failed, insert, one_error};
pub(crate) use insert::{insert_one, Append, Claim};

/// Groups written at once (each on its own connection): while one waits
/// for its commit, the next gathers what arrives.
const WORKERS: usize = 4;

/// The most appends, and events, in one group.
const MOST_APPENDS: usize = 64;
const MOST_EVENTS: usize = 512;

struct Pending {
    append: Append,
    since: Instant,
    reply: oneshot::Sender<Result<i64, StoreError>>,
}

struct Shared {
    queue: Mutex<VecDeque<Pending>>,
    ready: Notify,
    /// Writes in flight (a worker's group, or a lone append written by its
    /// caller).
    busy: AtomicUsize,
}

/// One write in flight while it lives (also when its future is dropped).
struct Busy<'a>(&'a AtomicUsize);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The appends of one process (cheap to clone; every clone feeds the same
/// workers, which end a few seconds after the last clone is dropped).
#[derive(Clone)]
pub struct AppendGroup {
    shared: Arc<Shared>,
    pool: PgPool,
}

impl AppendGroup {
    /// Workers appending to `pool`'s database, through connections of
    /// their own that plan the group's statement once
    /// (`plan_cache_mode = force_generic_plan`): PostgreSQL would otherwise
    /// plan it again for every execution (the arrays' lengths make each
    /// custom plan look cheaper than the generic one), which costs more
    /// than running it.
    pub fn new(pool: &PgPool) -> Self {
        let connect = (*pool.connect_options())
            .clone()
            .options([("plan_cache_mode", "force_generic_plan")]);
        let patience = pool.options().get_acquire_timeout();
        let pool = crate::db::pg_pool(WORKERS as u32 + 1, patience).connect_lazy_with(connect);
        let shared = Arc::new(Shared {
            queue: Mutex::new(VecDeque::new()),
            ready: Notify::new(),
            busy: AtomicUsize::new(0),
        });
        for _ in 0..WORKERS {
            tokio::spawn(work(pool.clone(), patience, Arc::downgrade(&shared)));
        }
        Self { shared, pool }
    }

    /// A group for `db` (none on SQLite: one writer at a time anyway).
    pub fn for_database(db: &crate::Database) -> Option<Self> {
        match db {
            crate::Database::Postgres(pool) => Some(Self::new(pool)),
            crate::Database::Sqlite(_) => None,
        }
    }

    /// Appends with the next group; the position of its last event. With
    /// nothing else in flight, the caller writes its append itself at once
    /// (a group of one, no hand-over to a worker).
    ///
    /// # Errors
    /// As [`insert_one`].
    pub(crate) async fn append(&self, append: Append) -> Result<i64, StoreError> {
        let alone = {
            let queue = lock(&self.shared);
            let alone = queue.is_empty() && self.shared.busy.load(Ordering::Acquire) == 0;
            if alone {
                self.shared.busy.fetch_add(1, Ordering::AcqRel);
            }
            alone
        };
        if alone {
            let _busy = Busy(&self.shared.busy);
            return insert_one(&self.pool, &append).await;
        }
        let (reply, answer) = oneshot::channel();
        lock(&self.shared).push_back(Pending {
            append,
            since: Instant::now(),
            reply,
        });
        self.shared.ready.notify_one();
        answer
            .await
            .map_err(|_| StoreError::Backend("the append group stopped".into()))?
    }
}

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, VecDeque<Pending>> {
    shared.queue.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn work(pool: PgPool, patience: Duration, shared: Weak<Shared>) {
    loop {
        let Some(s) = shared.upgrade() else { return };
        let (group, more) = {
            let mut queue = lock(&s);
            let group = take(&mut queue);
            (group, !queue.is_empty())
        };
        if group.is_empty() {
            // A permit stored by an append meanwhile wakes this at once.
            let _ = tokio::time::timeout(Duration::from_secs(5), s.ready.notified()).await;
            continue;
        }
        s.busy.fetch_add(1, Ordering::AcqRel);
        if more {
            // What this group left behind is another worker's.
            s.ready.notify_one();
        }
        {
            let _busy = Busy(&s.busy);
            write(&pool, patience, group).await;
        }
        drop(s);
    }
}

/// The next group from the front of `queue`: appends that touch no stream
/// another of the group touches, in arrival order; the rest stay queued in
/// theirs.
fn take(queue: &mut VecDeque<Pending>) -> Vec<Pending> {
    let mut written: HashSet<(String, String)> = HashSet::new();
    let mut relied: HashSet<(String, String)> = HashSet::new();
    let mut group = Vec::new();
    let mut events = 0;
    let mut rest = VecDeque::with_capacity(queue.len());
    while let Some(p) = queue.pop_front() {
        let a = &p.append;
        let key = |t: &str, i: &str| (t.to_string(), i.to_string());
        let (t, i) = a.stream();
        let fits = group.len() < MOST_APPENDS
            && (group.is_empty() || events + a.sequences.len() <= MOST_EVENTS)
            && !written.contains(&key(t, i))
            && !relied.contains(&key(t, i))
            && a.guards
                .iter()
                .all(|g| !written.contains(&key(&g.aggregate_type, &g.aggregate_id)))
            && a.claim
                .as_ref()
                .is_none_or(|c| !written.contains(&key("", &c.email)));
        if fits {
            written.insert(key(t, i));
            if let Some(c) = &a.claim {
                written.insert(key("", &c.email));
            }
            relied.extend(
                a.guards
                    .iter()
                    .map(|g| key(&g.aggregate_type, &g.aggregate_id)),
            );
            events += a.sequences.len();
            group.push(p);
        } else {
            rest.push_back(p);
        }
    }
    *queue = rest;
    group
}

/// Writes a group and answers each append. Nothing is sent when no
/// connection frees up within what the longest-waiting append has left of
/// `patience` (the pool's acquire timeout): those appends fail as
/// unavailable, unwritten, as a lone append would.
async fn write(pool: &PgPool, patience: Duration, group: Vec<Pending>) {
    let waited = group
        .iter()
        .map(|p| p.since.elapsed())
        .max()
        .unwrap_or_default();
    let left = patience.saturating_sub(waited);
    let outcomes = match tokio::time::timeout(left, pool.acquire()).await {
        Ok(Ok(mut conn)) => outcomes(&mut conn, &group).await,
        Ok(Err(e)) => failed(e, group.len()),
        Err(_) => failed(sqlx::Error::PoolTimedOut, group.len()),
    };
    for (p, outcome) in group.into_iter().zip(outcomes) {
        // The command may have been given up on (its client went away).
        let _ = p.reply.send(outcome);
    }
}

/// Each append's outcome: the group's statement, or when it fails for a
/// reason of the data (a lost race), each append again on its own.
async fn outcomes(conn: &mut PgConnection, group: &[Pending]) -> Vec<Result<i64, StoreError>> {
    let appends: Vec<&Append> = group.iter().map(|p| &p.append).collect();
    match insert(&mut *conn, &appends).await {
        Ok(outcomes) => outcomes,
        Err(e) if group.len() == 1 || crate::is_unreachable(&e) => failed(e, group.len()),
        Err(e) => {
            tracing::debug!(error = %e, appends = group.len(), "a group failed; appending one by one");
            let mut outcomes = Vec::with_capacity(group.len());
            for a in appends {
                let one = insert(&mut *conn, &[a]).await.map_err(one_error);
                outcomes.push(one.and_then(|mut o| o.pop().unwrap_or(Err(StoreError::Stale))));
            }
            outcomes
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repository::Guard;
    use crate::testing::TestDatabase;

    fn guard(id: &str, version: i64) -> Guard {
        Guard {
            aggregate_type: "Product".into(),
            aggregate_id: id.into(),
            version,
        }
    }

    fn append(id: &str, sequence: i64, guards: Vec<Guard>) -> Append {
        Append {
            aggregate_type: "Product".into(),
            aggregate_id: id.into(),
            sequences: vec![sequence],
            types: vec!["ProductCreated".into()],
            versions: vec!["1".into()],
            payloads: vec![serde_json::json!({"n": sequence})],
            metas: vec![serde_json::json!({})],
            guards,
            claim: None,
        }
    }

    fn pending(a: Append) -> (Pending, oneshot::Receiver<Result<i64, StoreError>>) {
        let (reply, answer) = oneshot::channel();
        let since = Instant::now();
        (
            Pending {
                append: a,
                since,
                reply,
            },
            answer,
        )
    }

    async fn streams(pool: &PgPool) -> Vec<(String, i64)> {
        sqlx::query_as("SELECT aggregate_id, sequence FROM events ORDER BY position")
            .fetch_all(pool)
            .await
            .expect("events")
    }

    #[test]
    fn a_group_never_holds_two_appends_touching_one_stream() {
        let mut queue: VecDeque<Pending> = [
            append("X", 1, vec![]),
            append("X", 1, vec![]),
            append("Y", 1, vec![guard("X", 0)]),
            append("Z", 1, vec![guard("F", 2)]),
            append("F", 3, vec![]),
            append("W", 1, vec![guard("F", 2)]),
        ]
        .into_iter()
        .map(|a| pending(a).0)
        .collect();
        let ids = |g: &[Pending]| -> Vec<String> {
            g.iter().map(|p| p.append.aggregate_id.clone()).collect()
        };
        // The second X writes X again, Y relies on X, F is relied on by Z.
        assert_eq!(ids(&take(&mut queue)), ["X", "Z", "W"]);
        assert_eq!(ids(&take(&mut queue)), ["X", "F"]);
        assert_eq!(ids(&take(&mut queue)), ["Y"]);
        assert!(take(&mut queue).is_empty());
    }

    #[test]
    fn a_group_is_bounded() {
        let mut queue: VecDeque<Pending> = (0..MOST_APPENDS + 3)
            .map(|i| pending(append(&format!("S{i}"), 1, vec![])).0)
            .collect();
        assert_eq!(take(&mut queue).len(), MOST_APPENDS);
        assert_eq!(take(&mut queue).len(), 3);
    }

    #[tokio::test]
    async fn each_append_of_a_group_keeps_its_own_guards() {
        let t = TestDatabase::postgres().await;
        let crate::Database::Postgres(pool) = &t.db else {
            panic!("postgres")
        };
        let group = [
            append("A", 1, vec![]),
            append("B", 1, vec![guard("G", 5)]),
            append("C", 1, vec![guard("G", 0)]),
        ];
        let outcomes = insert(pool, &group.iter().collect::<Vec<_>>())
            .await
            .expect("insert");
        assert!(matches!(outcomes[0], Ok(p) if p > 0), "{outcomes:?}");
        assert!(
            matches!(outcomes[1], Err(StoreError::Stale)),
            "{outcomes:?}"
        );
        assert!(matches!(outcomes[2], Ok(p) if p > 0), "{outcomes:?}");
        assert_eq!(streams(pool).await, [("A".into(), 1), ("C".into(), 1)]);
        t.drop_database().await;
    }

    fn claiming(id: &str, email: &str) -> Append {
        Append {
            claim: Some(Claim {
                email: email.into(),
                master: "m1".into(),
                wrapped: format!("wrapped-{id}"),
            }),
            ..append(id, 1, vec![])
        }
    }

    #[tokio::test]
    async fn a_claim_of_a_taken_address_skips_only_its_own_append() {
        let t = TestDatabase::postgres().await;
        let crate::Database::Postgres(pool) = &t.db else {
            panic!("postgres")
        };
        insert_one(pool, &claiming("U0", "taken"))
            .await
            .expect("first claim");
        let mut queue: VecDeque<Pending> = [
            claiming("U1", "free"),
            claiming("U2", "taken"),
            claiming("U3", "free"),
            claiming("U4", "other"),
        ]
        .into_iter()
        .map(|a| pending(a).0)
        .collect();
        let group = take(&mut queue);
        assert_eq!(group.len(), 3, "one address per group");
        let appends: Vec<&Append> = group.iter().map(|p| &p.append).collect();
        let outcomes = insert(pool, &appends).await.expect("insert");
        assert!(outcomes[0].is_ok(), "{outcomes:?}");
        assert!(
            matches!(outcomes[1], Err(StoreError::Stale)),
            "{outcomes:?}"
        );
        assert!(outcomes[2].is_ok(), "{outcomes:?}");
        assert_eq!(
            streams(pool).await,
            [("U0".into(), 1), ("U1".into(), 1), ("U4".into(), 1)]
        );
        let keys: Vec<(String, String)> =
            sqlx::query_as("SELECT subject, wrapped FROM data_keys ORDER BY subject")
                .fetch_all(pool)
                .await
                .expect("keys");
        let subjects: Vec<&str> = keys.iter().map(|k| k.0.as_str()).collect();
        assert_eq!(subjects, ["U0", "U1", "U4"], "no key for a failed claim");
        assert!(keys.iter().all(|(s, w)| *w == format!("wrapped-{s}")));
        let owner: String =
            sqlx::query_scalar("SELECT user_id FROM user_emails WHERE email = 'taken'")
                .fetch_one(pool)
                .await
                .expect("owner");
        assert_eq!(owner, "U0");
        t.drop_database().await;
    }

    #[tokio::test]
    async fn the_groups_connections_plan_once() {
        let t = TestDatabase::postgres().await;
        let crate::Database::Postgres(pool) = &t.db else {
            panic!("postgres")
        };
        let group = AppendGroup::new(pool);
        let mode: String = sqlx::query_scalar("SHOW plan_cache_mode")
            .fetch_one(&group.pool)
            .await
            .expect("show");
        assert_eq!(mode, "force_generic_plan");
        for i in 0..8 {
            group
                .append(append(&format!("G{i}"), 1, vec![guard("F", 0)]))
                .await
                .expect("append");
        }
        assert_eq!(streams(pool).await.len(), 8);
        drop(group);
        t.drop_database().await;
    }

    #[tokio::test]
    async fn a_lost_race_fails_only_its_own_append() {
        let t = TestDatabase::postgres().await;
        let crate::Database::Postgres(pool) = &t.db else {
            panic!("postgres")
        };
        // Another process took X's first slot.
        insert_one(pool, &append("X", 1, vec![]))
            .await
            .expect("first");
        let (lost, lost_answer) = pending(append("X", 1, vec![]));
        let (won, won_answer) = pending(append("Y", 1, vec![]));
        write(pool, Duration::from_secs(2), vec![lost, won]).await;
        let lost = lost_answer.await.expect("answered");
        assert!(matches!(lost, Err(StoreError::Conflict)), "{lost:?}");
        assert!(won_answer.await.expect("answered").is_ok());
        assert_eq!(streams(pool).await, [("X".into(), 1), ("Y".into(), 1)]);
        t.drop_database().await;
    }
}
