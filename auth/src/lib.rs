//! Bearer authentication shared by shopstream's services: HS256 JSON Web
//! Tokens with `sub`, `role`, `exp`.
//!
//! HS256 is small enough to implement here on `hmac` + `sha2`; the verifier
//! accepts only `alg: HS256` (never `none`), compares MACs in constant time
//! and requires an unexpired `exp`.
//!
//! # Layout
//! - [`Secret`]: a secret that never prints.
//! - [`Authenticator`]: signs and verifies tokens ([`Claims`], [`TokenError`]).
//! - [`Principal`], [`Role`]: the authenticated caller and what it may do.
//! - [`authenticate`]: reads `Authorization: Bearer …` ([`AuthError`]).
//! - `origins`: [`Origins`], the browser origins allowed (CORS, WebSocket `Origin`).
//! - `rate`: per-caller token buckets ([`rate::Limiter`]) and the client address.

pub mod origins;
pub mod rate;

pub use origins::{BadOrigin, Origins};

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::Utc;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use uuid::Uuid;

type HmacSha256 = Hmac<Sha256>;

/// Tokens larger than this are rejected before any decoding.
const MAX_TOKEN_LEN: usize = 8 * 1024;
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

/// The claims shopstream reads and writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    /// Subject: the user id for customers, a free name for admins and services.
    pub sub: String,
    pub role: Role,
    /// Expiry, seconds since the epoch. Required.
    pub exp: i64,
    /// Issued at, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
}

/// The longest lifetime (`exp` from now) a token may have, by default.
pub const DEFAULT_MAX_TOKEN_LIFETIME: std::time::Duration =
    std::time::Duration::from_secs(30 * 86_400);

/// Signs and verifies tokens with one HS256 secret.
#[derive(Clone)]
pub struct Authenticator {
    secret: Secret,
    max_lifetime: std::time::Duration,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator").finish_non_exhaustive()
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token is not signed with HS256")]
    WrongAlgorithm,
    #[error("the token signature is invalid")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token's expiry is more than {0} seconds away (maximum token lifetime)")]
    TooLongLived(u64),
    #[error("a customer token's subject must be a user id")]
    BadSubject,
}

impl Authenticator {
    /// An authenticator for `secret`.
    pub fn new(secret: Secret) -> Self {
        Self {
            secret,
            max_lifetime: DEFAULT_MAX_TOKEN_LIFETIME,
        }
    }

    /// The same, refusing tokens whose `exp` lies more than `max` ahead.
    #[must_use]
    pub fn with_max_lifetime(mut self, max: std::time::Duration) -> Self {
        self.max_lifetime = max;
        self
    }

    /// The longest lifetime accepted.
    pub fn max_lifetime(&self) -> std::time::Duration {
        self.max_lifetime
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC accepts keys of any length.
        HmacSha256::new_from_slice(self.secret.expose().as_bytes())
            .expect("HMAC takes any key length")
    }

    /// Signs `claims`.
    pub fn sign(&self, claims: &Claims) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
        let signing_input = format!("{header}.{payload}");
        let mut mac = self.mac();
        mac.update(signing_input.as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{signing_input}.{signature}")
    }

    /// Mints a token for `sub` with `role`, valid for `ttl`.
    pub fn mint(&self, sub: &str, role: Role, ttl: chrono::Duration) -> String {
        let now = Utc::now();
        self.sign(&Claims {
            sub: sub.to_string(),
            role,
            exp: (now + ttl).timestamp(),
            iat: Some(now.timestamp()),
        })
    }

    /// Verifies a compact JWS and returns its claims.
    ///
    /// # Errors
    /// A [`TokenError`] naming why the token is refused.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let signing_input = &token[..header.len() + 1 + payload.len()];
        #[derive(Deserialize)]
        struct Header {
            alg: String,
        }
        let header: Header = decode_json(header)?;
        if header.alg != "HS256" {
            return Err(TokenError::WrongAlgorithm);
        }
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| TokenError::Malformed)?;
        let mut mac = self.mac();
        mac.update(signing_input.as_bytes());
        mac.verify_slice(&signature)
            .map_err(|_| TokenError::BadSignature)?;
        let claims: Claims = decode_json(payload)?;
        let now = Utc::now().timestamp();
        if claims.exp <= now {
            return Err(TokenError::Expired);
        }
        // A token that never expires cannot be revoked by waiting; a leaked
        // one must stop working within the maximum lifetime (plus a minute
        // of clock skew between the issuer and this server).
        let max = i64::try_from(self.max_lifetime.as_secs()).unwrap_or(i64::MAX);
        if claims.exp - now > max.saturating_add(60) {
            return Err(TokenError::TooLongLived(self.max_lifetime.as_secs()));
        }
        if claims.role == Role::Customer && Uuid::parse_str(&claims.sub).is_err() {
            return Err(TokenError::BadSubject);
        }
        Ok(claims)
    }
}

fn decode_json<T: for<'de> Deserialize<'de>>(part: &str) -> Result<T, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| TokenError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    /// The token's subject.
    pub sub: String,
    pub role: Role,
}

impl Principal {
    /// The caller's user id, for customers.
    pub fn user_id(&self) -> Option<Uuid> {
        match self.role {
            Role::Customer => Uuid::parse_str(&self.sub).ok(),
            _ => None,
        }
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

    /// A stable string naming this caller (idempotency scope, metadata).
    pub fn scope(&self) -> String {
        format!("{}:{}", format!("{:?}", self.role).to_lowercase(), self.sub)
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
}

/// Reads and verifies `Authorization: Bearer …`.
///
/// # Errors
/// [`AuthError::Unauthenticated`] when the header is missing or the token is refused.
pub fn authenticate(
    auth: &Authenticator,
    headers: &http::HeaderMap,
) -> Result<Principal, AuthError> {
    let header = headers.get(http::header::AUTHORIZATION).ok_or_else(|| {
        AuthError::Unauthenticated("an Authorization: Bearer token is required".into())
    })?;
    let token = header
        .to_str()
        .ok()
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(str::trim)
        .ok_or_else(|| {
            AuthError::Unauthenticated("the Authorization header must be 'Bearer <token>'".into())
        })?;
    let claims = auth
        .verify(token)
        .map_err(|e| AuthError::Unauthenticated(e.to_string()))?;
    Ok(Principal {
        sub: claims.sub,
        role: claims.role,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Authenticator {
        Authenticator::new(Secret::new("s".repeat(40)))
    }

    #[test]
    fn round_trip() {
        let id = Uuid::new_v4().to_string();
        let token = auth().mint(&id, Role::Customer, chrono::Duration::hours(1));
        let claims = auth().verify(&token).unwrap();
        assert_eq!(
            (claims.sub.as_str(), claims.role),
            (id.as_str(), Role::Customer)
        );
    }

    #[test]
    fn refuses_forgeries() {
        let a = auth();
        let token = a.mint("ops", Role::Admin, chrono::Duration::hours(1));
        let other = Authenticator::new(Secret::new("t".repeat(40)));
        assert_eq!(other.verify(&token), Err(TokenError::BadSignature));
        let expired = a.mint("ops", Role::Admin, chrono::Duration::seconds(-5));
        assert_eq!(a.verify(&expired), Err(TokenError::Expired));
        assert_eq!(a.verify("a.b"), Err(TokenError::Malformed));
        assert_eq!(a.verify(""), Err(TokenError::Malformed));
        // alg=none with the original payload.
        let payload = token.split('.').nth(1).unwrap();
        let none = format!(
            "{}.{payload}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#)
        );
        assert_eq!(a.verify(&none), Err(TokenError::WrongAlgorithm));
        // Tampered payload: role escalated to admin from customer.
        let id = Uuid::new_v4().to_string();
        let customer = a.mint(&id, Role::Customer, chrono::Duration::hours(1));
        let mut parts: Vec<String> = customer.split('.').map(String::from).collect();
        let claims =
            serde_json::json!({"sub": id, "role": "admin", "exp": Utc::now().timestamp() + 3600});
        parts[1] = URL_SAFE_NO_PAD.encode(claims.to_string());
        assert_eq!(a.verify(&parts.join(".")), Err(TokenError::BadSignature));
    }

    #[test]
    fn tokens_live_at_most_the_maximum_lifetime() {
        let a = auth();
        let forever = a.sign(&Claims {
            sub: "ops".into(),
            role: Role::Admin,
            exp: i64::MAX,
            iat: None,
        });
        assert_eq!(
            a.verify(&forever),
            Err(TokenError::TooLongLived(
                DEFAULT_MAX_TOKEN_LIFETIME.as_secs()
            ))
        );
        let month = a.mint("ops", Role::Admin, chrono::Duration::days(29));
        assert!(a.verify(&month).is_ok());
        let short = auth().with_max_lifetime(std::time::Duration::from_secs(3600));
        let day = a.mint("ops", Role::Admin, chrono::Duration::days(1));
        assert!(matches!(
            short.verify(&day),
            Err(TokenError::TooLongLived(3600))
        ));
        assert!(short
            .verify(&a.mint("ops", Role::Admin, chrono::Duration::minutes(59)))
            .is_ok());
    }

    #[test]
    fn exp_is_required_and_customer_sub_is_a_user_id() {
        let a = auth();
        let no_exp = {
            let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256"}"#);
            let payload = URL_SAFE_NO_PAD.encode(br#"{"sub":"x","role":"admin"}"#);
            let input = format!("{header}.{payload}");
            let mut mac = a.mac();
            mac.update(input.as_bytes());
            format!(
                "{input}.{}",
                URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
            )
        };
        assert_eq!(a.verify(&no_exp), Err(TokenError::Malformed));
        let bad = a.mint("not-a-uuid", Role::Customer, chrono::Duration::hours(1));
        assert_eq!(a.verify(&bad), Err(TokenError::BadSubject));
    }

    #[test]
    fn secrets_do_not_print() {
        assert_eq!(
            format!("{:?}", Secret::new("hunter2")),
            "Secret([redacted])"
        );
    }
}
