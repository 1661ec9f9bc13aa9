//! The HTTP side of a process: its public address, its operations port,
//! the limits every listener keeps, and who may call it from a browser.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use clap::Args;

/// The public address of a role that serves an API.
#[derive(Debug, Clone, Args)]
pub struct ListenArgs {
    /// Address the HTTP server listens on.
    #[arg(long, env = "SHOPSTREAM_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
}

/// The operations port.
#[derive(Debug, Clone, Args)]
pub struct OperationsArgs {
    /// The operations port: `/metrics`, `/livez` and `/readyz` on their own
    /// address, for every role. When set, the public port no longer serves
    /// `/metrics`. Roles without an API of their own (`project`, `saga`)
    /// serve these only here. (`--metrics-listen` is the old name.)
    #[arg(long, env = "SHOPSTREAM_OPERATIONS_LISTEN", alias = "metrics-listen")]
    pub operations_listen: Option<SocketAddr>,
}

/// Connection and request limits of every listener.
#[derive(Debug, Clone, Args)]
pub struct HttpLimitsArgs {
    /// Time to receive a request's headers, from the connection's start or
    /// the request's first byte; slower clients are disconnected.
    #[arg(long, env = "SHOPSTREAM_HTTP_HEADER_TIMEOUT", default_value = "10s",
          value_parser = humantime::parse_duration)]
    pub http_header_timeout: Duration,

    /// Time a keep-alive connection may sit idle between requests.
    #[arg(long, env = "SHOPSTREAM_HTTP_IDLE_TIMEOUT", default_value = "60s",
          value_parser = humantime::parse_duration)]
    pub http_idle_timeout: Duration,

    /// Time to receive a whole request body (`408` after it).
    #[arg(long, env = "SHOPSTREAM_HTTP_BODY_TIMEOUT", default_value = "30s",
          value_parser = humantime::parse_duration)]
    pub http_body_timeout: Duration,

    /// Most HTTP connections open at once per listener (WebSockets
    /// included); the next one gets `503` and is closed.
    #[arg(long, env = "SHOPSTREAM_HTTP_MAX_CONNECTIONS", default_value_t = 1024)]
    pub http_max_connections: usize,

    /// On SIGTERM, how long in-flight requests may take to finish.
    #[arg(long, env = "SHOPSTREAM_DRAIN_TIMEOUT", default_value = "20s",
          value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,
}

/// Browsers and proxies in front of an API.
#[derive(Debug, Clone, Args)]
pub struct EdgeArgs {
    /// A browser origin whose pages may call the REST and GraphQL APIs
    /// and open the GraphQL WebSocket (repeatable, exact:
    /// `https://shop.example`, `http://localhost:3000`; `*` for any).
    /// Off when unset: only same-origin pages.
    #[arg(
        long = "cors-origin",
        env = "SHOPSTREAM_CORS_ORIGINS",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,

    /// A proxy (IP address) whose `X-Forwarded-For` names the client
    /// (repeatable); from anyone else the header is ignored.
    #[arg(
        long = "trusted-proxy",
        env = "SHOPSTREAM_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<IpAddr>,
}

impl HttpLimitsArgs {
    /// The listener limits, with the browser origins its WebSockets accept.
    pub fn limits(&self, origins: auth::Origins) -> command_api::server::Limits {
        command_api::server::Limits {
            origins,
            header_timeout: self.http_header_timeout,
            idle_timeout: self.http_idle_timeout,
            body_timeout: self.http_body_timeout,
            max_connections: self.http_max_connections.max(1),
            drain_timeout: self.drain_timeout,
            ..command_api::server::Limits::default()
        }
    }
}

impl EdgeArgs {
    /// The browser origins allowed (`--cors-origin`).
    ///
    /// # Errors
    /// An entry that is not an origin.
    pub fn origins(&self) -> anyhow::Result<auth::Origins> {
        Ok(auth::Origins::parse(&self.cors_origins)?)
    }
}
