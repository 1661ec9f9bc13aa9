//! Users: sign-up (one user per e-mail address), profile, (de)activation.

use std::time::{Duration, Instant};

use auth::{Principal, Role};
use chrono::Utc;
use cqrs_es::Aggregate;
use domain::user::UserCommand;
use domain::{Email, PersonName, ShippingAddress, User};
use eventlog::{Reservation, Source};
use uuid::Uuid;

use crate::run::{count_outcome, observe_append, read, Attempt, Done, Mode};
use crate::{CommandContext, CommandError, Commands};

/// A reservation older than this whose user never registered was left by a
/// process that died mid-registration; it may be reclaimed.
const ORPHANED_RESERVATION: Duration = Duration::from_secs(30);

impl Commands {
    /// Signs up a new user with a unique e-mail address (anyone).
    ///
    /// # Errors
    /// [`CommandError::EmailTaken`] when another user holds the address.
    pub async fn register(
        &self,
        ctx: &CommandContext,
        email: Email,
        name: PersonName,
    ) -> Result<Done, CommandError> {
        let user_id = Uuid::new_v4();
        let id = user_id.to_string();
        let command = || UserCommand::Register {
            user_id,
            email: email.clone(),
            name: name.clone(),
            at: Utc::now(),
        };
        if self.users.claims_emails_in_the_append() {
            match self
                .register_claiming(ctx, &id, command(), email.as_str())
                .await
            {
                // The address is taken: the reservation path below says by
                // whom (or reclaims an orphaned reservation).
                Err(CommandError::ConcurrentModification) => {}
                done => return done,
            }
        }
        self.reserve_email(email.as_str(), &id).await?;
        let outcome = self
            .run(User::TYPE, |source| {
                Attempt::new(&self.users, &id, Mode::Create, None, ctx).decide(
                    source,
                    |_| true,
                    |_| Ok(command()),
                )
            })
            .await;
        if outcome.is_err() {
            // Give the address back, unless the user was appended after all.
            let appended = self.users.load(&id).await.map_or(true, |l| l.version() > 0);
            if !appended {
                if let Err(release) = self.emails.release(email.as_str(), &id).await {
                    tracing::warn!(error = %release, "could not release an e-mail reservation");
                }
            }
        }
        outcome
    }

    /// Registration in one statement (PostgreSQL): the `UserRegistered`
    /// event and the address's reservation, both or neither; a conflict
    /// when the address is taken.
    async fn register_claiming(
        &self,
        ctx: &CommandContext,
        id: &str,
        command: UserCommand,
        email: &str,
    ) -> Result<Done, CommandError> {
        let loaded = read(&self.users, id, Source::Cache, true).await?;
        let events = self.users.decide(&loaded, command, &()).await?;
        let started = Instant::now();
        let committed = self
            .users
            .commit_claiming_email(loaded, events, ctx.metadata("anonymous"), email)
            .await;
        observe_append(User::TYPE, started);
        let result = committed.map_err(CommandError::from).map(|c| Done {
            id: id.to_string(),
            version: c.version,
            position: c.position,
        });
        if result.is_ok() {
            count_outcome(User::TYPE, &result);
        }
        result
    }

    /// One user per address: the reservation's primary key decides races.
    async fn reserve_email(&self, email: &str, user_id: &str) -> Result<(), CommandError> {
        match self.emails.reserve(email, user_id).await? {
            Reservation::Reserved => Ok(()),
            Reservation::Taken {
                user_id: holder,
                age,
            } => {
                let registered = self.users.load(&holder).await?.version() > 0;
                if !registered
                    && age > ORPHANED_RESERVATION
                    && self.emails.transfer(email, &holder, user_id).await?
                {
                    return Ok(());
                }
                Err(CommandError::EmailTaken)
            }
        }
    }

    /// Changes a user's name and/or shipping address (the user or an admin).
    ///
    /// # Errors
    /// 404-like [`CommandError::NotFound`] for users the caller may not see.
    pub async fn update_profile(
        &self,
        who: &Principal,
        ctx: &CommandContext,
        user_id: Uuid,
        name: Option<PersonName>,
        shipping_address: Option<ShippingAddress>,
    ) -> Result<Done, CommandError> {
        let id = user_id.to_string();
        self.run(User::TYPE, |source| {
            Attempt::new(&self.users, &id, Mode::Update, Some(who), ctx).decide(
                source,
                |_| who.may_act_for(Some(user_id), false),
                |_| {
                    Ok(UserCommand::UpdateProfile {
                        name: name.clone(),
                        shipping_address: shipping_address.clone(),
                        at: Utc::now(),
                    })
                },
            )
        })
        .await
    }

    /// Deactivates or reactivates a user (admin).
    ///
    /// # Errors
    /// [`CommandError::Forbidden`] for other roles; unknown users.
    pub async fn set_active(
        &self,
        who: &Principal,
        ctx: &CommandContext,
        user_id: Uuid,
        active: bool,
    ) -> Result<Done, CommandError> {
        who.require(&[Role::Admin])?;
        let id = user_id.to_string();
        self.run(User::TYPE, |source| {
            Attempt::new(&self.users, &id, Mode::Update, Some(who), ctx).decide(
                source,
                |_| true,
                |_| {
                    let at = Utc::now();
                    Ok(if active {
                        UserCommand::Reactivate { at }
                    } else {
                        UserCommand::Deactivate { at }
                    })
                },
            )
        })
        .await
    }
}
