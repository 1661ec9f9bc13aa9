//! Where the state lives: the data directory, the event store (and the
//! read models beside it), and the bearer-token secret kept there.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use auth::{Secret, MIN_SECRET_LEN};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use clap::Args;
use eventlog::{Database, DatabaseOptions, Keyring, MasterKeys};
use rand::RngCore;

/// The data directory.
#[derive(Debug, Clone, Args)]
pub struct DataDir {
    /// Directory for the embedded SQLite store and the generated JWT secret.
    #[arg(long, env = "SHOPSTREAM_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
}

/// The event store and its pool.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Event store: `postgres://user@host/db`, or `sqlite://PATH`
    /// [default: sqlite://<data-dir>/shopstream.db].
    #[arg(long, env = "SHOPSTREAM_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Most database connections the pool opens.
    #[arg(long, env = "SHOPSTREAM_DB_MAX_CONNECTIONS", default_value_t = 16)]
    pub db_max_connections: u32,

    /// How long a request waits for a database connection before it is
    /// answered `503` (REST) or `UNAVAILABLE` (GraphQL).
    #[arg(long, env = "SHOPSTREAM_DB_ACQUIRE_TIMEOUT", default_value = "2s",
          value_parser = humantime::parse_duration)]
    pub db_acquire_timeout: Duration,

    /// The data protection master keys: every user's personal data is
    /// sealed with a key of its own, stored wrapped by these
    /// [default: generated once into <data-dir>/data-protection-key].
    /// Every process of one store needs the same file.
    #[arg(long, env = "SHOPSTREAM_DATA_PROTECTION_KEY_FILE")]
    pub data_protection_key_file: Option<PathBuf>,
}

/// Bearer tokens.
#[derive(Debug, Clone, Args)]
pub struct AuthArgs {
    /// HS256 secret for bearer tokens (at least 32 characters)
    /// [default: generated once into <data-dir>/jwt-secret].
    #[arg(long, env = "SHOPSTREAM_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// Tokens whose `exp` lies further ahead than this are refused.
    #[arg(long, env = "SHOPSTREAM_MAX_TOKEN_LIFETIME", default_value = "30d",
          value_parser = humantime::parse_duration)]
    pub max_token_lifetime: Duration,
}

/// An identity provider whose tokens the APIs accept besides their own.
#[derive(Debug, Clone, Args)]
pub struct ProviderArgs {
    /// Also accept an identity provider's tokens (RS256, ES256, EdDSA):
    /// its issuer URL; the JWKS is found by OIDC discovery
    /// (`<issuer>/.well-known/openid-configuration`), and `iss` is required.
    #[arg(long, env = "SHOPSTREAM_OIDC_ISSUER")]
    pub oidc_issuer: Option<String>,

    /// The identity provider's JWKS URL (instead of discovery, or besides it).
    #[arg(long, env = "SHOPSTREAM_JWKS_URL")]
    pub jwks_url: Option<String>,

    /// The audience provider tokens must name in `aud` (required when set).
    #[arg(long, env = "SHOPSTREAM_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// Dotted path of the provider token's claim holding the caller's roles
    /// (an array, or a space-separated string): `realm_access.roles`, `scope`.
    #[arg(long, env = "SHOPSTREAM_ROLES_CLAIM", default_value = "roles")]
    pub roles_claim: String,

    /// A provider role that grants a platform role: `NAME=ROLE` (repeatable;
    /// ROLE is customer, admin, service or analyst). Roles named like the
    /// platform's count as such; a caller with none is a customer.
    #[arg(long = "role-mapping", env = "SHOPSTREAM_ROLE_MAPPING", value_delimiter = ',',
          value_parser = parse_role_mapping)]
    pub role_mappings: Vec<(String, auth::Role)>,

    /// The least time between two JWKS fetches caused by tokens naming an
    /// unknown key id.
    #[arg(long, env = "SHOPSTREAM_JWKS_REFETCH_INTERVAL", default_value = "30s",
          value_parser = humantime::parse_duration)]
    pub jwks_refetch_interval: Duration,

    /// How often the JWKS is refreshed in the background (key rotation).
    #[arg(long, env = "SHOPSTREAM_JWKS_REFRESH_INTERVAL", default_value = "10m",
          value_parser = humantime::parse_duration)]
    pub jwks_refresh_interval: Duration,

    /// The console's client at `--oidc-issuer`: a public client allowed the
    /// authorization-code flow with PKCE, redirecting to
    /// `<console origin>/console/`. When set, the console offers signing in
    /// there (besides pasting a token).
    #[arg(long, env = "SHOPSTREAM_CONSOLE_CLIENT_ID")]
    pub console_client_id: Option<String>,
}

impl ProviderArgs {
    /// What the console signs in with, when `--console-client-id` is set.
    ///
    /// # Errors
    /// `--console-client-id` without `--oidc-issuer`.
    pub fn console_sign_in(&self) -> Result<Option<web::SignIn>, String> {
        match (&self.console_client_id, &self.oidc_issuer) {
            (None, _) => Ok(None),
            (Some(client), Some(issuer)) if !client.trim().is_empty() => Ok(Some(web::SignIn {
                issuer: issuer.trim_end_matches('/').to_string(),
                client_id: client.trim().to_string(),
            })),
            (Some(_), Some(_)) => Err("--console-client-id is empty".into()),
            (Some(_), None) => {
                Err("--console-client-id needs --oidc-issuer (the console signs in there)".into())
            }
        }
    }
}

fn parse_role_mapping(raw: &str) -> Result<(String, auth::Role), String> {
    let (name, role) = raw
        .split_once('=')
        .ok_or_else(|| format!("'{raw}' is not NAME=ROLE"))?;
    if name.trim().is_empty() {
        return Err(format!("'{raw}' names no provider role"));
    }
    Ok((name.trim().to_string(), role.trim().parse()?))
}

impl DataDir {
    /// Creates the directory.
    ///
    /// # Errors
    /// When it cannot be created.
    pub fn ensure(&self) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.data_dir).with_context(|| {
            format!(
                "cannot create the data directory {}",
                self.data_dir.display()
            )
        })
    }

    /// The embedded store's file.
    pub fn sqlite_file(&self) -> PathBuf {
        self.data_dir.join("shopstream.db")
    }
}

impl StoreArgs {
    /// The event store URL: the configured one or the embedded SQLite file.
    pub fn url(&self, data: &DataDir) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", data.sqlite_file().display()),
        }
    }

    /// Connects to the store (creating the data directory for SQLite).
    ///
    /// # Errors
    /// When the store cannot be reached.
    pub async fn connect(&self, data: &DataDir) -> anyhow::Result<Database> {
        let url = self.url(data);
        if url.starts_with("sqlite:") {
            data.ensure()?;
        }
        let options = DatabaseOptions {
            max_connections: self.db_max_connections,
            acquire_timeout: self.db_acquire_timeout,
        };
        Database::connect(&url, &options)
            .await
            .context("cannot open the event store")
    }

    /// The master key file: the configured one or the data directory's.
    pub fn key_file(&self, data: &DataDir) -> PathBuf {
        self.data_protection_key_file
            .clone()
            .unwrap_or_else(|| data.data_dir.join("data-protection-key"))
    }

    /// The users' data keys in `db`, under the master key file (created
    /// with one new key on first start), checked to open this store's keys.
    ///
    /// # Errors
    /// When the file cannot be read or created, or holds none of the
    /// master keys that wrapped the store's keys.
    pub async fn keyring(&self, data: &DataDir, db: &Database) -> anyhow::Result<Keyring> {
        let path = self.key_file(data);
        MasterKeys::load_or_create(&path)?;
        let keys = Keyring::from_file(db, &path)?;
        keys.open().await.with_context(|| {
            format!(
                "the data protection keys of {} do not open this store's keys",
                path.display()
            )
        })?;
        Ok(keys)
    }

    /// Connects and applies the migrations.
    ///
    /// # Errors
    /// When the store cannot be reached or migrated.
    pub async fn open(&self, data: &DataDir) -> anyhow::Result<Database> {
        let db = self.connect(data).await?;
        db.migrate()
            .await
            .context("cannot migrate the event store")?;
        Ok(db)
    }
}

impl AuthArgs {
    /// The JWT secret: the configured one, or the one generated into the
    /// data directory on first use (so `serve` and `token` agree).
    ///
    /// # Errors
    /// When the secret is too short or the file cannot be read or written.
    pub fn secret(&self, data: &DataDir) -> anyhow::Result<Secret> {
        let secret = match &self.jwt_secret {
            Some(s) => s.clone(),
            None => load_or_create_secret(&data.data_dir.join("jwt-secret"))?,
        };
        anyhow::ensure!(
            secret.len() >= MIN_SECRET_LEN,
            "the JWT secret must be at least {MIN_SECRET_LEN} characters"
        );
        Ok(Secret::new(secret))
    }

    /// The token verifier of the platform's own tokens: the secret and the
    /// maximum token lifetime.
    ///
    /// # Errors
    /// As [`AuthArgs::secret`].
    pub fn authenticator(&self, data: &DataDir) -> anyhow::Result<auth::Authenticator> {
        Ok(auth::Authenticator::new(self.secret(data)?).with_max_lifetime(self.max_token_lifetime))
    }
}

fn load_or_create_secret(path: &Path) -> anyhow::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(s) => return Ok(s.trim().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut bytes = [0u8; 48];
    rand::thread_rng().fill_bytes(&mut bytes);
    let secret = URL_SAFE_NO_PAD.encode(bytes);
    eventlog::protect::write_new(path, &secret)
        .with_context(|| format!("cannot write {}", path.display()))?;
    tracing::info!(path = %path.display(), "generated a JWT secret");
    Ok(secret)
}

impl ProviderArgs {
    /// The identity provider, when `--oidc-issuer` or `--jwks-url` is set.
    ///
    /// # Errors
    /// When its HTTP client cannot be built.
    pub fn provider(
        &self,
        max_lifetime: Duration,
    ) -> anyhow::Result<Option<std::sync::Arc<auth::Provider>>> {
        // Empty values (an unset variable in compose) count as unset.
        let set = |v: &Option<String>| v.clone().filter(|s| !s.trim().is_empty());
        let (issuer, jwks_url) = (set(&self.oidc_issuer), set(&self.jwks_url));
        if issuer.is_none() && jwks_url.is_none() {
            return Ok(None);
        }
        let settings = auth::ProviderSettings {
            issuer,
            jwks_url,
            audience: set(&self.jwt_audience),
            roles_claim: self.roles_claim.clone(),
            role_mapping: self.role_mappings.clone(),
            refetch_interval: self.jwks_refetch_interval,
            refresh_interval: self.jwks_refresh_interval,
            max_lifetime,
            http_timeout: Duration::from_secs(5),
        };
        auth::Provider::new(settings)
            .map(Some)
            .map_err(|e| anyhow::anyhow!(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_is_generated_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested").join("jwt-secret");
        let first = load_or_create_secret(&path).unwrap();
        let second = load_or_create_secret(&path).unwrap();
        assert_eq!(first, second);
        assert!(first.len() >= MIN_SECRET_LEN);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
