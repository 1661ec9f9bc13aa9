//! Data protection against real databases: sealing and opening, forgetting,
//! the e-mail index, and re-wrapping under a new master key.

use chrono::Utc;
use domain::user::UserEvent;
use domain::{Email, Event, PersonName, Personal};
use eventlog::testing::TestDatabase;
use eventlog::{Keyring, MasterKeys, StoreError, StoredEvent};
use uuid::Uuid;

fn registered(user: Uuid, email: Personal<Email>, name: Personal<PersonName>) -> StoredEvent {
    let event = UserEvent::Registered {
        user_id: user,
        email,
        name,
        at: Utc::now(),
        locale: domain::Locale::default(),
        marketing_consent: false,
    };
    StoredEvent {
        position: 1,
        transaction_id: 0,
        event_id: Uuid::new_v4(),
        aggregate_type: "User".into(),
        aggregate_id: user.to_string(),
        sequence: 1,
        event_type: "UserRegistered".into(),
        event_version: "3".into(),
        payload: serde_json::to_value(&event).expect("json"),
        metadata: serde_json::json!({}),
        recorded_at: Utc::now(),
        event: Ok(Event::User(event)),
    }
}

fn email(s: &str) -> Email {
    Email::parse(s).expect("email")
}

fn name(s: &str) -> PersonName {
    PersonName::parse("name", s).expect("name")
}

async fn sealed_values_open_until_the_user_is_forgotten(t: &TestDatabase) {
    let keys = t.keys();
    keys.open().await.expect("open");
    let (ada, bob) = (Uuid::new_v4(), Uuid::new_v4());
    let ada_email = keys
        .seal(ada, "email", email("ada@example.com"))
        .await
        .expect("seal");
    let Personal::Sealed(sealed) = &ada_email else {
        panic!("sealed: {ada_email:?}")
    };
    assert!(!sealed.0.contains("ada"));
    let ada_name = keys.seal(ada, "name", name("Ada")).await.expect("seal");
    let bob_email = keys
        .seal(bob, "email", email("bob@example.com"))
        .await
        .expect("seal");
    let bob_name = keys.seal(bob, "name", name("Bob")).await.expect("seal");
    let events = [
        registered(ada, ada_email.clone(), ada_name.clone()),
        registered(bob, bob_email, bob_name),
    ];
    // Another process: a keyring of its own, no cache shared.
    let other = eventlog::testing::keys(&t.db);
    let refs: Vec<&StoredEvent> = events.iter().collect();
    let opened = other.reveal_events(&refs).await.expect("reveal");
    let Ok(Event::User(UserEvent::Registered {
        email: e, name: n, ..
    })) = &opened[0].event
    else {
        panic!("{:?}", opened[0].event)
    };
    assert_eq!(e.clear().map(Email::as_str), Some("ada@example.com"));
    assert_eq!(n.clear().map(PersonName::as_str), Some("Ada"));

    keys.forget(ada).await.expect("forget");
    keys.forget(ada)
        .await
        .expect("forgetting twice changes nothing");
    assert!(keys.is_forgotten(ada).await.expect("state"));
    assert!(!keys.is_forgotten(bob).await.expect("state"));
    // A third process, after the forget: Ada is gone, Bob is not.
    let later = eventlog::testing::keys(&t.db);
    let opened = later.reveal_events(&refs).await.expect("reveal");
    let Ok(Event::User(UserEvent::Registered {
        email: e, name: n, ..
    })) = &opened[0].event
    else {
        panic!("{:?}", opened[0].event)
    };
    assert_eq!((e, n), (&Personal::Forgotten, &Personal::Forgotten));
    let Ok(Event::User(UserEvent::Registered { email: e, .. })) = &opened[1].event else {
        panic!("{:?}", opened[1].event)
    };
    assert_eq!(e.clear().map(Email::as_str), Some("bob@example.com"));
    // No new key is ever made for a forgotten user.
    assert!(matches!(
        later.seal(ada, "name", name("Ada again")).await,
        Err(StoreError::Forgotten)
    ));
    // The process that had Ada's key cached learns of the forget from the event.
    let forgotten = StoredEvent {
        event_type: "UserForgotten".into(),
        event: Ok(Event::User(UserEvent::Forgotten { at: Utc::now() })),
        ..events[0].clone()
    };
    let batch = [&forgotten, &events[0]];
    let opened = other.reveal_events(&batch).await.expect("reveal");
    let Ok(Event::User(UserEvent::Registered { email: e, .. })) = &opened[1].event else {
        panic!("{:?}", opened[1].event)
    };
    assert_eq!(e, &Personal::Forgotten);
}

async fn altered_ciphertext_is_a_poison_event_not_a_wrong_value(t: &TestDatabase) {
    let keys = t.keys();
    let user = Uuid::new_v4();
    let Personal::Sealed(sealed) = keys
        .seal(user, "email", email("ada@example.com"))
        .await
        .expect("seal")
    else {
        panic!("sealed")
    };
    let mut bytes = sealed.0.into_bytes();
    let i = bytes.len() / 2;
    bytes[i] = if bytes[i] == b'x' { b'y' } else { b'x' };
    let altered = Personal::Sealed(domain::Sealed(String::from_utf8(bytes).expect("ascii")));
    let e = registered(user, altered, Personal::Clear(name("Ada")));
    let opened = keys.reveal_events(&[&e]).await.expect("reveal");
    let err = opened[0].event.as_ref().expect_err("undecodable");
    assert!(err.to_string().contains("cannot be opened"), "{err}");
}

async fn the_email_index_is_a_keyed_hash_shared_by_every_process(t: &TestDatabase) {
    // A reservation written before data protection holds the address.
    let registry = eventlog::EmailRegistry::new(t.db.clone());
    registry
        .reserve("old@example.com", "u-old")
        .await
        .expect("reserve");
    let keys = t.keys();
    keys.open().await.expect("open");
    let index = keys
        .email_index(&email("old@example.com"))
        .await
        .expect("index");
    assert_eq!(index.len(), 64);
    assert!(!index.contains('@'));
    assert_eq!(
        registry.holder(&index).await.expect("holder").as_deref(),
        Some("u-old"),
        "the old reservation now holds the hash"
    );
    assert_eq!(
        registry.holder("old@example.com").await.expect("holder"),
        None
    );
    let other = eventlog::testing::keys(&t.db);
    assert_eq!(
        other
            .email_index(&email("old@example.com"))
            .await
            .expect("index"),
        index
    );
    assert_ne!(
        other
            .email_index(&email("new@example.com"))
            .await
            .expect("index"),
        index
    );
}

async fn rotation_rewraps_every_key_and_a_foreign_master_is_refused(t: &TestDatabase) {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("keys");
    MasterKeys::load_or_create(&path).expect("key file");
    let keys = Keyring::from_file(&t.db, &path).expect("keyring");
    keys.open().await.expect("open");
    let users: Vec<Uuid> = (0..30).map(|_| Uuid::new_v4()).collect();
    let mut sealed = Vec::new();
    for u in &users {
        sealed.push(keys.seal(*u, "name", name("Someone")).await.expect("seal"));
    }
    keys.forget(users[0]).await.expect("forget");
    let old = MasterKeys::load(&path).expect("load");
    let rotated = old.with_new_current();
    rotated.replace_file(&path).expect("replace");
    let after = Keyring::from_file(&t.db, &path).expect("keyring");
    // 29 users and the e-mail index's key; the tombstone stays as it is.
    assert_eq!(after.rewrap().await.expect("rewrap"), 30);
    assert_eq!(after.rewrap().await.expect("again"), 0);
    let census = after.census().await.expect("census");
    let current = census.iter().find(|c| c.current).expect("current");
    assert_eq!(current.keys, 30);
    assert_eq!(
        census
            .iter()
            .find(|c| c.master_key.is_none())
            .map(|c| c.keys),
        Some(1)
    );
    // Only the new master, now: everything still opens.
    let new_only = MasterKeys::parse(&format!(
        "{}\n",
        rotated.to_text().lines().nth(1).expect("the new key")
    ))
    .expect("parse");
    let fresh = Keyring::new(&t.db, new_only);
    fresh.open().await.expect("the new master opens the store");
    let events: Vec<StoredEvent> = users
        .iter()
        .zip(&sealed)
        .map(|(u, n)| registered(*u, Personal::Clear(email("x@example.com")), n.clone()))
        .collect();
    let refs: Vec<&StoredEvent> = events.iter().collect();
    let opened = fresh.reveal_events(&refs).await.expect("reveal");
    for (i, e) in opened.iter().enumerate() {
        let Ok(Event::User(UserEvent::Registered { name: n, .. })) = &e.event else {
            panic!("{:?}", e.event)
        };
        if i == 0 {
            assert_eq!(n, &Personal::Forgotten);
        } else {
            assert_eq!(n.clear().map(PersonName::as_str), Some("Someone"));
        }
    }
    // A master key that never wrapped this store's keys is refused at start.
    let foreign = Keyring::new(&t.db, MasterKeys::generate());
    let err = foreign.open().await.expect_err("a foreign master");
    assert!(err.to_string().contains("does not hold"), "{err}");
}

crate::both_backends!(
    sealed_values_open_until_the_user_is_forgotten,
    altered_ciphertext_is_a_poison_event_not_a_wrong_value,
    the_email_index_is_a_keyed_hash_shared_by_every_process,
    rotation_rewraps_every_key_and_a_foreign_master_is_refused
);
