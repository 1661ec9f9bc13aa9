//! Users: sign-up (one user per e-mail address), profile, (de)activation.

use std::time::{Duration, Instant};

use auth::{Principal, Role};
use chrono::Utc;
use cqrs_es::Aggregate;
use domain::user::UserCommand;
use domain::{Email, Locale, PersonName, Personal, ShippingAddress, User};
use eventlog::{NewKey, Reservation, Reservations, Source};
use uuid::Uuid;

use crate::run::{count_outcome, observe_append, read, Attempt, Done, Mode};
use crate::{CommandContext, CommandError, Commands};

/// A reservation older than this whose user never registered was left by a
/// process that died mid-registration; it may be reclaimed.
const ORPHANED_RESERVATION: Duration = Duration::from_secs(30);

/// What a new user signs up with.
#[derive(Debug, Clone)]
pub struct SignUp {
    pub email: Email,
    pub name: PersonName,
    pub locale: Locale,
    pub marketing_consent: bool,
}

impl SignUp {
    /// `email` and `name`, with the default locale and no marketing consent.
    pub fn new(email: Email, name: PersonName) -> Self {
        Self {
            email,
            name,
            locale: Locale::default(),
            marketing_consent: false,
        }
    }
}

impl Commands {
    /// Signs up a new user with a unique e-mail address (anyone). With an
    /// identity provider's customer token (`who`), the new user is linked
    /// to that identity: its later tokens act as this user.
    ///
    /// # Errors
    /// [`CommandError::EmailTaken`] when another user holds the address,
    /// [`CommandError::IdentityTaken`] when the identity signed up before.
    pub async fn register(
        &self,
        ctx: &CommandContext,
        sign_up: SignUp,
        who: Option<&Principal>,
    ) -> Result<Done, CommandError> {
        let SignUp {
            email,
            name,
            locale,
            marketing_consent,
        } = sign_up;
        let identity = match who.map(|p| (p.identity(), p.user_id(), p.role)) {
            Some((Some(_), Some(user), _)) => {
                return Err(CommandError::IdentityTaken(user.to_string()))
            }
            Some((Some(identity), None, Role::Customer)) => Some(identity.to_string()),
            // Anonymous, a platform token, or a provider's staff: an
            // ordinary sign-up.
            _ => None,
        };
        let user_id = Uuid::new_v4();
        // The index holds a keyed hash of the address; the events, the
        // address and the name sealed with the new user's own key.
        // On PostgreSQL the key is stored by the registration's own append.
        let index = self.keys.email_index(&email).await?;
        let key = self.keys.new_key(user_id);
        let sealed = (key.seal("email", email)?, key.seal("name", name)?);
        let outcome = self
            .register_sealed(
                ctx,
                (user_id, &key),
                (sealed.0, sealed.1, &index),
                identity,
                locale,
                marketing_consent,
            )
            .await;
        outcome
    }

    /// Registration with the personal fields sealed and the address's index.
    async fn register_sealed(
        &self,
        ctx: &CommandContext,
        (user_id, key): (Uuid, &NewKey),
        (email, name, index): (Personal<Email>, Personal<PersonName>, &str),
        identity: Option<String>,
        locale: Locale,
        marketing_consent: bool,
    ) -> Result<Done, CommandError> {
        let id = user_id.to_string();
        let command = || UserCommand::Register {
            user_id,
            email: email.clone(),
            name: name.clone(),
            at: Utc::now(),
            identity: identity.clone(),
            locale: locale.clone(),
            marketing_consent,
        };
        if identity.is_none() && self.users.claims_emails_in_the_append() {
            match self
                .register_claiming(ctx, &id, command(), (index, key))
                .await
            {
                // The address is taken: the reservation path below says by
                // whom (or reclaims an orphaned reservation).
                Err(CommandError::ConcurrentModification) => {}
                done => {
                    if done.is_ok() {
                        self.keys.adopt(key);
                    }
                    return done;
                }
            }
        }
        self.keys.store_key(key).await?;
        let mut reserved = Vec::new();
        if let Some(identity) = &identity {
            self.reserve(&self.identities, identity, &id, CommandError::IdentityTaken)
                .await?;
            reserved.push((&self.identities, identity.as_str()));
        }
        let email_taken = |_| CommandError::EmailTaken;
        let outcome = match self.reserve(&self.emails, index, &id, email_taken).await {
            Ok(()) => {
                reserved.push((&self.emails, index));
                self.run(User::TYPE, |source| {
                    Attempt::new(&self.users, &id, Mode::Create, None, ctx).decide(
                        source,
                        |_| true,
                        |_| Ok(command()),
                    )
                })
                .await
            }
            Err(e) => Err(e),
        };
        if outcome.is_err() {
            // Give the reservations back, unless the user was appended after all.
            let appended = self.users.load(&id).await.map_or(true, |l| l.version() > 0);
            for (registry, key) in reserved.iter().filter(|_| !appended) {
                if let Err(release) = registry.release(key, &id).await {
                    tracing::warn!(error = %release, "could not release a sign-up reservation");
                }
            }
            if !appended {
                // The key of a user that never was.
                if let Err(e) = self.keys.discard(user_id).await {
                    tracing::warn!(error = %e, "could not delete a failed sign-up's data key");
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
        claim: (&str, &NewKey),
    ) -> Result<Done, CommandError> {
        let loaded = read(&self.users, id, Source::Cache, true).await?;
        let events = self.users.decide(&loaded, command, &()).await?;
        let started = Instant::now();
        let committed = self
            .users
            .commit_claiming_email(loaded, events, ctx.metadata("anonymous"), claim)
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

    /// One user per address (or identity): the reservation's primary key
    /// decides races.
    async fn reserve(
        &self,
        registry: &Reservations,
        key: &str,
        user_id: &str,
        taken: fn(String) -> CommandError,
    ) -> Result<(), CommandError> {
        match registry.reserve(key, user_id).await? {
            Reservation::Reserved => Ok(()),
            Reservation::Taken {
                user_id: holder,
                age,
            } => {
                let registered = self.users.load(&holder).await?.version() > 0;
                if !registered
                    && age > ORPHANED_RESERVATION
                    && registry.transfer(key, &holder, user_id).await?
                {
                    return Ok(());
                }
                Err(taken(holder))
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
        // Values are sealed only for a user that exists and that the
        // caller may act for (no key is made for a stranger's id).
        let known = read(&self.users, &id, Source::Cache, false)
            .await?
            .version()
            > 0;
        if !known || !who.may_act_for(Some(user_id), false) {
            return Err(CommandError::NotFound(format!("user {id} not found")));
        }
        let name = match name {
            Some(n) => Some(self.keys.seal(user_id, "name", n).await?),
            None => None,
        };
        let shipping_address = match shipping_address {
            Some(a) => Some(self.keys.seal(user_id, "shipping_address", a).await?),
            None => None,
        };
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

impl Commands {
    /// Forgets a user (admin): erases their data key, so every sealed value
    /// of theirs (in the log, the read models, the Kafka records) can never
    /// be read again; appends `UserForgotten`; frees their e-mail address
    /// and identity for a new sign-up. A forget interrupted after the key
    /// is erased completes when repeated.
    ///
    /// # Errors
    /// [`CommandError::Forbidden`] for other roles; unknown users;
    /// `user_already_forgotten` when it is repeated.
    pub async fn forget(
        &self,
        who: &Principal,
        ctx: &CommandContext,
        user_id: Uuid,
    ) -> Result<Done, CommandError> {
        who.require(&[Role::Admin])?;
        let id = user_id.to_string();
        let loaded = read(&self.users, &id, Source::Store, false).await?;
        if loaded.version() == 0 {
            return Err(CommandError::NotFound(format!("user {id} not found")));
        }
        if loaded.aggregate().forgotten {
            return Err(CommandError::Rule(domain::DomainError::conflict(
                "user_already_forgotten",
                "the user was forgotten already",
            )));
        }
        self.keys.forget(user_id).await?;
        let done = self
            .run(User::TYPE, |source| {
                Attempt::new(&self.users, &id, Mode::Update, Some(who), ctx).decide(
                    source,
                    |_| true,
                    |_| Ok(UserCommand::Forget { at: Utc::now() }),
                )
            })
            .await?;
        self.emails.release_all(&id).await?;
        self.identities.release_all(&id).await?;
        Ok(done)
    }
}

/// The identities provider customers signed up with (`user_identities`),
/// for the token verifier: a provider token's identity → its user.
#[derive(Debug, Clone)]
pub struct IdentityDirectory(Reservations);

impl IdentityDirectory {
    /// The identities of `db`.
    pub fn new(db: &eventlog::Database) -> Self {
        Self(Reservations::identities(db.clone()))
    }
}

impl auth::Identities for IdentityDirectory {
    fn user_of<'a>(&'a self, identity: &'a str) -> auth::IdentityLookup<'a> {
        Box::pin(async move {
            let holder = self.0.holder(identity).await.map_err(|e| e.to_string())?;
            Ok(holder.and_then(|user| Uuid::parse_str(&user).ok()))
        })
    }
}
