//! A new user's data key: made before the registration is decided, its
//! values sealed with it, and stored by the registration's own append on
//! PostgreSQL (or just before it elsewhere).

use domain::{Personal, Sealed};
use serde::Serialize;
use uuid::Uuid;

use super::cipher::{self, DataKey, KeyBytes};
use super::Keyring;
use crate::db::on_pool;
use crate::StoreError;

/// A new user's data key before it is stored: what the registration's
/// append writes into `data_keys`, and the key its values are sealed with.
pub struct NewKey {
    subject: String,
    master_key: String,
    wrapped: String,
    bytes: KeyBytes,
    key: DataKey,
}

impl NewKey {
    /// `value` sealed for this user's `field`.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] when the value cannot be serialized.
    pub fn seal<T: Serialize>(&self, field: &str, value: T) -> Result<Personal<T>, StoreError> {
        let plain = zeroize::Zeroizing::new(
            serde_json::to_vec(&value).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        );
        Ok(Personal::Sealed(Sealed(self.key.seal(
            &self.subject,
            field,
            &plain,
        ))))
    }

    /// The id of the master key that wrapped it, and the wrapped key.
    pub fn stored_form(&self) -> (&str, &str) {
        (&self.master_key, &self.wrapped)
    }
}

impl Keyring {
    /// A data key for a new `user`, not stored yet: the registration stores
    /// it with the user's first events ([`crate::Repository::commit_claiming_email`])
    /// or by [`Keyring::store_key`] before them.
    pub fn new_key(&self, user: Uuid) -> NewKey {
        let subject = user.to_string();
        let bytes = cipher::random_key();
        let masters = self.masters();
        let master = masters.current();
        NewKey {
            wrapped: master.wrap(&subject, &bytes),
            master_key: master.id.clone(),
            key: DataKey::new(&bytes),
            bytes,
            subject,
        }
    }

    /// Stores `key` (the registration's slow path), unless the user has a
    /// key already.
    ///
    /// # Errors
    /// Database errors; [`StoreError::Protection`] when another key is stored.
    pub async fn store_key(&self, key: &NewKey) -> Result<(), StoreError> {
        let inserted = on_pool!(&self.inner.db, |p| {
            sqlx::query(
                "INSERT INTO data_keys (subject, master_key, wrapped) VALUES ($1, $2, $3) \
                 ON CONFLICT (subject) DO NOTHING",
            )
            .bind(&key.subject)
            .bind(&key.master_key)
            .bind(&key.wrapped)
            .execute(p)
            .await?
            .rows_affected()
        });
        if inserted == 0 {
            return Err(StoreError::Protection(format!(
                "{} has a data key already",
                key.subject
            )));
        }
        self.adopt(key);
        Ok(())
    }

    /// Remembers `key`, stored with the user's first events.
    pub fn adopt(&self, key: &NewKey) {
        self.remember(&key.subject, Some(key.bytes.clone()));
    }
}
