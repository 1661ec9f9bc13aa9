//! `/v1/users`: sign-up, profile, (de)activation.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::Response;
use commands::{Commands, SignUp};
use domain::{Email, Locale, PersonName, ShippingAddress};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{accepted, valid, Accepted, CommandErrors, Fields};
use crate::auth::{Caller, Role};
use crate::error::ApiError;
use crate::extract::{Context, Invocation, JsonBody};

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
    /// Preferred language tag (`en`, `de-AT`, `pt-BR`); `en` when absent.
    #[schema(example = "en")]
    #[serde(default)]
    pub locale: Option<String>,
    /// Whether the user agrees to marketing messages; `false` when absent.
    #[serde(default)]
    pub marketing_consent: Option<bool>,
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
    Uuid::parse_str(raw).map_err(|_| ApiError::not_found(format!("{what} {raw} not found")))
}

/// Sign up (public). With an identity provider's token, the new user is
/// linked to the caller's identity there, and that identity's tokens act as
/// this user from then on (a second sign-up of the identity: `409
/// identity_taken`).
#[utoipa::path(post, path = "/v1/users", tag = "users", request_body = RegisterUser,
    responses((status = 201, description = "Registered", body = Accepted), CommandErrors),
    security((), ("bearer" = [])))]
pub async fn register(
    State(commands): State<Arc<Commands>>,
    who: Option<Caller>,
    Context(ctx): Context,
    JsonBody(body): JsonBody<RegisterUser>,
) -> Result<Response, ApiError> {
    let mut f = Fields::default();
    let email = f.take(Email::parse(&body.email));
    let name = f.take(PersonName::parse("name", &body.name));
    let locale = match &body.locale {
        Some(raw) => f.take(Locale::parse("locale", raw)),
        None => Some(Locale::default()),
    };
    f.finish()?;
    let sign_up = SignUp {
        email: valid(email)?,
        name: valid(name)?,
        locale: valid(locale)?,
        marketing_consent: body.marketing_consent.unwrap_or(false),
    };
    let who = who.map(|Caller(p)| p);
    let done = commands.register(&ctx, sign_up, who.as_ref()).await?;
    Ok(accepted(done, Some("/v1/users")))
}

/// Change name and/or shipping address (the user or an admin).
#[utoipa::path(patch, path = "/v1/users/{id}", tag = "users", operation_id = "update_user", request_body = UpdateUser,
    params(("id" = String, Path, description = "User id")),
    responses((status = 200, description = "Updated", body = Accepted), CommandErrors),
    security(("bearer" = [])))]
pub async fn update(
    call: Invocation,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<UpdateUser>,
) -> Result<Response, ApiError> {
    call.principal.require(&[Role::Customer, Role::Admin])?;
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
    let done = call
        .commands
        .update_profile(
            &call.principal,
            &call.ctx,
            user_id,
            name.flatten(),
            address.flatten(),
        )
        .await?;
    Ok(accepted(done, None))
}

/// Deactivate a user (admin).
#[utoipa::path(post, path = "/v1/users/{id}/deactivate", tag = "users",
    params(("id" = String, Path, description = "User id")),
    responses((status = 200, description = "Deactivated", body = Accepted), CommandErrors),
    security(("bearer" = [])))]
pub async fn deactivate(call: Invocation, Path(id): Path<String>) -> Result<Response, ApiError> {
    toggle(&call, &id, false).await
}

/// Reactivate a user (admin).
#[utoipa::path(post, path = "/v1/users/{id}/reactivate", tag = "users",
    params(("id" = String, Path, description = "User id")),
    responses((status = 200, description = "Reactivated", body = Accepted), CommandErrors),
    security(("bearer" = [])))]
pub async fn reactivate(call: Invocation, Path(id): Path<String>) -> Result<Response, ApiError> {
    toggle(&call, &id, true).await
}

/// Forget a user (admin): their data key is erased, so their e-mail
/// address, name and shipping address can never be read again from the
/// log, the read models or any Kafka record; `UserForgotten` is appended
/// and the address is free for a new sign-up. A second forget: `409
/// user_already_forgotten`.
#[utoipa::path(post, path = "/v1/users/{id}/forget", tag = "users",
    params(("id" = String, Path, description = "User id")),
    responses((status = 200, description = "Forgotten", body = Accepted), CommandErrors),
    security(("bearer" = [])))]
pub async fn forget(call: Invocation, Path(id): Path<String>) -> Result<Response, ApiError> {
    call.principal.require(&[Role::Admin])?;
    let user_id = path_uuid(&id, "user")?;
    let done = (call.commands)
        .forget(&call.principal, &call.ctx, user_id)
        .await?;
    Ok(accepted(done, None))
}

async fn toggle(call: &Invocation, id: &str, active: bool) -> Result<Response, ApiError> {
    call.principal.require(&[Role::Admin])?;
    let user_id = path_uuid(id, "user")?;
    let done = (call.commands)
        .set_active(&call.principal, &call.ctx, user_id, active)
        .await?;
    Ok(accepted(done, None))
}
