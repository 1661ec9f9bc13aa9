//! Loading and committing aggregates on both backends, one behaviour.

use std::collections::HashMap;

use domain::product::ProductEvent;
use domain::Product;
use eventlog::testing::TestDatabase;
use eventlog::{Cursor, EventLog, Repository, Source, StoreError};

use crate::helpers::{create, create_product, price_of, read_eventually, reprice};

async fn append_reports_version_and_position(t: &TestDatabase) {
    let repo = Repository::<Product>::new(&t.db, 0, 0);
    let a = create_product(&repo, "A").await.expect("A");
    let b = create_product(&repo, "B").await.expect("B");
    assert_eq!((a.version, a.appended), (1, 1));
    assert!(b.position > a.position, "positions grow: {a:?} {b:?}");

    let loaded = repo.load("A").await.expect("load");
    assert_eq!(loaded.version(), 1);
    let events = repo
        .decide(&loaded, reprice(250), &())
        .await
        .expect("reprice");
    let c = repo
        .commit(
            loaded,
            events,
            HashMap::from([("k".into(), "v".into())]),
            &[],
        )
        .await
        .expect("commit");
    assert_eq!(c.version, 2);
    assert!(c.position > b.position);

    let log = EventLog::new(t.db.clone());
    let stream = log.stream("Product", "A").await.expect("stream");
    assert_eq!(
        stream.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(stream[1].event_type, "ProductRepriced");
    assert_eq!(stream[1].event_version, "1");
    assert_eq!(stream[1].metadata["k"], "v");
    let payload: ProductEvent = serde_json::from_value(stream[1].payload.clone()).expect("payload");
    assert_eq!(price_of(&payload), Some(250));
    let all = read_eventually(&log, Cursor::START, 3).await;
    assert_eq!(all.len(), 3);
    assert_eq!(log.head().await.expect("head"), c.position);
    let ids: std::collections::HashSet<_> = all.iter().map(|e| e.event_id).collect();
    assert_eq!(ids.len(), 3, "event ids are unique");
}

/// The fold's read (the typed event from the payload's text) gives what
/// the full read gives, envelope and typed event, without the JSON values.
async fn the_typed_read_matches_the_full_read(t: &TestDatabase) {
    let repo = Repository::<Product>::new(&t.db, 0, 0);
    for sku in ["A", "B"] {
        create_product(&repo, sku).await.expect("create");
    }
    let loaded = repo.load("A").await.expect("load");
    let events = repo
        .decide(&loaded, reprice(7), &())
        .await
        .expect("reprice");
    repo.commit(loaded, events, HashMap::new(), &[])
        .await
        .expect("commit");
    let log = EventLog::new(t.db.clone());
    let full = read_eventually(&log, Cursor::START, 3).await;
    let typed = log.read_typed_from(Cursor::START, 10).await.expect("read");
    assert_eq!(typed.len(), full.len());
    for (f, e) in full.iter().zip(&typed) {
        assert_eq!(e.event.as_ref().ok(), Some(f.typed().expect("typed")));
        assert_eq!(
            (e.cursor(), e.event_id, e.sequence),
            (f.cursor(), f.event_id, f.sequence)
        );
        assert_eq!(
            (&e.aggregate_id, &e.event_type),
            (&f.aggregate_id, &f.event_type)
        );
        assert_eq!(
            (&e.event_version, e.recorded_at),
            (&f.event_version, f.recorded_at)
        );
        assert!(e.payload.is_null() && !f.payload.is_null());
    }
    let after = log
        .read_typed_from(typed[0].cursor(), 10)
        .await
        .expect("read");
    assert_eq!(after.len(), 2, "reads after its cursor");
    // The rows decoded later (a rebuild's reader) are the same events, and
    // the batch knows where the next read starts before it is decoded.
    let raw = log.read_rows_from(Cursor::START, 10).await.expect("read");
    assert_eq!(raw.len(), typed.len());
    assert_eq!(raw.last(), typed.last().map(|e| e.cursor()));
    assert_eq!(raw.decode().expect("decode"), typed);
    let tail = log
        .read_rows_from(typed[2].cursor(), 10)
        .await
        .expect("read");
    assert!(
        tail.is_empty() && tail.last().is_none(),
        "nothing after the last"
    );
}

async fn a_stale_commit_conflicts(t: &TestDatabase) {
    let repo = Repository::<Product>::new(&t.db, 0, 0);
    create_product(&repo, "A").await.expect("A");
    let first = repo.load("A").await.expect("load");
    let second = repo.load("A").await.expect("load");
    let e1 = repo.decide(&first, reprice(1), &()).await.expect("decide");
    let e2 = repo.decide(&second, reprice(2), &()).await.expect("decide");
    repo.commit(first, e1, HashMap::new(), &[])
        .await
        .expect("first wins");
    let lost = repo.commit(second, e2, HashMap::new(), &[]).await;
    assert!(matches!(lost, Err(StoreError::Conflict)), "{lost:?}");
    assert_eq!(stream_len(t, "A").await, 2);
}

async fn snapshots_load_the_same_state(t: &TestDatabase) {
    let snap = Repository::<Product>::new(&t.db, 2, 0);
    let plain = Repository::<Product>::new(&t.db, 0, 0);
    let loaded = snap.load("S").await.expect("load");
    let events = snap
        .decide(&loaded, create("S", 1), &())
        .await
        .expect("create");
    snap.commit(loaded, events, HashMap::new(), &[])
        .await
        .expect("commit");
    for price in 2..=7 {
        let loaded = snap.load("S").await.expect("load");
        let events = snap
            .decide(&loaded, reprice(price), &())
            .await
            .expect("reprice");
        let c = snap
            .commit(loaded, events, HashMap::new(), &[])
            .await
            .expect("commit");
        assert_eq!(c.version, price as u64);
    }
    let a = snap.load("S").await.expect("load");
    let b = plain.load("S").await.expect("load");
    assert_eq!(a.aggregate(), b.aggregate());
    assert_eq!(a.version(), 7);
    assert_eq!(a.aggregate().unit_price.map(|p| p.amount_minor), Some(7));
}

async fn rejected_commands_append_nothing(t: &TestDatabase) {
    let repo = Repository::<Product>::new(&t.db, 0, 0);
    create_product(&repo, "A").await.expect("A");
    let loaded = repo.load("A").await.expect("load");
    let err = repo
        .decide(&loaded, create("A", 1), &())
        .await
        .expect_err("exists");
    assert_eq!(err.rule, "product_exists");
    assert_eq!(EventLog::new(t.db.clone()).head().await.expect("head"), 1);
}

/// Two processes' repositories over one store, each with its own cache.
fn two_processes(t: &TestDatabase) -> (Repository<Product>, Repository<Product>) {
    (
        Repository::<Product>::new(&t.db, 0, 64),
        Repository::<Product>::new(&t.db, 0, 64),
    )
}

/// Events in product `sku`'s stream.
async fn stream_len(t: &TestDatabase, sku: &str) -> usize {
    EventLog::new(t.db.clone())
        .stream("Product", sku)
        .await
        .expect("stream")
        .len()
}

/// Reprices `sku` through `there` (another process), read from the store.
async fn reprice_there(there: &Repository<Product>, sku: &str, price: i64) {
    let theirs = there.load(sku).await.expect("load");
    let events = there
        .decide(&theirs, reprice(price), &())
        .await
        .expect("decide");
    there
        .commit(theirs, events, HashMap::new(), &[])
        .await
        .expect("theirs");
}

async fn a_cached_state_is_proven_by_its_append(t: &TestDatabase) {
    let (here, there) = two_processes(t);
    create_product(&here, "A").await.expect("A");
    // Cached after the append: no read of the store needed.
    let cached = here.read("A", Source::Cache, false).await.expect("read");
    assert!(!cached.trusted());
    assert_eq!(cached.version(), 1);
    // Another process moves the stream on.
    reprice_there(&there, "A", 7).await;
    // A command decided on the stale cached state loses at the append,
    // appends nothing, and the cache forgets the state.
    let stale = here.read("A", Source::Cache, false).await.expect("read");
    assert_eq!(stale.version(), 1);
    let events = here.decide(&stale, reprice(9), &()).await.expect("decide");
    let lost = here.commit(stale, events, HashMap::new(), &[]).await;
    assert!(matches!(lost, Err(StoreError::Conflict)), "{lost:?}");
    let log = EventLog::new(t.db.clone());
    assert_eq!(log.stream("Product", "A").await.expect("stream").len(), 2);
    let fresh = here.read("A", Source::Cache, false).await.expect("read");
    assert!(fresh.trusted(), "read from the store after the conflict");
    assert_eq!(fresh.version(), 2);
    assert_eq!(
        fresh.aggregate().unit_price.map(|p| p.amount_minor),
        Some(7)
    );
    // A no-op proves nothing about a cached state.
    let cached = here.read("A", Source::Cache, false).await.expect("read");
    assert!(!cached.trusted());
    let noop = here.commit(cached, Vec::new(), HashMap::new(), &[]).await;
    assert!(matches!(noop, Err(StoreError::Stale)), "{noop:?}");
}

async fn a_creation_assumes_nothing_exists_until_the_append_says_otherwise(t: &TestDatabase) {
    let (here, there) = two_processes(t);
    create_product(&there, "A").await.expect("A");
    let assumed = here.read("A", Source::Cache, true).await.expect("read");
    assert_eq!(assumed.version(), 0);
    let events = here
        .decide(&assumed, create("A", 5), &())
        .await
        .expect("decide");
    let lost = here.commit(assumed, events, HashMap::new(), &[]).await;
    assert!(matches!(lost, Err(StoreError::Conflict)), "{lost:?}");
    assert_eq!(stream_len(t, "A").await, 1);
    // Reading from the store sees it.
    let stored = here.read("A", Source::Store, true).await.expect("read");
    assert_eq!(stored.version(), 1);
}

async fn a_guard_rejects_an_append_relying_on_a_moved_stream(t: &TestDatabase) {
    let (here, there) = two_processes(t);
    create_product(&here, "FACT").await.expect("fact");
    create_product(&here, "B").await.expect("B");
    let fact = here.read("FACT", Source::Cache, false).await.expect("fact");
    let guard = fact.guard().expect("a cached read yields a guard");
    // Still current: the guarded append goes through.
    let b = here.read("B", Source::Cache, false).await.expect("B");
    let events = here.decide(&b, reprice(2), &()).await.expect("decide");
    let ok = here
        .commit(b, events, HashMap::new(), std::slice::from_ref(&guard))
        .await
        .expect("guard holds");
    assert_eq!(ok.version, 2);
    // The fact's stream moves on in another process: the same guard fails
    // and nothing is appended.
    reprice_there(&there, "FACT", 3).await;
    let b = here.read("B", Source::Cache, false).await.expect("B");
    let events = here.decide(&b, reprice(4), &()).await.expect("decide");
    let stale = here
        .commit(b, events, HashMap::new(), std::slice::from_ref(&guard))
        .await;
    assert!(matches!(stale, Err(StoreError::Stale)), "{stale:?}");
    let log = EventLog::new(t.db.clone());
    assert_eq!(log.stream("Product", "B").await.expect("stream").len(), 2);
    // A state read from the store needs no guard.
    assert!(here.load("FACT").await.expect("load").guard().is_none());
}

async fn several_events_append_in_order(t: &TestDatabase) {
    let repo = Repository::<Product>::new(&t.db, 0, 64);
    create_product(&repo, "A").await.expect("A");
    let loaded = repo.read("A", Source::Cache, false).await.expect("read");
    let mut events = repo.decide(&loaded, reprice(2), &()).await.expect("decide");
    events.extend(repo.decide(&loaded, reprice(3), &()).await.expect("decide"));
    events.extend(repo.decide(&loaded, reprice(4), &()).await.expect("decide"));
    let c = repo
        .commit(loaded, events, HashMap::new(), &[])
        .await
        .expect("commit");
    assert_eq!((c.version, c.appended), (4, 3));
    let stream = EventLog::new(t.db.clone())
        .stream("Product", "A")
        .await
        .expect("stream");
    let seq: Vec<_> = stream.iter().map(|e| e.sequence).collect();
    assert_eq!(seq, [1, 2, 3, 4]);
    assert!(
        stream.windows(2).all(|w| w[0].position < w[1].position),
        "positions follow sequences: {:?}",
        stream.iter().map(|e| e.position).collect::<Vec<_>>()
    );
    assert_eq!(
        c.position, stream[3].position,
        "the token is the last event's position"
    );
    let price = |e: &eventlog::StoredEvent| {
        serde_json::from_value::<ProductEvent>(e.payload.clone())
            .ok()
            .as_ref()
            .and_then(price_of)
    };
    assert_eq!(
        stream.iter().map(price).collect::<Vec<_>>(),
        [Some(100), Some(2), Some(3), Some(4)]
    );
    let cached = repo.read("A", Source::Cache, false).await.expect("read");
    assert_eq!(
        cached.aggregate(),
        repo.load("A").await.expect("load").aggregate()
    );
}

async fn snapshots_and_the_cache_agree_with_the_events(t: &TestDatabase) {
    let snap = Repository::<Product>::new(&t.db, 3, 64);
    let plain = Repository::<Product>::new(&t.db, 0, 0);
    create_product(&snap, "S").await.expect("S");
    for price in 2..=10 {
        let loaded = snap.read("S", Source::Cache, false).await.expect("read");
        let events = snap
            .decide(&loaded, reprice(price), &())
            .await
            .expect("decide");
        snap.commit(loaded, events, HashMap::new(), &[])
            .await
            .expect("commit");
        // Each round the cache, a cold load (snapshot + events) and a full
        // replay see the same state.
        let fresh = Repository::<Product>::new(&t.db, 3, 64);
        let cold = fresh.load("S").await.expect("cold");
        let replayed = plain.load("S").await.expect("replay");
        let cached = snap.read("S", Source::Cache, false).await.expect("cached");
        assert_eq!(cold.aggregate(), replayed.aggregate(), "at {price}");
        assert_eq!(cached.aggregate(), replayed.aggregate(), "at {price}");
        assert_eq!(
            (cold.version(), cached.version()),
            (price as u64, price as u64)
        );
    }
}

crate::both_backends!(
    a_cached_state_is_proven_by_its_append,
    a_creation_assumes_nothing_exists_until_the_append_says_otherwise,
    a_guard_rejects_an_append_relying_on_a_moved_stream,
    several_events_append_in_order,
    snapshots_and_the_cache_agree_with_the_events,
    append_reports_version_and_position,
    a_stale_commit_conflicts,
    the_typed_read_matches_the_full_read,
    snapshots_load_the_same_state,
    rejected_commands_append_nothing
);

/// Tailers in other processes hear of appends: one `NOTIFY` on
/// `shopstream_events` after the commit (there is no trigger any more).
#[tokio::test]
async fn appends_notify_listeners_after_commit() {
    let t = TestDatabase::postgres().await;
    let mut listener = eventlog::sqlx::postgres::PgListener::connect(&t.url)
        .await
        .expect("listener");
    listener
        .listen(eventlog::EVENTS_CHANNEL)
        .await
        .expect("listen");
    let repo = Repository::<Product>::new(&t.db, 0, 16);
    create_product(&repo, "N").await.expect("N");
    let heard = tokio::time::timeout(std::time::Duration::from_secs(5), listener.recv())
        .await
        .expect("a notification within 5 s")
        .expect("notification");
    assert_eq!(heard.channel(), eventlog::EVENTS_CHANNEL);
    // A rejected command appends nothing and tells nobody.
    let loaded = repo.load("N").await.expect("load");
    assert!(repo.decide(&loaded, create("N", 1), &()).await.is_err());
    let quiet = tokio::time::timeout(std::time::Duration::from_millis(300), listener.recv()).await;
    assert!(quiet.is_err(), "no notification without an append");
    drop(listener);
    t.drop_database().await;
}
