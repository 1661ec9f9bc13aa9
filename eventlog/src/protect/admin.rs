//! The operator's side of the keys: re-wrapping every data key under the
//! current master key (`keys rotate`), the census of keys per master key
//! (`keys status`), and creating many users' keys at once (seeding).

use uuid::Uuid;

use super::cipher;
use super::Keyring;
use crate::db::on_pool;
use crate::{values_rows, Database, StoreError};

/// Keys re-wrapped per statement batch.
const REWRAP_CHUNK: i64 = 500;

/// How many data keys one master key wraps (`master_key` `None`: the
/// tombstones of forgotten users).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KeyCount {
    pub master_key: Option<String>,
    pub keys: i64,
    /// Whether the key file holds this master key.
    pub held: bool,
    /// Whether it is the current one.
    pub current: bool,
}

impl Keyring {
    /// Re-wraps every data key that another master key wraps under the
    /// current one, a batch at a time, each row only if it is still as it
    /// was read (a concurrent forget wins). Returns how many it re-wrapped.
    ///
    /// # Errors
    /// A key wrapped by a master key the file does not hold; database errors.
    pub async fn rewrap(&self) -> Result<u64, StoreError> {
        let mut done = 0;
        loop {
            let masters = self.masters();
            let current = masters.current();
            let rows: Vec<(String, String, String)> = on_pool!(&self.inner.db, |p| {
                sqlx::query_as(
                    "SELECT subject, master_key, wrapped FROM data_keys \
                     WHERE master_key IS NOT NULL AND master_key <> $1 \
                     ORDER BY subject LIMIT $2",
                )
                .bind(&current.id)
                .bind(REWRAP_CHUNK)
                .fetch_all(p)
                .await?
            });
            if rows.is_empty() {
                return Ok(done);
            }
            for (subject, master, wrapped) in &rows {
                let key = self.unwrap(subject, master, wrapped)?;
                let rewrapped = current.wrap(subject, &key);
                let changed = on_pool!(&self.inner.db, |p| {
                    sqlx::query(
                        "UPDATE data_keys SET master_key = $1, wrapped = $2 \
                         WHERE subject = $3 AND master_key = $4 AND wrapped = $5",
                    )
                    .bind(&current.id)
                    .bind(&rewrapped)
                    .bind(subject)
                    .bind(master)
                    .bind(wrapped)
                    .execute(p)
                    .await?
                    .rows_affected()
                });
                done += changed;
            }
        }
    }

    /// How many keys each master key wraps, and the tombstones.
    ///
    /// # Errors
    /// Database errors.
    pub async fn census(&self) -> Result<Vec<KeyCount>, StoreError> {
        let rows: Vec<(Option<String>, i64)> = on_pool!(&self.inner.db, |p| {
            sqlx::query_as(
                "SELECT master_key, count(*) FROM data_keys GROUP BY master_key ORDER BY master_key",
            )
            .fetch_all(p)
            .await?
        });
        let masters = self.masters();
        let ids = masters.ids();
        Ok(rows
            .into_iter()
            .map(|(master_key, keys)| KeyCount {
                held: master_key.as_ref().is_none_or(|m| ids.contains(m)),
                current: master_key.as_deref() == Some(ids[0].as_str()),
                master_key,
                keys,
            })
            .collect())
    }

    /// Creates the data keys of `users` (new users: a seed) in a few
    /// multi-row statements, and caches them.
    ///
    /// # Errors
    /// Database errors.
    pub async fn prepare(&self, users: &[Uuid]) -> Result<(), StoreError> {
        let masters = self.masters();
        let master = masters.current();
        for chunk in users.chunks(300) {
            let rows: Vec<(String, String)> = chunk
                .iter()
                .map(|u| {
                    let subject = u.to_string();
                    let wrapped = master.wrap(&subject, &cipher::random_key());
                    (subject, wrapped)
                })
                .collect();
            let sql = format!(
                "INSERT INTO data_keys (subject, master_key, wrapped) VALUES {} \
                 ON CONFLICT (subject) DO NOTHING",
                values_rows(rows.len(), &["", "", ""])
            );
            on_pool!(&self.inner.db, |p| {
                let mut q = sqlx::query(&sql);
                for (subject, wrapped) in &rows {
                    q = q.bind(subject).bind(&master.id).bind(wrapped);
                }
                q.execute(p).await?.rows_affected()
            });
            let subjects: Vec<String> = rows.into_iter().map(|(s, _)| s).collect();
            self.load_keys(&subjects).await?;
        }
        Ok(())
    }

    /// Every row of `data_keys` as stored (still wrapped; tombstones too),
    /// for an archive.
    ///
    /// # Errors
    /// Database errors.
    pub async fn stored_keys(db: &Database) -> Result<Vec<StoredKey>, StoreError> {
        Ok(on_pool!(db, |p| {
            sqlx::query_as::<_, (String, Option<String>, Option<String>)>(
                "SELECT subject, master_key, wrapped FROM data_keys ORDER BY subject",
            )
            .fetch_all(p)
            .await?
        })
        .into_iter()
        .map(|(subject, master_key, wrapped)| StoredKey {
            subject,
            master_key,
            wrapped,
        })
        .collect())
    }

    /// Writes archived `keys` into `db` (rows it holds stay, except an
    /// e-mail index key of its own: the archive's hashes need the archive's).
    ///
    /// # Errors
    /// Database errors.
    pub async fn restore_keys(db: &Database, keys: &[StoredKey]) -> Result<u64, StoreError> {
        let mut n = 0;
        on_pool!(db, |p| {
            let mut tx = p.begin().await?;
            sqlx::query("DELETE FROM data_keys WHERE subject = 'email-index'")
                .execute(&mut *tx)
                .await?;
            for k in keys {
                n += sqlx::query(
                    "INSERT INTO data_keys (subject, master_key, wrapped) VALUES ($1, $2, $3) \
                     ON CONFLICT (subject) DO NOTHING",
                )
                .bind(&k.subject)
                .bind(&k.master_key)
                .bind(&k.wrapped)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            }
            tx.commit().await?;
        });
        Ok(n)
    }
}

/// One row of `data_keys` as stored: a wrapped key, or a forgotten user's
/// tombstone (both `None`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredKey {
    pub subject: String,
    pub master_key: Option<String>,
    pub wrapped: Option<String>,
}
