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

/// One user per e-mail address, decided by a primary key so that racing
/// registrations cannot both win.
#[derive(Debug, Clone)]
pub struct EmailRegistry {
    db: Database,
}

impl EmailRegistry {
    /// A registry over `db`.
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// Reserves `email` for `user_id`.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn reserve(&self, email: &str, user_id: &str) -> Result<Reservation, StoreError> {
        let insert =
            "INSERT INTO user_emails (email, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING";
        let select = self.db.dialect(
            "SELECT user_id, EXTRACT(EPOCH FROM clock_timestamp() - reserved_at)::float8 \
             FROM user_emails WHERE email = $1",
            "SELECT user_id, (julianday('now') - julianday(reserved_at)) * 86400.0 \
             FROM user_emails WHERE email = $1",
        );
        let (inserted, holder): (u64, Option<(String, f64)>) = on_pool!(&self.db, |p| {
            let n = sqlx::query(insert)
                .bind(email)
                .bind(user_id)
                .execute(p)
                .await?
                .rows_affected();
            let holder = if n == 1 {
                None
            } else {
                sqlx::query_as(select).bind(email).fetch_optional(p).await?
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
        let sql = "UPDATE user_emails SET user_id = $1 WHERE email = $2 AND user_id = $3";
        let n = on_pool!(&self.db, |p| {
            sqlx::query(sql)
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
        let sql = "DELETE FROM user_emails WHERE email = $1 AND user_id = $2";
        on_pool!(&self.db, |p| {
            sqlx::query(sql)
                .bind(email)
                .bind(user_id)
                .execute(p)
                .await?;
        });
        Ok(())
    }
}
