//! The processes and databases a benchmark runs against.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};

use crate::SECRET;

fn bin(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().context("no binary directory")?;
    let path = dir.join(name);
    if !path.exists() {
        bail!(
            "{} is missing: run `cargo build --release --bins` first",
            path.display()
        );
    }
    Ok(path)
}

pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A database of its own, dropped at the end.
pub struct TempDatabase {
    admin: String,
    name: String,
    pub url: String,
}

pub async fn fresh_database(admin: &str, tag: &str) -> anyhow::Result<TempDatabase> {
    let name = format!(
        "shopstream_bench_{tag}_{}",
        uuid::Uuid::new_v4()
            .simple()
            .to_string()
            .get(..8)
            .unwrap_or("x")
    );
    let pool = sqlx::PgPool::connect(admin)
        .await
        .with_context(|| format!("cannot reach PostgreSQL at {admin}"))?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&pool)
        .await?;
    pool.close().await;
    let base = admin.rsplit_once('/').map_or(admin, |(b, _)| b);
    Ok(TempDatabase {
        admin: admin.to_string(),
        name: name.clone(),
        url: format!("{base}/{name}"),
    })
}

impl TempDatabase {
    pub async fn drop(self) {
        if let Ok(pool) = sqlx::PgPool::connect(&self.admin).await {
            let _ = sqlx::query(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&pool)
            .await;
            pool.close().await;
        }
    }
}

/// A running `shopstream` process.
pub struct Shopstream {
    child: Child,
    base: String,
    _data: tempfile_dir::Dir,
}

mod tempfile_dir {
    /// A scratch directory removed on drop.
    pub struct Dir(pub std::path::PathBuf);
    impl Dir {
        pub fn new() -> std::io::Result<Self> {
            let p = std::env::temp_dir().join(format!("shopstream-bench-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir_all(&p)?;
            Ok(Self(p))
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl Shopstream {
    /// Starts `shopstream ARGS` on a free port (embedded SQLite when `url`
    /// is None) and waits until it answers.
    pub async fn start(args: &[&str], url: Option<&str>, extra: &[&str]) -> anyhow::Result<Self> {
        Self::start_on("--listen", args, url, extra).await
    }

    /// [`Shopstream::start`] for a role whose HTTP port is `listen_flag`
    /// (`--operations-listen` for projectors, which serve no API).
    pub async fn start_on(
        listen_flag: &str,
        args: &[&str],
        url: Option<&str>,
        extra: &[&str],
    ) -> anyhow::Result<Self> {
        let port = free_port()?;
        let data = tempfile_dir::Dir::new()?;
        let mut cmd = Command::new(bin("shopstream")?);
        cmd.args(args)
            .args([listen_flag, &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(&data.0)
            // An environment variable, not a flag: roles without tokens
            // (relay, projectors) refuse flags they do not use.
            .env("SHOPSTREAM_JWT_SECRET", SECRET)
            .env("SHOPSTREAM_DATA_PROTECTION_KEY_FILE", key_file())
            .args(extra)
            .env("RUST_LOG", "error")
            // The load comes from one address and a few tokens: measure
            // the platform, not its rate limits.
            .env("SHOPSTREAM_RATE_LIMIT_SIGNUPS", "0")
            .env("SHOPSTREAM_RATE_LIMIT_COMMANDS", "0")
            .env("SHOPSTREAM_RATE_LIMIT_GRAPHQL", "0")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(url) = url {
            cmd.args(["--database-url", url]);
        }
        let child = cmd.spawn().context("spawn shopstream")?;
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        for _ in 0..300 {
            if client
                .get(format!("{base}/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Ok(Self {
                    child,
                    base,
                    _data: data,
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("shopstream {args:?} did not become ready")
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Shopstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The data protection key file every process of this run shares (the
/// first one to start creates it), as every process of one store must.
pub fn key_file() -> &'static std::path::Path {
    static FILE: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    FILE.get_or_init(|| {
        std::env::temp_dir().join(format!("shopstream-bench-{}.keys", std::process::id()))
    })
}

/// Runs a `shopstream` subcommand against `url`; returns stdout.
pub fn cli(args: &[&str], url: &str) -> anyhow::Result<String> {
    Ok(cli_measured(args, url)?.stdout)
}

/// What a measured subcommand did.
pub struct Measured {
    pub stdout: String,
    pub seconds: f64,
    /// Peak resident memory (MiB), sampled every 20 ms while it ran.
    pub peak_mib: Option<f64>,
}

/// [`cli`], timed, with the process's peak memory.
pub fn cli_measured(args: &[&str], url: &str) -> anyhow::Result<Measured> {
    let data = tempfile_dir::Dir::new()?;
    let out = data.0.join("stdout");
    let err = data.0.join("stderr");
    let started = std::time::Instant::now();
    let mut child = Command::new(bin("shopstream")?)
        .args(args)
        .args(["--database-url", url])
        .arg("--data-dir")
        .arg(&data.0)
        .env("SHOPSTREAM_JWT_SECRET", SECRET)
        .env("SHOPSTREAM_DATA_PROTECTION_KEY_FILE", key_file())
        .env("RUST_LOG", "error")
        .stdout(std::fs::File::create(&out)?)
        .stderr(std::fs::File::create(&err)?)
        .spawn()?;
    let mut peak_mib = None;
    let status = loop {
        // The high-water mark only grows: the last sample before the exit
        // holds the peak.
        peak_mib = peak_rss_mib(child.id()).or(peak_mib);
        if let Some(status) = child.try_wait()? {
            break status;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let seconds = started.elapsed().as_secs_f64();
    if !status.success() {
        bail!(
            "shopstream {args:?}: {}",
            std::fs::read_to_string(&err).unwrap_or_default()
        );
    }
    Ok(Measured {
        stdout: std::fs::read_to_string(&out)?,
        seconds,
        peak_mib,
    })
}

/// Current resident memory of a process (MiB), from `/proc/<pid>/status`.
pub fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Peak resident memory of a process (MiB), from `/proc/<pid>/status`.
pub fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// A tansu broker for the Kafka profile (when installed).
pub struct Broker {
    child: Child,
    port: u16,
}

impl Broker {
    pub async fn start() -> anyhow::Result<Self> {
        let tansu = std::env::var("TANSU_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|_| {
                let home = std::env::var("HOME").unwrap_or_default();
                let installed = PathBuf::from(home).join(".cargo/bin/tansu");
                if installed.exists() {
                    installed
                } else {
                    PathBuf::from("tansu")
                }
            });
        let port = free_port()?;
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(&tansu)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| {
                format!(
                    "cannot start {} (install: cargo install tansu --locked --features dynostore)",
                    tansu.display()
                )
            })?;
        let broker = Self { child, port };
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(broker.address())
                .await
                .is_ok()
            {
                return Ok(broker);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("tansu did not start")
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
