//! Where connections go and where they come from: the gateway URLs (used round-robin), the
//! loopback source addresses that lift the ephemeral-port ceiling of one address, and
//! the dial itself (TCP connect, WebSocket upgrade, first frame).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use chat_gateway::protocol::codes;

use crate::protocol::Incoming;
use crate::tls::{Stream, Tls};
use crate::ws::frame::{Decoder, Frame, client_frame, opcode};
use crate::ws::upgrade::{self, UpgradeError};

/// An open, authenticated WebSocket, its first (1000) frame read.
pub struct Dialed {
    /// The socket.
    pub stream: TcpStream,
    /// Its TLS state, for a `wss://` target (frames are encrypted with it from now on).
    pub tls: Option<rustls::ClientConnection>,
    /// The frame parser's state after the first frame.
    pub decoder: Decoder,
    /// Bytes read past the first frame: the start of the frame stream.
    pub leftover: Vec<u8>,
}

/// Bytes asked of each read during the handshake.
const HANDSHAKE_READ: usize = 4 * 1024;

/// One gateway endpoint.
#[derive(Debug, Clone)]
pub struct Target {
    /// The URL as given.
    pub url: String,
    /// The resolved address.
    pub addr: SocketAddr,
    /// `host:port` for the HTTP Host header and the REST API.
    pub authority: String,
    /// The request target of the upgrade: path and query (`/` when the URL has none).
    pub path: String,
    /// TLS, for `wss://`.
    pub tls: Option<Tls>,
}

impl Target {
    /// Parses and resolves a `ws://host:port/path` or `wss://…` URL (`tls` is the TLS
    /// configuration `wss://` uses).
    pub fn parse(url: &str, tls: Option<&Arc<rustls::ClientConfig>>) -> Result<Target, String> {
        let (rest, secure) = match (url.strip_prefix("ws://"), url.strip_prefix("wss://")) {
            (Some(rest), _) => (rest, false),
            (None, Some(rest)) => (rest, true),
            (None, None) => return Err(format!("{url}: not a ws:// or wss:// URL")),
        };
        let authority = rest
            .split(['/', '?'])
            .next()
            .unwrap_or_default()
            .to_string();
        if authority.is_empty() {
            return Err(format!("{url}: no host"));
        }
        let with_port = if authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| !p.contains(']'))
        {
            authority.clone()
        } else if secure {
            format!("{authority}:443")
        } else {
            format!("{authority}:80")
        };
        let addrs: Vec<SocketAddr> = with_port
            .to_socket_addrs()
            .map_err(|e| format!("{url}: cannot resolve {with_port}: {e}"))?
            .collect();
        // IPv4 first: `localhost` often resolves to ::1 first, where a gateway bound to
        // 127.0.0.1 is not, and loopback source addresses are IPv4.
        let addr = addrs
            .iter()
            .find(|a| a.is_ipv4())
            .or(addrs.first())
            .copied()
            .ok_or_else(|| format!("{url}: {with_port} resolves to nothing"))?;
        let path = match &rest[authority.len()..] {
            "" => "/".to_string(),
            query if query.starts_with('?') => format!("/{query}"),
            path => path.to_string(),
        };
        let tls = match (secure, tls) {
            (false, _) => None,
            (true, None) => return Err(format!("{url}: no TLS configuration for wss://")),
            (true, Some(config)) => {
                let host = match with_port.rsplit_once(':') {
                    Some((host, _)) => host,
                    None => with_port.as_str(),
                };
                Some(Tls::new(config.clone(), host).map_err(|e| format!("{url}: {e}"))?)
            }
        };
        Ok(Target {
            url: url.to_string(),
            addr,
            authority,
            path,
            tls,
        })
    }
}

/// How many connections one source address takes cheaply: a little under half the kernel's
/// ephemeral port range. Linux searches one half of the range first (bind() the odd ports,
/// connect() the even ones); past it every new port costs a long search, and a run of 19k
/// connections from one address spends 15× the CPU of the same run from two.
pub fn ports_per_source() -> u64 {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|n| n.parse::<u64>().ok());
            Some(it.next()??.abs_diff(it.next()??) + 1)
        })
        .unwrap_or(28_232);
    range * 45 / 100
}

/// The source addresses for a run: `requested` of them (127.0.0.1, 127.0.0.2, …), or with
/// 0 as many as `connections` need, or none (the kernel chooses) when one is enough or a
/// target is not IPv4 loopback.
pub fn plan_sources(requested: u32, connections: u64, targets: &[Target]) -> Vec<IpAddr> {
    let count = if requested > 0 {
        u64::from(requested)
    } else {
        connections.div_ceil(ports_per_source())
    };
    let loopback = targets
        .iter()
        .all(|t| matches!(t.addr.ip(), IpAddr::V4(ip) if ip.is_loopback()));
    if (count <= 1 && requested == 0) || !loopback {
        return Vec::new();
    }
    (1..=count.min(254) as u8)
        .map(|n| IpAddr::V4(Ipv4Addr::new(127, 0, 0, n)))
        .collect()
}

/// Why a connection attempt failed; `cause()` is the key it is counted under.
#[derive(Debug)]
pub enum DialError {
    /// TCP connect (or bind) failed.
    Connect(std::io::Error),
    /// The server answered the upgrade with this HTTP status.
    Http(u16),
    /// The upgrade failed otherwise.
    Handshake(String),
    /// No answer within the handshake timeout.
    Timeout,
    /// The first frame was not the 1000 "connected" frame.
    FirstFrame(String),
}

impl DialError {
    /// A short, stable description to count failures by.
    pub fn cause(&self) -> String {
        match self {
            DialError::Connect(e) => match e.raw_os_error() {
                Some(99) => {
                    "connect: no free local port (EADDRNOTAVAIL): add --source-addrs".into()
                }
                Some(24) => "connect: too many open files (EMFILE)".into(),
                _ => format!("connect: {}", e.kind()),
            },
            DialError::Http(status) => format!("http {status}"),
            DialError::Handshake(e) => format!("handshake: {e}"),
            DialError::Timeout => "timeout".into(),
            DialError::FirstFrame(what) => format!("first frame: {what}"),
        }
    }
}

/// Opens connections, spreading them over targets and source addresses.
pub struct Dialer {
    /// The gateway endpoints, used in turn.
    pub targets: Vec<Target>,
    /// Source addresses to bind before connecting; empty = the kernel chooses.
    pub sources: Vec<IpAddr>,
    next: AtomicUsize,
    timeout: Duration,
}

impl Dialer {
    /// A dialer over `targets` from `sources`, giving up on a handshake after `timeout`.
    pub fn new(targets: Vec<Target>, sources: Vec<IpAddr>, timeout: Duration) -> Dialer {
        Dialer {
            targets,
            sources,
            next: AtomicUsize::new(0),
            timeout,
        }
    }

    /// The `host:port` of the first target, for REST calls.
    pub fn rest_target(&self) -> &Target {
        &self.targets[0]
    }

    /// Connects with `token` and reads the 1000 frame; the socket, ready for traffic.
    /// `device` names the connection's device (`?device_id=`).
    pub async fn dial(&self, token: &str, device: &str) -> Result<Dialed, DialError> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let target = &self.targets[n % self.targets.len()];
        let source = (!self.sources.is_empty())
            .then(|| self.sources[(n / self.targets.len()) % self.sources.len()]);
        match tokio::time::timeout(self.timeout, open(target, source, token, device)).await {
            Ok(result) => result,
            Err(_) => Err(DialError::Timeout),
        }
    }
}

async fn open(
    target: &Target,
    source: Option<IpAddr>,
    token: &str,
    device: &str,
) -> Result<Dialed, DialError> {
    let socket = match target.addr {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }
    .map_err(DialError::Connect)?;
    if let Some(ip) = source {
        socket
            .bind(SocketAddr::new(ip, 0))
            .map_err(DialError::Connect)?;
    }
    let stream = socket
        .connect(target.addr)
        .await
        .map_err(DialError::Connect)?;
    let _ = stream.set_nodelay(true);
    // Closing sends RST instead of FIN: no TIME_WAIT left behind, which would otherwise hold
    // this side's ephemeral port for a minute after every drop and starve the next runs and
    // reconnect storms of ports. A polite close still completes the WebSocket close
    // handshake first (`client::User::close`).
    let _ = stream.set_zero_linger();
    let mut stream = Stream::open(stream, target.tls.as_ref())
        .await
        .map_err(|e| DialError::Handshake(format!("TLS: {e}")))?;
    let separator = if target.path.contains('?') { '&' } else { '?' };
    let path = format!("{}{separator}device_id={device}", target.path);
    let (request, key) =
        upgrade::upgrade_request(&path, &target.authority, token).map_err(DialError::Handshake)?;
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(DialError::Connect)?;
    stream.flush().await.map_err(DialError::Connect)?;
    let mut buf = Vec::with_capacity(HANDSHAKE_READ);
    let head = loop {
        if let Some(end) = upgrade::response_end(&buf) {
            break end;
        }
        if buf.len() >= upgrade::MAX_RESPONSE_HEAD {
            return Err(DialError::Handshake("response header too long".into()));
        }
        if read_more(&mut stream, &mut buf)
            .await
            .map_err(DialError::Connect)?
            == 0
        {
            return Err(DialError::Handshake(
                "connection closed during the upgrade".into(),
            ));
        }
    };
    upgrade::check_response(&buf[..head], &key).map_err(|e| match e {
        UpgradeError::Status(status) => DialError::Http(status),
        UpgradeError::Invalid(what) => DialError::Handshake(what),
    })?;
    buf.drain(..head);
    // The first frame must be the 1000 "connected" frame (pings may come before it).
    let mut decoder = Decoder::default();
    let closed = || DialError::FirstFrame("connection closed".into());
    loop {
        let parsed = decoder
            .parse(&buf)
            .map_err(|e| DialError::FirstFrame(e.to_string()))?;
        let Some((frame, used)) = parsed else {
            if read_more(&mut stream, &mut buf)
                .await
                .map_err(|e| DialError::FirstFrame(e.to_string()))?
                == 0
            {
                return Err(closed());
            }
            continue;
        };
        let pong = match frame {
            Frame::Text(text) => {
                return match Incoming::parse(&text) {
                    Some(frame) if frame.code == codes::CONNECTED => {
                        let (stream, tls) = stream.into_parts();
                        Ok(Dialed {
                            stream,
                            tls,
                            decoder,
                            // Usually nothing: the handshake's buffer is not kept.
                            leftover: buf[used..].to_vec(),
                        })
                    }
                    Some(frame) => Err(DialError::FirstFrame(format!("code {}", frame.code))),
                    None => Err(DialError::FirstFrame("not a JSON frame".into())),
                };
            }
            Frame::Ping(payload) => Some(client_frame(opcode::PONG, payload)),
            Frame::Pong | Frame::Fragment => None,
            Frame::Close(_) => return Err(closed()),
            Frame::Binary => return Err(DialError::FirstFrame("not a text frame".into())),
        };
        buf.drain(..used);
        if let Some(pong) = pong {
            stream
                .write_all(&pong)
                .await
                .map_err(|e| DialError::FirstFrame(e.to_string()))?;
            stream
                .flush()
                .await
                .map_err(|e| DialError::FirstFrame(e.to_string()))?;
        }
    }
}

/// Reads once more into `buf`; the bytes read (0 at EOF).
async fn read_more(stream: &mut Stream, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    buf.reserve(HANDSHAKE_READ);
    stream.read_buf(buf).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let t = Target::parse("ws://127.0.0.1:8080/ws", None).unwrap();
        assert_eq!(t.addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(t.authority, "127.0.0.1:8080");
        assert_eq!(t.path, "/ws");
        assert_eq!(Target::parse("ws://127.0.0.1:1", None).unwrap().path, "/");
        assert_eq!(
            Target::parse("ws://127.0.0.1:1?a=b", None).unwrap().path,
            "/?a=b"
        );
        assert_eq!(
            Target::parse("ws://127.0.0.1:1/ws?a=b", None).unwrap().path,
            "/ws?a=b"
        );
        assert!(Target::parse("http://x/ws", None).is_err());
        assert!(
            Target::parse("wss://127.0.0.1/ws", None).is_err(),
            "no TLS configuration"
        );
        let config = crate::tls::client_config(None).unwrap_or_else(|_| {
            // A machine without system roots: any configuration will do for parsing.
            Arc::new(
                rustls::ClientConfig::builder_with_provider(Arc::new(
                    rustls::crypto::aws_lc_rs::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth(),
            )
        });
        let t = Target::parse("wss://localhost/ws", Some(&config)).unwrap();
        assert_eq!(t.addr.port(), 443);
        assert!(t.tls.is_some());
        let t = Target::parse("wss://127.0.0.1:8443/ws", Some(&config)).unwrap();
        assert_eq!(t.addr.port(), 8443);
    }

    #[test]
    fn plans_sources() {
        let t = vec![Target::parse("ws://127.0.0.1:1/ws", None).unwrap()];
        assert!(plan_sources(0, 1000, &t).is_empty());
        assert_eq!(plan_sources(3, 10, &t).len(), 3);
        let many = plan_sources(0, 100_000, &t);
        assert!(many.len() >= 4, "{many:?}");
        assert_eq!(many[1], IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)));
    }
}
