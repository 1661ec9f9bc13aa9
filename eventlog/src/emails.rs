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
        let select = "SELECT user_id FROM user_emails WHERE email = $1";
        let (inserted, holder): (u64, Option<String>) = match &self.db {
            Database::Postgres(p) => {
                let n = sqlx::query(insert)
                    .bind(email)
                    .bind(user_id)
                    .execute(p)
                    .await?
                    .rows_affected();
                (
                    n,
                    if n == 1 {
                        None
                    } else {
                        sqlx::query_scalar(select)
                            .bind(email)
                            .fetch_optional(p)
                            .await?
                    },
                )
            }
            Database::Sqlite(p) => {
                let n = sqlx::query(insert)
                    .bind(email)
                    .bind(user_id)
                    .execute(p)
                    .await?
                    .rows_affected();
                (
                    n,
                    if n == 1 {
                        None
                    } else {
                        sqlx::query_scalar(select)
                            .bind(email)
                            .fetch_optional(p)
                            .await?
                    },
                )
            }
        };
        match (inserted, holder) {
            (1, _) => Ok(Reservation::Reserved),
            (_, Some(user_id)) => Ok(Reservation::Taken { user_id }),
            // Released between insert and select: try again.
            (_, None) => Box::pin(self.reserve(email, user_id)).await,
        }
    }

    /// Moves a reservation from `from_user` (whose registration never
    /// committed) to `to_user`. Exactly one of concurrent callers wins.
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
        let n = match &self.db {
            Database::Postgres(p) => {
                sqlx::query(sql)
                    .bind(to_user)
                    .bind(email)
                    .bind(from_user)
                    .execute(p)
                    .await?
            }
            Database::Sqlite(p) => {
                return Ok(sqlx::query(sql)
                    .bind(to_user)
                    .bind(email)
                    .bind(from_user)
                    .execute(p)
                    .await?
                    .rows_affected()
                    == 1)
            }
        };
        Ok(n.rows_affected() == 1)
    }

    /// Releases `email` if `user_id` holds it (its registration failed).
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn release(&self, email: &str, user_id: &str) -> Result<(), StoreError> {
        let sql = "DELETE FROM user_emails WHERE email = $1 AND user_id = $2";
        match &self.db {
            Database::Postgres(p) => {
                sqlx::query(sql)
                    .bind(email)
                    .bind(user_id)
                    .execute(p)
                    .await?;
            }
            Database::Sqlite(p) => {
                sqlx::query(sql)
                    .bind(email)
                    .bind(user_id)
                    .execute(p)
                    .await?;
            }
        }
        Ok(())
    }
}
