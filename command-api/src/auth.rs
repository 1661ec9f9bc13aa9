//! Authentication for the command API: the shared `auth` crate, the
//! caller verified once per request, and the axum extractor for it.

use std::sync::Arc;

pub use ::auth::*;
use axum::extract::{FromRef, FromRequestParts, OptionalFromRequestParts};
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap};

use crate::error::ApiError;

/// The outcome of verifying a request's token, kept in its extensions so
/// that the rate limit, the idempotency layer and the handler verify once.
#[derive(Clone)]
struct Verified(Result<Principal, AuthError>);

/// The request's caller (verified on first use, remembered after).
///
/// # Errors
/// As [`authenticate`].
pub async fn caller(
    auth: &Authenticator,
    headers: &HeaderMap,
    extensions: &mut Extensions,
) -> Result<Principal, AuthError> {
    if let Some(Verified(result)) = extensions.get::<Verified>() {
        return result.clone();
    }
    let result = authenticate(auth, headers).await;
    extensions.insert(Verified(result.clone()));
    result
}

/// The authenticated caller, extracted from `Authorization: Bearer …`.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

impl<S> FromRequestParts<S> for Caller
where
    Arc<Authenticator>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let auth = Arc::<Authenticator>::from_ref(state);
        Ok(Caller(
            caller(&auth, &parts.headers, &mut parts.extensions).await?,
        ))
    }
}

/// `Option<Caller>`: the caller if the request carries a token (sign-up:
/// anonymous, or a provider's token whose identity the new user is linked to).
impl<S> OptionalFromRequestParts<S> for Caller
where
    Arc<Authenticator>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Option<Self>, ApiError> {
        if !parts
            .headers
            .contains_key(axum::http::header::AUTHORIZATION)
        {
            return Ok(None);
        }
        <Self as FromRequestParts<S>>::from_request_parts(parts, state)
            .await
            .map(Some)
    }
}
