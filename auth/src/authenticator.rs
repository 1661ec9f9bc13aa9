//! Which kind a bearer token is (the platform's own HS256, or an identity
//! provider's), and who the caller is: for a provider's customer, the user
//! their identity signed up as.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};

use jsonwebtoken::Algorithm;
use uuid::Uuid;

use crate::provider::ProviderError;
use crate::{AuthError, Claims, LocalTokens, Principal, Provider, Role, Secret, TokenError};

/// Identities remembered per process (links never change once made).
const MAX_CACHED_IDENTITIES: usize = 100_000;

/// A pending identity lookup.
pub type IdentityLookup<'a> =
    Pin<Box<dyn Future<Output = Result<Option<Uuid>, String>> + Send + 'a>>;

/// Where provider identities are linked to users (the event store's
/// `user_identities`, written at sign-up).
pub trait Identities: Send + Sync {
    /// The user `identity` signed up as, if it did.
    fn user_of<'a>(&'a self, identity: &'a str) -> IdentityLookup<'a>;
}

/// Verifies bearer tokens: the platform's own (HS256 with its secret), and,
/// when configured, an identity provider's.
#[derive(Clone)]
pub struct Authenticator {
    local: LocalTokens,
    provider: Option<Arc<Provider>>,
    identities: Option<Arc<dyn Identities>>,
    linked: Arc<RwLock<HashMap<String, Uuid>>>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("provider", &self.provider)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// An authenticator of the platform's own tokens, signed with `secret`.
    pub fn new(secret: Secret) -> Self {
        Self {
            local: LocalTokens::new(&secret),
            provider: None,
            identities: None,
            linked: Arc::default(),
        }
    }

    /// The same, refusing tokens whose `exp` lies more than `max` ahead.
    #[must_use]
    pub fn with_max_lifetime(mut self, max: std::time::Duration) -> Self {
        self.local = self.local.with_max_lifetime(max);
        self
    }

    /// The same, also accepting `provider`'s tokens.
    #[must_use]
    pub fn with_provider(mut self, provider: Arc<Provider>) -> Self {
        self.provider = Some(provider);
        self
    }

    /// The same, resolving a provider customer's identity to their user
    /// through `identities`.
    #[must_use]
    pub fn with_identities(mut self, identities: Arc<dyn Identities>) -> Self {
        self.identities = Some(identities);
        self
    }

    /// The identity provider, when one is configured.
    pub fn provider(&self) -> Option<&Arc<Provider>> {
        self.provider.as_ref()
    }

    /// The longest lifetime accepted for the platform's own tokens.
    pub fn max_lifetime(&self) -> std::time::Duration {
        self.local.max_lifetime()
    }

    /// Signs `claims` with the platform's secret.
    pub fn sign(&self, claims: &Claims) -> String {
        self.local.sign(claims)
    }

    /// Mints a platform token for `sub` with `role`, valid for `ttl`.
    pub fn mint(&self, sub: &str, role: Role, ttl: chrono::Duration) -> String {
        self.local.mint(sub, role, ttl)
    }

    /// Verifies a platform token (HS256 with the secret) and returns its claims.
    ///
    /// # Errors
    /// A [`TokenError`] naming why the token is refused.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        self.local.verify(token)
    }

    /// Verifies any accepted token and returns its caller.
    ///
    /// # Errors
    /// [`AuthError::Unauthenticated`] for a refused token,
    /// [`AuthError::Unavailable`] while the provider's keys or the
    /// identity store cannot be reached.
    pub async fn principal(&self, token: &str) -> Result<Principal, AuthError> {
        let refused = |e: TokenError| AuthError::Unauthenticated(e.to_string());
        let header = jsonwebtoken::decode_header(token).map_err(|e| refused(e.into()))?;
        let provider = match (header.alg, &self.provider) {
            (Algorithm::HS256, _) => {
                let claims = self.local.verify(token).map_err(refused)?;
                return Ok(Principal::new(claims.sub, claims.role));
            }
            (_, Some(provider)) => provider,
            (_, None) => return Err(refused(TokenError::WrongAlgorithm)),
        };
        let verified = provider.verify(token).await.map_err(|e| match e {
            ProviderError::Token(e) => refused(e),
            ProviderError::Unavailable(m) => AuthError::Unavailable(m),
        })?;
        let user = match verified.role {
            Role::Customer => self.user_of(&verified.identity).await?,
            _ => None,
        };
        Ok(Principal::from_provider(
            verified.sub,
            verified.role,
            verified.identity,
            user,
        ))
    }

    async fn user_of(&self, identity: &str) -> Result<Option<Uuid>, AuthError> {
        let Some(identities) = &self.identities else {
            return Ok(None);
        };
        if let Some(user) = self.cached(identity) {
            return Ok(Some(user));
        }
        let user = identities.user_of(identity).await.map_err(|e| {
            AuthError::Unavailable(format!("cannot look up the caller's user: {e}"))
        })?;
        if let Some(user) = user {
            let mut linked = self.linked.write().unwrap_or_else(|p| p.into_inner());
            if linked.len() >= MAX_CACHED_IDENTITIES {
                linked.clear();
            }
            linked.insert(identity.to_string(), user);
        }
        Ok(user)
    }

    fn cached(&self, identity: &str) -> Option<Uuid> {
        let linked = self.linked.read().unwrap_or_else(|p| p.into_inner());
        linked.get(identity).copied()
    }
}

/// Reads and verifies `Authorization: Bearer …`.
///
/// # Errors
/// [`AuthError::Unauthenticated`] when the header is missing or the token
/// is refused; [`AuthError::Unavailable`] when it cannot be checked now.
pub async fn authenticate(
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
    if token.len() > crate::MAX_TOKEN_LEN {
        return Err(AuthError::Unauthenticated(
            TokenError::Malformed.to_string(),
        ));
    }
    auth.principal(token).await
}
