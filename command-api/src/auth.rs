//! Authentication for the command API: the shared `auth` crate, plus the
//! axum extractor for the caller.

use std::sync::Arc;

pub use ::auth::*;
use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;

use crate::error::ApiError;

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
        Ok(Caller(authenticate(&auth, &parts.headers)?))
    }
}
