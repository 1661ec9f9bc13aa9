//! An identity provider's tokens (Keycloak, Auth0, Entra ID, Cognito,
//! Zitadel, …): RS256, ES256 or EdDSA, verified with the public keys its
//! JWKS publishes. The JWKS is found by OIDC discovery
//! (`<issuer>/.well-known/openid-configuration`) or configured directly.
//!
//! Keys are cached. A token naming an unknown `kid` triggers one refetch,
//! at most once per `refetch_interval`, so a flood of random `kid`s cannot
//! hammer the provider; a background task refreshes the set, so keys rotate
//! without a restart. Until the first fetch succeeds, tokens cannot be
//! checked: [`ProviderError::Unavailable`] (a `503`), and readiness says why.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;

use crate::local::{check_lifetime, LEEWAY_SECS};
use crate::{Role, TokenError, MAX_TOKEN_LEN};

/// Largest discovery document or JWKS read.
const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// How to reach and trust an identity provider.
#[derive(Debug, Clone)]
pub struct ProviderSettings {
    /// The issuer (`iss`, required in tokens when set); its discovery
    /// document names the JWKS unless `jwks_url` is set.
    pub issuer: Option<String>,
    /// The JWKS, when not discovered.
    pub jwks_url: Option<String>,
    /// The audience tokens must name (`aud`, required when set).
    pub audience: Option<String>,
    /// Dotted path of the claim holding the caller's roles (an array of
    /// strings, or a space-separated string such as `scope`).
    pub roles_claim: String,
    /// Provider role names → platform roles, besides the roles' own names.
    pub role_mapping: Vec<(String, Role)>,
    /// The least time between two fetches caused by unknown key ids.
    pub refetch_interval: Duration,
    /// How often the key set is refreshed in the background.
    pub refresh_interval: Duration,
    /// Tokens whose `exp` lies further ahead are refused.
    pub max_lifetime: Duration,
    /// Timeout of one request to the provider.
    pub http_timeout: Duration,
}

/// Why a provider token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("{0}")]
    Unavailable(String),
}

/// What a verified provider token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub sub: String,
    pub role: Role,
    /// `<iss>#<sub>`: the caller at this provider.
    pub identity: String,
}

#[derive(Clone)]
struct Key {
    decoding: DecodingKey,
    alg: Algorithm,
}

#[derive(Default)]
struct Keys {
    by_kid: HashMap<String, Arc<Key>>,
    fetched: bool,
    last_error: Option<String>,
}

struct Fetch {
    last_attempt: Option<Instant>,
    jwks_uri: Option<String>,
}

/// One identity provider: its settings and its cached keys.
pub struct Provider {
    settings: ProviderSettings,
    http: reqwest::Client,
    keys: RwLock<Keys>,
    fetch: tokio::sync::Mutex<Fetch>,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("issuer", &self.settings.issuer)
            .field("jwks_url", &self.settings.jwks_url)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

impl Provider {
    /// A provider with no keys yet; [`Provider::spawn_refresh`] fetches them.
    ///
    /// # Errors
    /// When neither an issuer nor a JWKS URL is set, or the HTTP client
    /// cannot be built.
    pub fn new(settings: ProviderSettings) -> Result<Arc<Self>, String> {
        if settings.issuer.is_none() && settings.jwks_url.is_none() {
            return Err("an identity provider needs --oidc-issuer or --jwks-url".into());
        }
        let http = reqwest::Client::builder()
            .timeout(settings.http_timeout)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        let jwks_uri = settings.jwks_url.clone();
        Ok(Arc::new(Self {
            settings,
            http,
            keys: RwLock::new(Keys::default()),
            fetch: tokio::sync::Mutex::new(Fetch {
                last_attempt: None,
                jwks_uri,
            }),
        }))
    }

    /// The settings.
    pub fn settings(&self) -> &ProviderSettings {
        &self.settings
    }

    /// `Ok` once keys are known; else why not (for `/readyz`).
    ///
    /// # Errors
    /// The reason tokens cannot be checked yet.
    pub fn readiness(&self) -> Result<(), String> {
        let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
        if keys.fetched {
            return Ok(());
        }
        Err(format!(
            "the identity provider's keys are not known yet: {}",
            keys.last_error.as_deref().unwrap_or("not fetched")
        ))
    }

    /// Refreshes the keys now and then every `refresh_interval` (every few
    /// seconds while the provider does not answer).
    pub fn spawn_refresh(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let provider = Arc::clone(self);
        tokio::spawn(async move {
            let mut retry = Duration::from_millis(500);
            loop {
                let wait = match provider.refetch(true).await {
                    Ok(()) => {
                        retry = Duration::from_millis(500);
                        provider.settings.refresh_interval
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot fetch the identity provider's keys");
                        retry = (retry * 2).min(Duration::from_secs(15));
                        retry
                    }
                };
                tokio::time::sleep(wait).await;
            }
        })
    }

    /// Fetches the key set, unless `force` is false and a fetch was tried
    /// less than `refetch_interval` ago. Concurrent callers share one fetch.
    async fn refetch(&self, force: bool) -> Result<(), String> {
        let mut fetch = self.fetch.lock().await;
        if !force
            && fetch
                .last_attempt
                .is_some_and(|t| t.elapsed() < self.settings.refetch_interval)
        {
            return Ok(());
        }
        fetch.last_attempt = Some(Instant::now());
        let result = self.fetch_keys(&mut fetch).await;
        let mut keys = self.keys.write().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(by_kid) => {
                *keys = Keys {
                    by_kid,
                    fetched: true,
                    last_error: None,
                };
                Ok(())
            }
            Err(e) => {
                keys.last_error = Some(e.clone());
                Err(e)
            }
        }
    }

    async fn fetch_keys(&self, fetch: &mut Fetch) -> Result<HashMap<String, Arc<Key>>, String> {
        let jwks_uri = match &fetch.jwks_uri {
            Some(uri) => uri.clone(),
            None => {
                let uri = self.discover().await?;
                fetch.jwks_uri = Some(uri.clone());
                uri
            }
        };
        let set: JwkSet = self.get_json(&jwks_uri).await?;
        let keys: HashMap<String, Arc<Key>> = set
            .keys
            .iter()
            .filter_map(|jwk| {
                let key = usable_key(jwk)?;
                Some((jwk.common.key_id.clone().unwrap_or_default(), Arc::new(key)))
            })
            .collect();
        if keys.is_empty() {
            return Err(format!(
                "{jwks_uri} holds no RS256, ES256 or EdDSA signing key"
            ));
        }
        tracing::info!(keys = keys.len(), jwks = %jwks_uri, "identity provider keys fetched");
        Ok(keys)
    }

    async fn discover(&self) -> Result<String, String> {
        let issuer = self.settings.issuer.as_deref().unwrap_or_default();
        let url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let doc: Discovery = self.get_json(&url).await?;
        if doc.issuer != issuer {
            return Err(format!(
                "the discovery document at {url} names the issuer {}, not {issuer}",
                doc.issuer
            ));
        }
        Ok(doc.jwks_uri)
    }

    async fn get_json<T: for<'de> Deserialize<'de>>(&self, url: &str) -> Result<T, String> {
        let mut response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("{url} answered {}", response.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| format!("{url}: {e}"))? {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(format!("{url}: the document is larger than 1 MiB"));
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|e| format!("{url}: not the expected JSON: {e}"))
    }

    /// The key of `kid` (`None`: the token names none, and the set has one
    /// key), refetching once if it is unknown.
    async fn key(&self, kid: Option<&str>) -> Result<Arc<Key>, ProviderError> {
        if let Some(key) = self.cached(kid)? {
            return Ok(key);
        }
        // Unknown: perhaps the provider rotated its keys.
        let fetched = self.refetch(false).await;
        match self.cached(kid) {
            Ok(Some(key)) => Ok(key),
            Ok(None) => Err(TokenError::UnknownKey.into()),
            Err(e) => Err(fetched.err().map_or(e, ProviderError::Unavailable)),
        }
    }

    fn cached(&self, kid: Option<&str>) -> Result<Option<Arc<Key>>, ProviderError> {
        let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
        if !keys.fetched {
            return Err(ProviderError::Unavailable(format!(
                "the identity provider's keys are not known yet: {}",
                keys.last_error.as_deref().unwrap_or("not fetched")
            )));
        }
        Ok(match kid {
            Some(kid) => keys.by_kid.get(kid).cloned(),
            None if keys.by_kid.len() == 1 => keys.by_kid.values().next().cloned(),
            None => None,
        })
    }

    /// Verifies a provider token: signature by a published key of the
    /// token's algorithm, `exp` (and `nbf`) with a small leeway, `iss` and
    /// `aud` when configured; then reads its subject and role.
    ///
    /// # Errors
    /// [`ProviderError::Token`] for a refused token,
    /// [`ProviderError::Unavailable`] while no keys are known.
    pub async fn verify(&self, token: &str) -> Result<Verified, ProviderError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed.into());
        }
        let header = jsonwebtoken::decode_header(token).map_err(TokenError::from)?;
        if !matches!(
            header.alg,
            Algorithm::RS256 | Algorithm::ES256 | Algorithm::EdDSA
        ) {
            return Err(TokenError::WrongAlgorithm.into());
        }
        let key = self.key(header.kid.as_deref()).await?;
        if key.alg != header.alg {
            return Err(TokenError::KeyMismatch.into());
        }
        let claims: Value = jsonwebtoken::decode(token, &key.decoding, &self.validation(key.alg))
            .map_err(TokenError::from)?
            .claims;
        let sub = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| TokenError::MissingClaim("sub".into()))?;
        let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
        check_lifetime(exp, self.settings.max_lifetime)?;
        let issuer = claims.get("iss").and_then(Value::as_str).unwrap_or("");
        Ok(Verified {
            sub: sub.to_string(),
            role: crate::roles::role_of(
                &claims,
                &self.settings.roles_claim,
                &self.settings.role_mapping,
            ),
            identity: format!("{issuer}#{sub}"),
        })
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        v.leeway = LEEWAY_SECS;
        v.validate_nbf = true;
        let mut required = vec!["exp"];
        if let Some(issuer) = &self.settings.issuer {
            v.set_issuer(&[issuer]);
            required.push("iss");
        }
        match &self.settings.audience {
            Some(audience) => {
                v.set_audience(&[audience]);
                required.push("aud");
            }
            None => v.validate_aud = false,
        }
        v.set_required_spec_claims(&required);
        v
    }
}

/// A JWKS entry usable for verification: a signing key (never a symmetric
/// one) whose type fixes its algorithm, and whose `alg`, if given, agrees.
fn usable_key(jwk: &Jwk) -> Option<Key> {
    if matches!(&jwk.common.public_key_use, Some(u) if *u != PublicKeyUse::Signature) {
        return None;
    }
    let alg = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => Algorithm::ES256,
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            Algorithm::EdDSA
        }
        _ => return None,
    };
    if let Some(declared) = jwk.common.key_algorithm {
        if declared.to_string().parse::<Algorithm>().ok() != Some(alg) {
            return None;
        }
    }
    let decoding = DecodingKey::from_jwk(jwk).ok()?;
    Some(Key { decoding, alg })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(claim: &str, mapping: Vec<(String, Role)>) -> ProviderSettings {
        ProviderSettings {
            issuer: None,
            jwks_url: Some("http://127.0.0.1:1/jwks".into()),
            audience: None,
            roles_claim: claim.into(),
            role_mapping: mapping,
            refetch_interval: Duration::from_secs(1),
            refresh_interval: Duration::from_secs(60),
            max_lifetime: Duration::from_secs(3600),
            http_timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn a_provider_needs_an_issuer_or_a_jwks_url() {
        let mut s = settings("roles", vec![]);
        s.jwks_url = None;
        assert!(Provider::new(s).is_err());
    }

    #[test]
    fn symmetric_and_mismatched_keys_are_never_used() {
        let oct: Jwk = serde_json::from_value(serde_json::json!({
            "kty": "oct", "kid": "k", "k": "c2VjcmV0"
        }))
        .unwrap();
        assert!(usable_key(&oct).is_none());
        let p256 = serde_json::json!({
            "kty": "EC", "crv": "P-256", "kid": "e",
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"
        });
        let ok: Jwk = serde_json::from_value(p256.clone()).unwrap();
        assert_eq!(usable_key(&ok).map(|k| k.alg), Some(Algorithm::ES256));
        let mut declared = p256.clone();
        declared["alg"] = "RS256".into();
        let mismatched: Jwk = serde_json::from_value(declared).unwrap();
        assert!(usable_key(&mismatched).is_none());
        let mut encryption = p256;
        encryption["use"] = "enc".into();
        let enc: Jwk = serde_json::from_value(encryption).unwrap();
        assert!(usable_key(&enc).is_none());
    }
}
