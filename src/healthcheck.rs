//! `shopstream healthcheck`: one HTTP/1.1 `GET` of this instance's own
//! `/livez` over loopback, for the container `HEALTHCHECK` (the slim image
//! has no curl). Exit status 0 when the answer is `200`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long the whole probe may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Where to connect for a server listening on `listen`: an unspecified
/// address (`0.0.0.0`, `::`) is reached over loopback.
pub fn target(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// Probes `path` on the server listening at `listen`.
///
/// # Errors
/// When nothing answers in time or the status is not `200`.
pub async fn probe(listen: SocketAddr, path: &str) -> anyhow::Result<()> {
    let addr = target(listen);
    let status = tokio::time::timeout(PROBE_TIMEOUT, get_status(addr, path))
        .await
        .with_context(|| {
            format!("no answer from http://{addr}{path} within {PROBE_TIMEOUT:?}")
        })??;
    anyhow::ensure!(status == 200, "http://{addr}{path} answered {status}");
    Ok(())
}

async fn get_status(addr: SocketAddr, path: &str) -> anyhow::Result<u16> {
    let mut stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("cannot connect to {addr}"))?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut head = Vec::new();
    let mut buf = [0u8; 256];
    while !head.windows(2).any(|w| w == b"\r\n") {
        let n = stream.read(&mut buf).await?;
        anyhow::ensure!(n > 0, "{addr} closed the connection without answering");
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    line.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("not an HTTP answer: {}", line.lines().next().unwrap_or("")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unspecified_addresses_are_probed_over_loopback() {
        let any: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        assert_eq!(target(any), "127.0.0.1:8080".parse().unwrap());
        let any6: SocketAddr = "[::]:8080".parse().unwrap();
        assert_eq!(target(any6), "[::1]:8080".parse().unwrap());
        let one: SocketAddr = "10.0.0.5:9000".parse().unwrap();
        assert_eq!(target(one), one);
    }
}
