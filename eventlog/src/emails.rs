use crate::db::on_pool;
use crate::{Database, StoreError};

/// The outcome of reserving an e-mail address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// The address is now reserved for the requesting user.
    Reserved,
    /// Another user holds it.
    Taken {
        /// The holder.
        user_id: String,
        /// How long ago the holder reserved it.
        age: std::time::Duration,
    },
}

/// One user per key (an e-mail address, a provider identity), decided by a
/// primary key so that racing registrations cannot both win.
#[derive(Debug, Clone)]
pub struct Reservations {
    db: Database,
    table: &'static str,
    key: &'static str,
}

/// One user per e-mail address (`user_emails`).
pub type EmailRegistry = Reservations;

impl Reservations {
    /// The e-mail addresses of `db`.
    pub fn new(db: Database) -> Self {
        Self::emails(db)
    }

    /// The e-mail addresses of `db` (`user_emails`).
    pub fn emails(db: Database) -> Self {
        Self {
            db,
            table: "user_emails",
            key: "email",
        }
    }

    /// The identity provider identities of `db` (`user_identities`).
    pub fn identities(db: Database) -> Self {
        Self {
            db,
            table: "user_identities",
            key: "identity",
        }
    }

    /// The user holding `key`, if any.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn holder(&self, key: &str) -> Result<Option<String>, StoreError> {
        let sql = format!("SELECT user_id FROM {} WHERE {} = $1", self.table, self.key);
        let holder: Option<(String,)> = on_pool!(&self.db, |p| {
            sqlx::query_as(&sql).bind(key).fetch_optional(p).await?
        });
        Ok(holder.map(|(user,)| user))
    }

    /// Reserves `email` for `user_id`.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn reserve(&self, email: &str, user_id: &str) -> Result<Reservation, StoreError> {
        let (table, key) = (self.table, self.key);
        let insert =
            format!("INSERT INTO {table} ({key}, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING");
        let select = format!(
            "{} FROM {table} WHERE {key} = $1",
            self.db.dialect(
                "SELECT user_id, EXTRACT(EPOCH FROM clock_timestamp() - reserved_at)::float8",
                "SELECT user_id, (julianday('now') - julianday(reserved_at)) * 86400.0",
            )
        );
        let (inserted, holder): (u64, Option<(String, f64)>) = on_pool!(&self.db, |p| {
            let n = sqlx::query(&insert)
                .bind(email)
                .bind(user_id)
                .execute(p)
                .await?
                .rows_affected();
            let holder = if n == 1 {
                None
            } else {
                sqlx::query_as(&select)
                    .bind(email)
                    .fetch_optional(p)
                    .await?
            };
            (n, holder)
        });
        match (inserted, holder) {
            (1, _) => Ok(Reservation::Reserved),
            (_, Some((user_id, age))) => Ok(Reservation::Taken {
                user_id,
                age: std::time::Duration::from_secs_f64(age.max(0.0)),
            }),
            // Released between insert and select: try again.
            (_, None) => Box::pin(self.reserve(email, user_id)).await,
        }
    }

    /// Moves a reservation from `from_user` (whose registration never
    /// committed: its process died between reserving and appending) to
    /// `to_user`. Exactly one of concurrent callers wins.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn transfer(
        &self,
        email: &str,
        from_user: &str,
        to_user: &str,
    ) -> Result<bool, StoreError> {
        let sql = format!(
            "UPDATE {} SET user_id = $1 WHERE {} = $2 AND user_id = $3",
            self.table, self.key
        );
        let n = on_pool!(&self.db, |p| {
            sqlx::query(&sql)
                .bind(to_user)
                .bind(email)
                .bind(from_user)
                .execute(p)
                .await?
                .rows_affected()
        });
        Ok(n == 1)
    }

    /// Releases `email` if `user_id` holds it (its registration failed).
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn release(&self, email: &str, user_id: &str) -> Result<(), StoreError> {
        let sql = format!(
            "DELETE FROM {} WHERE {} = $1 AND user_id = $2",
            self.table, self.key
        );
        on_pool!(&self.db, |p| {
            sqlx::query(&sql)
                .bind(email)
                .bind(user_id)
                .execute(p)
                .await?;
        });
        Ok(())
    }

    /// Releases every key `user_id` holds (a forgotten user's address or
    /// identity: free for a new sign-up). Returns how many it released.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn release_all(&self, user_id: &str) -> Result<u64, StoreError> {
        let sql = format!("DELETE FROM {} WHERE user_id = $1", self.table);
        Ok(on_pool!(&self.db, |p| {
            sqlx::query(&sql)
                .bind(user_id)
                .execute(p)
                .await?
                .rows_affected()
        }))
    }
}
