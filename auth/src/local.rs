//! The platform's own tokens: HS256, signed with its secret, carrying
//! `sub`, `role` and a required `exp` (`shopstream token` mints them).

use std::fmt;
use std::time::Duration;

use chrono::Utc;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Role, Secret, MAX_TOKEN_LEN};

/// The claims of the platform's own tokens.
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
pub const DEFAULT_MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(30 * 86_400);

/// Clock skew tolerated between an issuer and this server.
pub(crate) const LEEWAY_SECS: u64 = 60;

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's algorithm is not accepted")]
    WrongAlgorithm,
    #[error("the token signature is invalid")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token's expiry is more than {0} seconds away (maximum token lifetime)")]
    TooLongLived(u64),
    #[error("a customer token's subject must be a user id")]
    BadSubject,
    #[error("the token's issuer is not the configured identity provider")]
    WrongIssuer,
    #[error("the token is not meant for this audience")]
    WrongAudience,
    #[error("the token is missing the claim {0}")]
    MissingClaim(String),
    #[error("the token's key id is unknown to the identity provider")]
    UnknownKey,
    #[error("the token's key does not fit its algorithm")]
    KeyMismatch,
}

impl From<jsonwebtoken::errors::Error> for TokenError {
    fn from(e: jsonwebtoken::errors::Error) -> Self {
        match e.kind() {
            ErrorKind::InvalidSignature => Self::BadSignature,
            ErrorKind::ExpiredSignature => Self::Expired,
            ErrorKind::ImmatureSignature => Self::NotYetValid,
            ErrorKind::InvalidIssuer => Self::WrongIssuer,
            ErrorKind::InvalidAudience => Self::WrongAudience,
            ErrorKind::MissingRequiredClaim(c) => Self::MissingClaim(c.clone()),
            ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => Self::WrongAlgorithm,
            ErrorKind::InvalidKeyFormat
            | ErrorKind::InvalidEcdsaKey
            | ErrorKind::InvalidEddsaKey
            | ErrorKind::InvalidRsaKey(_) => Self::KeyMismatch,
            _ => Self::Malformed,
        }
    }
}

/// Refuses a token whose `exp` lies further ahead than `max`: a leaked
/// token must stop working within the maximum lifetime.
pub(crate) fn check_lifetime(exp: i64, max: Duration) -> Result<(), TokenError> {
    let max_secs = i64::try_from(max.as_secs()).unwrap_or(i64::MAX);
    let leeway = i64::try_from(LEEWAY_SECS).unwrap_or(0);
    if exp - Utc::now().timestamp() > max_secs.saturating_add(leeway) {
        return Err(TokenError::TooLongLived(max.as_secs()));
    }
    Ok(())
}

/// Signs and verifies the platform's own HS256 tokens.
#[derive(Clone)]
pub struct LocalTokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    max_lifetime: Duration,
}

impl fmt::Debug for LocalTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalTokens").finish_non_exhaustive()
    }
}

impl LocalTokens {
    /// Tokens of `secret`.
    pub fn new(secret: &Secret) -> Self {
        let bytes = secret.expose().as_bytes();
        Self {
            encoding: EncodingKey::from_secret(bytes),
            decoding: DecodingKey::from_secret(bytes),
            max_lifetime: DEFAULT_MAX_TOKEN_LIFETIME,
        }
    }

    /// The same, refusing tokens whose `exp` lies more than `max` ahead.
    #[must_use]
    pub fn with_max_lifetime(mut self, max: Duration) -> Self {
        self.max_lifetime = max;
        self
    }

    /// The longest lifetime accepted.
    pub fn max_lifetime(&self) -> Duration {
        self.max_lifetime
    }

    /// Signs `claims`.
    pub fn sign(&self, claims: &Claims) -> String {
        // HS256 over serializable claims cannot fail.
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .unwrap_or_default()
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

    /// Verifies a compact JWS of the platform's secret and returns its claims.
    ///
    /// # Errors
    /// A [`TokenError`] naming why the token is refused.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECS;
        validation.validate_aud = false;
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)?.claims;
        // `exp` is required and checked (with leeway) by the library; a
        // token past it by any amount is refused here too.
        if claims.exp <= Utc::now().timestamp() {
            return Err(TokenError::Expired);
        }
        check_lifetime(claims.exp, self.max_lifetime)?;
        if claims.role == Role::Customer && Uuid::parse_str(&claims.sub).is_err() {
            return Err(TokenError::BadSubject);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    fn tokens() -> LocalTokens {
        LocalTokens::new(&Secret::new("s".repeat(40)))
    }

    #[test]
    fn round_trip() {
        let id = Uuid::new_v4().to_string();
        let token = tokens().mint(&id, Role::Customer, chrono::Duration::hours(1));
        let claims = tokens().verify(&token).unwrap();
        assert_eq!(
            (claims.sub.as_str(), claims.role),
            (id.as_str(), Role::Customer)
        );
    }

    #[test]
    fn refuses_forgeries() {
        let a = tokens();
        let token = a.mint("ops", Role::Admin, chrono::Duration::hours(1));
        let other = LocalTokens::new(&Secret::new("t".repeat(40)));
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
        assert!(a.verify(&none).is_err());
        // Tampered payload: role escalated to admin from customer.
        let id = Uuid::new_v4().to_string();
        let customer = a.mint(&id, Role::Customer, chrono::Duration::hours(1));
        let mut parts: Vec<String> = customer.split('.').map(String::from).collect();
        let claims =
            serde_json::json!({"sub": id, "role": "admin", "exp": Utc::now().timestamp() + 3600});
        parts[1] = URL_SAFE_NO_PAD.encode(claims.to_string());
        assert_eq!(a.verify(&parts.join(".")), Err(TokenError::BadSignature));
        // Huge tokens are refused before decoding.
        assert_eq!(a.verify(&"a".repeat(100_000)), Err(TokenError::Malformed));
    }

    #[test]
    fn tokens_live_at_most_the_maximum_lifetime() {
        let a = tokens();
        let forever = a.sign(&Claims {
            sub: "ops".into(),
            role: Role::Admin,
            exp: i64::MAX / 1000,
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
        let short = tokens().with_max_lifetime(Duration::from_secs(3600));
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
        let a = tokens();
        let no_exp = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &serde_json::json!({"sub": "x", "role": "admin"}),
            &EncodingKey::from_secret("s".repeat(40).as_bytes()),
        )
        .unwrap();
        // The claims type requires `exp`: without it the token does not parse.
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
