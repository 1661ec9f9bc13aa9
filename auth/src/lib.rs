//! Bearer authentication shared by shopstream's services, on the
//! maintained `jsonwebtoken` library: HS256 tokens signed with the
//! platform's own secret (the embedded default, `shopstream token`), and
//! RS256 / ES256 / EdDSA tokens of an identity provider, verified with the
//! keys its JWKS publishes (OIDC discovery or a JWKS URL).
//!
//! # Layout
//! - [`Secret`]: a secret that never prints.
//! - `local`: [`LocalTokens`], the HS256 tokens of the platform's secret ([`Claims`], [`TokenError`]).
//! - `provider`: [`Provider`], an identity provider's keys (cached, refetched
//!   on an unknown `kid` at most once per interval), claims and roles.
//! - `authenticator`: [`Authenticator`], which of the two a token is, and the
//!   customer's user id behind a provider subject ([`Identities`]);
//!   [`authenticate`] reads `Authorization: Bearer …` ([`AuthError`]).
//! - [`Principal`], [`Role`]: the authenticated caller and what it may do.
//! - `origins`: [`Origins`], the browser origins allowed (CORS, WebSocket `Origin`).
//! - `rate`: per-caller token buckets ([`rate::Limiter`]) and the client address.

mod authenticator;
mod local;
pub mod origins;
pub mod provider;
pub mod rate;
mod roles;

pub use authenticator::{authenticate, Authenticator, Identities, IdentityLookup};
pub use local::{Claims, LocalTokens, TokenError, DEFAULT_MAX_TOKEN_LIFETIME};
pub use origins::{BadOrigin, Origins};
pub use provider::{Provider, ProviderSettings};

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Tokens larger than this are rejected before any decoding.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;
/// The shortest secret accepted for signing.
pub const MIN_SECRET_LEN: usize = 32;

/// A secret that never prints.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself; call only where it is used.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// What a caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A shopper: acts on their own user, orders and payments.
    Customer,
    /// An operator: everything.
    Admin,
    /// Another system (payment provider, warehouse): payments and fulfilment.
    Service,
    /// Reads analytics; changes nothing.
    Analyst,
}

impl Role {
    /// The role's name, as in tokens and `--role-mapping`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Customer => "customer",
            Self::Admin => "admin",
            Self::Service => "service",
            Self::Analyst => "analyst",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "customer" => Ok(Self::Customer),
            "admin" => Ok(Self::Admin),
            "service" => Ok(Self::Service),
            "analyst" => Ok(Self::Analyst),
            other => Err(format!(
                "unknown role '{other}' (customer, admin, service or analyst)"
            )),
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    /// The token's subject: a user id for the platform's own customer
    /// tokens; for a provider's tokens, the provider's subject.
    pub sub: String,
    pub role: Role,
    /// The customer's user id (for provider tokens: the user this identity
    /// signed up as; `None` before sign-up).
    user: Option<Uuid>,
    /// A provider token's identity (`<issuer>#<subject>`), which sign-up
    /// links to the new user.
    identity: Option<String>,
}

impl Principal {
    /// A caller of the platform's own tokens (or an in-process one): a
    /// customer's `sub` is their user id.
    pub fn new(sub: impl Into<String>, role: Role) -> Self {
        let sub = sub.into();
        let user = match role {
            Role::Customer => Uuid::parse_str(&sub).ok(),
            _ => None,
        };
        Self {
            sub,
            role,
            user,
            identity: None,
        }
    }

    /// A caller of an identity provider's token: `identity` names them at
    /// the provider, `user` is the user it is linked to, if any.
    pub fn from_provider(sub: String, role: Role, identity: String, user: Option<Uuid>) -> Self {
        Self {
            sub,
            role,
            user: if role == Role::Customer { user } else { None },
            identity: Some(identity),
        }
    }

    /// The caller's user id, for customers (a provider's customer: once
    /// signed up).
    pub fn user_id(&self) -> Option<Uuid> {
        self.user
    }

    /// The provider identity behind this caller, if the token is a provider's.
    pub fn identity(&self) -> Option<&str> {
        self.identity.as_deref()
    }
    /// Whether the caller is an admin.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Requires one of `roles`.
    ///
    /// # Errors
    /// [`AuthError::Forbidden`].
    pub fn require(&self, roles: &[Role]) -> Result<(), AuthError> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            Err(AuthError::Forbidden(format!(
                "this action needs the role {}",
                roles
                    .iter()
                    .map(|r| format!("{r:?}").to_lowercase())
                    .collect::<Vec<_>>()
                    .join(" or ")
            )))
        }
    }

    /// Whether the caller may act on something that belongs to `owner`:
    /// customers on their own things, admins (and, where `services` is
    /// true, services) on everything.
    pub fn may_act_for(&self, owner: Option<Uuid>, services: bool) -> bool {
        match self.role {
            Role::Admin => true,
            Role::Service => services,
            Role::Customer => owner.is_some() && self.user_id() == owner,
            Role::Analyst => false,
        }
    }

    /// A stable string naming this caller (idempotency scope, metadata,
    /// rate limits): a customer by user id once known.
    pub fn scope(&self) -> String {
        match (self.user, &self.identity) {
            (Some(user), _) => format!("{}:{user}", self.role.name()),
            (None, Some(identity)) => format!("{}:{identity}", self.role.name()),
            (None, None) => format!("{}:{}", self.role.name(), self.sub),
        }
    }
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No valid bearer token.
    #[error("{0}")]
    Unauthenticated(String),
    /// A valid token whose role may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The token cannot be checked now: the identity provider's keys are
    /// not known yet, or the identity store does not answer.
    #[error("{0}")]
    Unavailable(String),
}
