//! Fresh, migrated databases for tests: one Postgres database or one SQLite
//! file per test, never a mock.

use std::path::PathBuf;

use crate::{Database, DatabaseOptions, Keyring, MasterKeys};

/// The master key of every test keyring: keyrings of one test database
/// made anywhere in a test (two "processes") open each other's keys.
const TEST_MASTER_KEY: &str = "c2hvcHN0cmVhbSB0ZXN0IG1hc3RlciBrZXkgMzIgYnk";

/// Writes the tests' master key as `<data_dir>/data-protection-key`, so
/// that `shopstream` processes started on that data directory open the
/// keys of stores that tests filled in-process.
///
/// # Panics
/// When the file cannot be written.
pub fn install_keys(data_dir: &std::path::Path) {
    std::fs::create_dir_all(data_dir).expect("data dir");
    let masters = MasterKeys::parse(TEST_MASTER_KEY).expect("the test master key");
    std::fs::write(
        data_dir.join("data-protection-key"),
        masters.to_text().as_bytes(),
    )
    .expect("write the test key file");
}

/// The data keys of `db` under the tests' master key.
///
/// # Panics
/// Never: the key is a constant.
pub fn keys(db: &Database) -> Keyring {
    let masters = MasterKeys::parse(TEST_MASTER_KEY).expect("the test master key");
    Keyring::new(db, masters)
}

/// The server tests create their databases on; override with
/// `SHOPSTREAM_TEST_POSTGRES_URL`.
pub fn postgres_admin_url() -> String {
    std::env::var("SHOPSTREAM_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// A migrated database that lives as long as this value (SQLite) or until
/// [`TestDatabase::drop_database`] (Postgres).
pub struct TestDatabase {
    /// The pool.
    pub db: Database,
    /// The URL the pool connected to.
    pub url: String,
    name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDatabase {
    /// Creates and migrates a fresh Postgres database.
    ///
    /// # Panics
    /// When Postgres cannot be reached: the test fails and says how to start it.
    pub async fn postgres() -> Self {
        let admin_url = postgres_admin_url();
        let admin = Database::connect(&admin_url, &DatabaseOptions::default())
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "cannot reach Postgres at {admin_url} ({e}). Start it with \
                 `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` \
                 or point SHOPSTREAM_TEST_POSTGRES_URL at a server"
                )
            });
        let name = format!("shopstream_test_{}", uuid::Uuid::new_v4().simple());
        let Database::Postgres(pool) = &admin else {
            panic!("SHOPSTREAM_TEST_POSTGRES_URL must be a postgres:// URL")
        };
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(pool)
            .await
            .expect("create test database");
        admin.close().await;
        let url = match admin_url.rsplit_once('/') {
            Some((server, _)) => format!("{server}/{name}"),
            None => panic!("SHOPSTREAM_TEST_POSTGRES_URL needs a database path"),
        };
        let db = Database::connect(&url, &DatabaseOptions::default())
            .await
            .expect("connect test database");
        db.migrate().await.expect("migrate test database");
        Self {
            db,
            url,
            name: Some(name),
            _dir: None,
        }
    }

    /// Creates and migrates a fresh SQLite file in a temporary directory.
    ///
    /// # Panics
    /// When the file cannot be created.
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let path: PathBuf = dir.path().join("events.db");
        let url = format!("sqlite://{}", path.display());
        let db = Database::connect(&url, &DatabaseOptions::default())
            .await
            .expect("open sqlite");
        db.migrate().await.expect("migrate sqlite");
        Self {
            db,
            url,
            name: None,
            _dir: Some(dir),
        }
    }

    /// Opens a transaction holding a transaction id on this Postgres
    /// database: until it ends, the safe horizon holds back every event
    /// committed after it began, and nothing notifies tailers when it ends
    /// (it is no append).
    ///
    /// # Panics
    /// On SQLite, or on database errors.
    pub async fn hold_horizon(&self) -> sqlx::Transaction<'static, sqlx::Postgres> {
        let Database::Postgres(pool) = &self.db else {
            panic!("the safe horizon is PostgreSQL's")
        };
        let mut holder = pool.begin().await.expect("begin");
        sqlx::query("SELECT pg_current_xact_id()")
            .execute(&mut *holder)
            .await
            .expect("a transaction id");
        holder
    }

    /// The data keys of this database (see [`keys`]).
    pub fn keys(&self) -> Keyring {
        keys(&self.db)
    }

    /// Drops a Postgres test database (SQLite files vanish with the value).
    pub async fn drop_database(self) {
        self.db.close().await;
        if let Some(name) = self.name {
            if let Ok(Database::Postgres(pool)) =
                Database::connect(&postgres_admin_url(), &DatabaseOptions::default()).await
            {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&pool)
                    .await;
                pool.close().await;
            }
        }
    }
}

/// Every event committed so far, in log order.
///
/// Reading until a batch comes back empty is not enough: the safe horizon
/// is cluster-wide, so a transaction open in any database of the server
/// (another test's) holds back events that have already committed here.
/// This reads until it has reached the committed head.
///
/// # Panics
/// On database errors, or when the head is not reached within 30 s.
pub async fn read_all(log: &crate::EventLog) -> Vec<crate::StoredEvent> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let head = log.head().await.expect("head");
    let mut events: Vec<crate::StoredEvent> = Vec::new();
    let mut cursor = crate::Cursor::START;
    while cursor.position < head {
        let batch = log.read_from(cursor, 1000).await.expect("read");
        match batch.last() {
            Some(last) => cursor = last.cursor(),
            None => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the log's head {head} stayed out of reach at {}",
                    cursor.position
                );
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
        events.extend(batch);
    }
    events
}
