//! `/v1/users`: sign-up, profile, (de)activation.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::Response;
use chrono::Utc;
use cqrs_es::Aggregate;
use domain::user::UserCommand;
use domain::{Email, PersonName, ShippingAddress, User};
use eventlog::{Reservation, Source};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{accepted, valid, CommandErrors, Fields};
use crate::auth::{Caller, Principal, Role};
use crate::error::ApiError;
use crate::extract::{CommandContext, JsonBody};
use crate::service::{count_outcome, execute, observe_append, Accepted, Commands, Mode, Outcome};

/// A reservation older than this whose user never registered was left by a
/// process that died mid-registration; it may be reclaimed.
const ORPHANED_RESERVATION: Duration = Duration::from_secs(30);

/// Sign-up.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterUser {
    /// E-mail address; normalized (trimmed, lower-cased) and unique.
    #[schema(example = "ada@example.com")]
    pub email: String,
    /// Display name, 1..=200 characters.
    #[schema(example = "Ada Lovelace")]
    pub name: String,
}

/// A shipping address.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddressBody {
    pub line1: String,
    #[serde(default)]
    pub line2: Option<String>,
    pub city: String,
    pub postal_code: String,
    /// ISO 3166-1 alpha-2, e.g. `DE`.
    pub country: String,
}

/// Profile changes; absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub shipping_address: Option<AddressBody>,
}

/// Parses a path id; anything that is not a UUID names no user.
pub fn path_uuid(raw: &str, what: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::NotFound(format!("{what} {raw} not found")))
}

/// Sign up (public).
#[utoipa::path(post, path = "/v1/users", tag = "users", request_body = RegisterUser,
    responses((status = 201, description = "Registered", body = Accepted), CommandErrors))]
pub async fn register(
    State(commands): State<Arc<Commands>>,
    ctx: CommandContext,
    JsonBody(body): JsonBody<RegisterUser>,
) -> Result<Response, ApiError> {
    let mut f = Fields::default();
    let email = f.take(Email::parse(&body.email));
    let name = f.take(PersonName::parse("name", &body.name));
    f.finish()?;
    let (email, name) = (valid(email)?, valid(name)?);
    let user_id = Uuid::new_v4();
    let id = user_id.to_string();
    if commands.users.claims_emails_in_the_append() {
        let command = UserCommand::Register {
            user_id,
            email: email.clone(),
            name: name.clone(),
            at: Utc::now(),
        };
        match register_claiming(&commands, &ctx, &id, command, email.as_str()).await {
            Ok(o) => return Ok(accepted(&id, o, Some(format!("/v1/users/{id}")))),
            // The address is taken: the reservation path below says by
            // whom (or reclaims an orphaned reservation).
            Err(ApiError::ConcurrentModification) => {}
            Err(e) => return Err(e),
        }
    }
    reserve_email(&commands, email.as_str(), &id).await?;
    let outcome = execute(
        &commands.users,
        &id,
        Mode::Create,
        None,
        &ctx,
        |_: &User| true,
        |_| {
            Ok(UserCommand::Register {
                user_id,
                email: email.clone(),
                name: name.clone(),
                at: Utc::now(),
            })
        },
    )
    .await;
    match outcome {
        Ok(o) => Ok(accepted(&id, o, Some(format!("/v1/users/{id}")))),
        Err(e) => {
            // Give the address back, unless the user was appended after all.
            let appended = commands
                .users
                .load(&id)
                .await
                .map_or(true, |l| l.version() > 0);
            if !appended {
                if let Err(release) = commands.emails.release(email.as_str(), &id).await {
                    tracing::warn!(error = %release, "could not release an e-mail reservation");
                }
            }
            Err(e)
        }
    }
}

/// Registration in one statement (PostgreSQL): the `UserRegistered` event
/// and the address's reservation, both or neither; 409
/// `concurrent_modification` when the address is taken.
async fn register_claiming(
    commands: &Commands,
    ctx: &CommandContext,
    id: &str,
    command: UserCommand,
    email: &str,
) -> Result<Outcome, ApiError> {
    let loaded = commands.users.read(id, Source::Cache, true).await?;
    let events = commands.users.decide(&loaded, command, &()).await?;
    let started = std::time::Instant::now();
    let committed = commands
        .users
        .commit_claiming_email(loaded, events, ctx.metadata("anonymous"), email)
        .await;
    observe_append(User::TYPE, started);
    let result = committed.map_err(ApiError::from).map(|c| Outcome {
        version: c.version,
        position: c.position,
    });
    if result.is_ok() {
        count_outcome(User::TYPE, &result);
    }
    result
}

/// One user per address: the reservation's primary key decides races.
async fn reserve_email(commands: &Commands, email: &str, user_id: &str) -> Result<(), ApiError> {
    match commands.emails.reserve(email, user_id).await? {
        Reservation::Reserved => Ok(()),
        Reservation::Taken {
            user_id: holder,
            age,
        } => {
            let registered = commands.users.load(&holder).await?.version() > 0;
            if !registered
                && age > ORPHANED_RESERVATION
                && commands.emails.transfer(email, &holder, user_id).await?
            {
                return Ok(());
            }
            Err(ApiError::EmailTaken)
        }
    }
}

/// Change name and/or shipping address (the user or an admin).
#[utoipa::path(patch, path = "/v1/users/{id}", tag = "users", operation_id = "update_user", request_body = UpdateUser,
    params(("id" = String, Path, description = "User id")),
    responses((status = 200, description = "Updated", body = Accepted), CommandErrors),
    security(("bearer" = [])))]
pub async fn update(
    State(commands): State<Arc<Commands>>,
    Caller(principal): Caller,
    Path(id): Path<String>,
    ctx: CommandContext,
    JsonBody(body): JsonBody<UpdateUser>,
) -> Result<Response, ApiError> {
    principal.require(&[Role::Customer, Role::Admin])?;
    let user_id = path_uuid(&id, "user")?;
    let mut f = Fields::default();
    let name = body
        .name
        .as_deref()
        .map(|n| f.take(PersonName::parse("name", n)));
    let address = body.shipping_address.as_ref().map(|a| {
        f.take_many(ShippingAddress::parse(
            &a.line1,
            a.line2.as_deref(),
            &a.city,
            &a.postal_code,
            &a.country,
        ))
    });
    if name.is_none() && address.is_none() {
        return Err(ApiError::field(
            "$",
            "nothing_to_change",
            "send name and/or shipping_address",
        ));
    }
    f.finish()?;
    let id = user_id.to_string();
    let outcome = execute(
        &commands.users,
        &id,
        Mode::Update,
        Some(&principal),
        &ctx,
        |_: &User| principal.may_act_for(Some(user_id), false),
        |_| {
            Ok(UserCommand::UpdateProfile {
                name: name.clone().flatten(),
                shipping_address: address.clone().flatten(),
                at: Utc::now(),
            })
        },
    )
    .await?;
    Ok(accepted(&id, outcome, None))
}

/// Deactivate a user (admin).
#[utoipa::path(post, path = "/v1/users/{id}/deactivate", tag = "users",
    params(("id" = String, Path, description = "User id")),
    responses((status = 200, description = "Deactivated", body = Accepted), CommandErrors),
    security(("bearer" = [])))]
pub async fn deactivate(
    State(commands): State<Arc<Commands>>,
    Caller(principal): Caller,
    Path(id): Path<String>,
    ctx: CommandContext,
) -> Result<Response, ApiError> {
    toggle(&commands, &principal, &id, &ctx, false).await
}

/// Reactivate a user (admin).
#[utoipa::path(post, path = "/v1/users/{id}/reactivate", tag = "users",
    params(("id" = String, Path, description = "User id")),
    responses((status = 200, description = "Reactivated", body = Accepted), CommandErrors),
    security(("bearer" = [])))]
pub async fn reactivate(
    State(commands): State<Arc<Commands>>,
    Caller(principal): Caller,
    Path(id): Path<String>,
    ctx: CommandContext,
) -> Result<Response, ApiError> {
    toggle(&commands, &principal, &id, &ctx, true).await
}

async fn toggle(
    commands: &Commands,
    principal: &Principal,
    id: &str,
    ctx: &CommandContext,
    active: bool,
) -> Result<Response, ApiError> {
    principal.require(&[Role::Admin])?;
    let id = path_uuid(id, "user")?.to_string();
    let outcome = execute(
        &commands.users,
        &id,
        Mode::Update,
        Some(principal),
        ctx,
        |_: &User| true,
        |_| {
            let at = Utc::now();
            Ok(if active {
                UserCommand::Reactivate { at }
            } else {
                UserCommand::Deactivate { at }
            })
        },
    )
    .await?;
    Ok(accepted(&id, outcome, None))
}
