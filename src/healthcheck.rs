//! `chat-gateway healthcheck`: asks a node's own `/health/ready` (or `/health/live`) over
//! HTTP, so a container image without curl can have a HEALTHCHECK.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::settings::ServerSettings;

/// Most bytes of the answer read: the status line is all that matters.
const MOST: usize = 1024;

/// Where the node answers its health: the private listener when `server.metrics_bind` is
/// set, else the public one; an unspecified address (`0.0.0.0`, `::`) is asked on loopback.
pub fn target(server: &ServerSettings) -> SocketAddr {
    let mut addr = server.metrics_bind.unwrap_or(server.bind);
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        });
    }
    addr
}

/// `GET path` on `addr`, answered within `timeout` (connecting included): `Ok` for a 200,
/// otherwise what went wrong.
pub async fn probe(addr: SocketAddr, path: &str, timeout: Duration) -> Result<(), String> {
    match tokio::time::timeout(timeout, ask(addr, path)).await {
        Ok(Ok(200)) => Ok(()),
        Ok(Ok(status)) => Err(format!("{path} on {addr} answered {status}")),
        Ok(Err(e)) => Err(format!("{path} on {addr}: {e}")),
        Err(_) => Err(format!("{path} on {addr}: no answer within {timeout:?}")),
    }
}

async fn ask(addr: SocketAddr, path: &str) -> std::io::Result<u16> {
    let mut stream = TcpStream::connect(addr).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut answer = Vec::with_capacity(MOST);
    let mut buf = [0u8; 256];
    while !answer.contains(&b'\n') && answer.len() < MOST {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    status_of(&answer).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the answer is not HTTP/1.x",
        )
    })
}

/// The status code of an HTTP/1.x status line.
fn status_of(answer: &[u8]) -> Option<u16> {
    let line = answer.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split_whitespace();
    parts.next().filter(|v| v.starts_with("HTTP/1."))?;
    parts.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_prefers_the_private_listener_and_loopback() {
        let mut server = ServerSettings {
            bind: "0.0.0.0:8080".parse().unwrap(),
            ..ServerSettings::default()
        };
        assert_eq!(target(&server), "127.0.0.1:8080".parse().unwrap());
        server.metrics_bind = Some("[::]:9090".parse().unwrap());
        assert_eq!(target(&server), "[::1]:9090".parse().unwrap());
        server.metrics_bind = Some("10.1.2.3:9090".parse().unwrap());
        assert_eq!(target(&server), "10.1.2.3:9090".parse().unwrap());
    }

    #[test]
    fn status_lines() {
        assert_eq!(status_of(b"HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(
            status_of(b"HTTP/1.0 503 Service Unavailable\r\n"),
            Some(503)
        );
        assert_eq!(status_of(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(status_of(b""), None);
    }
}
