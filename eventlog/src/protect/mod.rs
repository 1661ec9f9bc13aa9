//! Data protection (crypto-shredding, ARCHITECTURE invariant 12): every
//! user's personal fields are sealed with that user's own data key; data
//! keys are stored in `data_keys` wrapped by a master key that lives only
//! in a file (`--data-protection-key-file`). Forgetting a user erases the
//! key, and with it every copy of their personal data the events carried:
//! in the log, in rebuilt read models, in every Kafka record.
//!
//! # Layout
//! - `mod.rs`: [`Keyring`]: data keys (created, cached, forgotten), sealing.
//! - `reveal`: opening sealed values and events for the read models.
//! - `signup`: [`NewKey`], a new user's key, stored with the registration.
//! - `admin`: re-wrapping under a new master key, the census of keys, bulk keys.
//! - `master`: [`MasterKeys`] and their file.
//! - `cipher`: AES-256-GCM for values and keys; the keyed e-mail hash.

mod admin;
mod cipher;
mod master;
mod reveal;
mod signup;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use domain::{Email, Personal, Sealed};
use serde::Serialize;
use uuid::Uuid;

pub use admin::{KeyCount, StoredKey};
use cipher::{DataKey, KeyBytes};
pub use master::{write_new, MasterKeys};
pub use signup::NewKey;

use crate::db::on_pool;
use crate::{Database, StoreError};

/// The `data_keys` subject of the e-mail index's key.
const EMAIL_INDEX: &str = "email-index";
/// Data keys kept in memory (32 bytes each, the ciphers derived per use)
/// before the cache starts over.
const CACHE: usize = 50_000;
/// How often a process looks whether its key file changed.
const RELOAD_EVERY: Duration = Duration::from_secs(1);

/// A data key as cached: `None` when the subject was forgotten.
type Cached = Option<KeyBytes>;

/// The data keys of one store, and the master keys that wrap them.
#[derive(Clone)]
pub struct Keyring {
    inner: Arc<Inner>,
}

struct Inner {
    db: Database,
    masters: RwLock<Arc<MasterKeys>>,
    file: Option<Watched>,
    cache: Mutex<HashMap<String, Cached>>,
    index: tokio::sync::OnceCell<KeyBytes>,
}

/// The key file, looked at again at most every [`RELOAD_EVERY`]: after
/// `keys rotate` every running process wraps new keys with the new master.
struct Watched {
    path: PathBuf,
    seen: Mutex<(Instant, Option<SystemTime>)>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("masters", &self.masters().ids())
            .finish_non_exhaustive()
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl Keyring {
    /// Data keys of `db` under `masters`.
    pub fn new(db: &Database, masters: MasterKeys) -> Self {
        Self::build(db, masters, None)
    }

    /// Data keys of `db` under the master keys of `path` (read again when
    /// the file changes).
    ///
    /// # Errors
    /// [`StoreError::Protection`] when the file cannot be read.
    pub fn from_file(db: &Database, path: &Path) -> Result<Self, StoreError> {
        let masters = MasterKeys::load(path)?;
        let watched = Watched {
            path: path.to_path_buf(),
            seen: Mutex::new((Instant::now(), modified(path))),
        };
        Ok(Self::build(db, masters, Some(watched)))
    }

    fn build(db: &Database, masters: MasterKeys, file: Option<Watched>) -> Self {
        Self {
            inner: Arc::new(Inner {
                db: db.clone(),
                masters: RwLock::new(Arc::new(masters)),
                file,
                cache: Mutex::new(HashMap::new()),
                index: tokio::sync::OnceCell::new(),
            }),
        }
    }

    /// Checks that the master keys open this store's keys (creating the
    /// e-mail index's key on a new store) and replaces e-mail addresses
    /// that reservations of an older release hold in the clear by their
    /// keyed hash. Every role calls it at start.
    ///
    /// # Errors
    /// [`StoreError::Protection`] naming the master key the store needs
    /// when the file does not hold it; database errors.
    pub async fn open(&self) -> Result<(), StoreError> {
        self.index_key().await?;
        self.hash_plain_reservations().await
    }

    /// The master keys now (the file read again when it changed).
    pub(crate) fn masters(&self) -> Arc<MasterKeys> {
        if let Some(file) = &self.inner.file {
            let mut seen = file.seen.lock().unwrap_or_else(|p| p.into_inner());
            if seen.0.elapsed() >= RELOAD_EVERY {
                let now = modified(&file.path);
                if now != seen.1 {
                    self.reload(&file.path);
                }
                *seen = (Instant::now(), now);
            }
        }
        self.inner
            .masters
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn reload(&self, path: &Path) {
        match MasterKeys::load(path) {
            Ok(keys) => {
                tracing::info!(current = %keys.ids()[0], "data protection keys reloaded");
                *self
                    .inner
                    .masters
                    .write()
                    .unwrap_or_else(|p| p.into_inner()) = Arc::new(keys);
            }
            Err(e) => tracing::warn!(error = %e, "kept the data protection keys loaded before"),
        }
    }

    /// The key that unwraps `wrapped` (by `master`'s id), looking at the
    /// file once more when the id is unknown (rotated elsewhere just now).
    fn unwrap(&self, subject: &str, master: &str, wrapped: &str) -> Result<KeyBytes, StoreError> {
        let mut masters = self.masters();
        if masters.by_id(master).is_none() {
            if let Some(file) = &self.inner.file {
                self.reload(&file.path);
                masters = self.masters();
            }
        }
        let key = masters.by_id(master).ok_or_else(|| {
            StoreError::Protection(format!(
                "the data key of {subject} is wrapped by master key {master}, which the data \
                 protection key file does not hold (it holds {})",
                masters.ids().join(", ")
            ))
        })?;
        key.unwrap_key(subject, wrapped)
    }

    fn cached(&self, subject: &str) -> Option<Cached> {
        let cache = self.inner.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.get(subject).cloned()
    }

    fn remember(&self, subject: &str, key: Cached) {
        let mut cache = self.inner.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHE {
            cache.clear();
        }
        cache.insert(subject.to_string(), key);
    }

    /// `subject`'s data key (`None`: forgotten), created when it has none
    /// yet and `create`.
    async fn key(&self, subject: &str, create: bool) -> Result<Option<DataKey>, StoreError> {
        if let Some(key) = self.cached(subject) {
            return Ok(key.map(|b| DataKey::new(&b)));
        }
        if create {
            let bytes = cipher::random_key();
            let masters = self.masters();
            let master = masters.current();
            let wrapped = master.wrap(subject, &bytes);
            let inserted = on_pool!(&self.inner.db, |p| {
                sqlx::query(
                    "INSERT INTO data_keys (subject, master_key, wrapped) VALUES ($1, $2, $3) \
                     ON CONFLICT (subject) DO NOTHING",
                )
                .bind(subject)
                .bind(&master.id)
                .bind(&wrapped)
                .execute(p)
                .await?
                .rows_affected()
            });
            if inserted == 1 {
                let key = DataKey::new(&bytes);
                self.remember(subject, Some(bytes));
                return Ok(Some(key));
            }
        }
        // Whoever won a race to create it, the stored key is the key.
        self.load_keys(&[subject.to_string()]).await?;
        Ok(self.cached(subject).flatten().map(|b| DataKey::new(&b)))
    }

    /// `value` sealed for `user`'s `field`, with the user's data key
    /// (created on first use).
    ///
    /// # Errors
    /// [`StoreError::Forgotten`] when the user was forgotten; database errors.
    pub async fn seal<T: Serialize>(
        &self,
        user: Uuid,
        field: &str,
        value: T,
    ) -> Result<Personal<T>, StoreError> {
        let subject = user.to_string();
        let key = self
            .key(&subject, true)
            .await?
            .ok_or(StoreError::Forgotten)?;
        let plain = zeroize::Zeroizing::new(
            serde_json::to_vec(&value).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        );
        Ok(Personal::Sealed(Sealed(key.seal(&subject, field, &plain))))
    }

    /// Forgets `user`: erases their data key for good (a tombstone stays,
    /// so no new key is ever made for them). Repeating it changes nothing.
    ///
    /// # Errors
    /// Database errors.
    pub async fn forget(&self, user: Uuid) -> Result<(), StoreError> {
        let subject = user.to_string();
        let db = &self.inner.db;
        let sql = format!(
            "INSERT INTO data_keys (subject, forgotten_at) VALUES ($1, {now}) \
             ON CONFLICT (subject) DO UPDATE SET master_key = NULL, wrapped = NULL, \
             forgotten_at = COALESCE(data_keys.forgotten_at, excluded.forgotten_at)",
            now = db.dialect("clock_timestamp()", "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')")
        );
        on_pool!(db, |p| sqlx::query(&sql)
            .bind(&subject)
            .execute(p)
            .await?
            .rows_affected());
        self.remember(&subject, None);
        Ok(())
    }

    /// Deletes the data key of a user id that never registered (its
    /// registration failed after the key was made).
    ///
    /// # Errors
    /// Database errors.
    pub async fn discard(&self, user: Uuid) -> Result<(), StoreError> {
        let subject = user.to_string();
        on_pool!(&self.inner.db, |p| sqlx::query(
            "DELETE FROM data_keys WHERE subject = $1 AND wrapped IS NOT NULL"
        )
        .bind(&subject)
        .execute(p)
        .await?
        .rows_affected());
        self.inner
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&subject);
        Ok(())
    }

    /// Whether `user` was forgotten.
    ///
    /// # Errors
    /// Database errors.
    pub async fn is_forgotten(&self, user: Uuid) -> Result<bool, StoreError> {
        let subject = user.to_string();
        let row: Option<(Option<String>,)> = on_pool!(&self.inner.db, |p| {
            sqlx::query_as("SELECT wrapped FROM data_keys WHERE subject = $1")
                .bind(&subject)
                .fetch_optional(p)
                .await?
        });
        Ok(matches!(row, Some((None,))))
    }

    /// The key of the e-mail index (created with the store's first key).
    async fn index_key(&self) -> Result<&KeyBytes, StoreError> {
        self.inner
            .index
            .get_or_try_init(|| async {
                let key = self.key(EMAIL_INDEX, true).await?.ok_or_else(|| {
                    StoreError::Protection("the e-mail index key was erased".into())
                })?;
                Ok(zeroize::Zeroizing::new(*key.raw()))
            })
            .await
    }

    /// What `user_emails` holds for `email`: its keyed hash (HMAC-SHA-256),
    /// never the address.
    ///
    /// # Errors
    /// As [`Keyring::open`].
    pub async fn email_index(&self, email: &Email) -> Result<String, StoreError> {
        Ok(cipher::email_digest(
            self.index_key().await?,
            email.as_str(),
        ))
    }

    /// Reservations written by a release before data protection hold the
    /// address: hash them.
    async fn hash_plain_reservations(&self) -> Result<(), StoreError> {
        let plain: Vec<(String,)> = on_pool!(&self.inner.db, |p| {
            sqlx::query_as("SELECT email FROM user_emails WHERE email LIKE '%@%'")
                .fetch_all(p)
                .await?
        });
        let key = self.index_key().await?;
        for (email,) in &plain {
            let digest = cipher::email_digest(key, email);
            on_pool!(&self.inner.db, |p| {
                sqlx::query("UPDATE user_emails SET email = $1 WHERE email = $2")
                    .bind(&digest)
                    .bind(email)
                    .execute(p)
                    .await?
                    .rows_affected()
            });
        }
        if !plain.is_empty() {
            tracing::info!(
                count = plain.len(),
                "e-mail reservations now hold keyed hashes"
            );
        }
        Ok(())
    }
}
