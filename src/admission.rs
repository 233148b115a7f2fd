//! Who may come in: the node's admission limits on TCP connections that are not (yet)
//! WebSockets, on WebSocket connections in all and per client address, and who the client
//! is when trusted proxies stand in front.
//!
//! Each admission is a slot that gives itself back when dropped, so no path that ends a
//! connection can leak one.

use axum::http::HeaderMap;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::settings::{IpNet, ServerSettings, canonical};

/// Descriptors kept back from `server.max_connections` for storage, the bus and handshakes.
const RESERVED_FDS: u64 = 256;

/// The node's admission state.
pub struct Admission {
    handshakes: AtomicUsize,
    max_handshakes: usize,
    connections: AtomicUsize,
    max_connections: usize,
    per_address: Mutex<HashMap<IpAddr, usize>>,
    max_per_address: usize,
    trusted_proxies: Vec<IpNet>,
}

/// Why a WebSocket handshake is refused for room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// The node holds `server.max_connections`.
    Node,
    /// The client's address holds `server.max_connections_per_ip`.
    Address,
}

/// A TCP connection that is not a WebSocket (yet); gives its place back when dropped.
pub struct HandshakeSlot(Arc<Admission>);

/// A WebSocket connection's place; gives it back when dropped.
pub struct ConnectionSlot {
    admission: Arc<Admission>,
    address: Option<IpAddr>,
}

impl Admission {
    /// The limits of `server`, with `max_connections` capped by the descriptors this process
    /// may open (`fd_limit`).
    pub fn new(server: &ServerSettings, fd_limit: u64) -> Arc<Admission> {
        let by_fds = usize::try_from(fd_limit.saturating_sub(RESERVED_FDS)).unwrap_or(usize::MAX);
        Arc::new(Admission {
            handshakes: AtomicUsize::new(0),
            max_handshakes: server.max_handshakes,
            connections: AtomicUsize::new(0),
            max_connections: server.max_connections.min(by_fds).max(1),
            per_address: Mutex::new(HashMap::new()),
            max_per_address: server.max_connections_per_ip,
            trusted_proxies: server.trusted_proxies.clone(),
        })
    }

    /// The most WebSocket connections this node takes.
    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    /// TCP connections in progress that are not WebSockets (handshakes, kept-alive REST).
    pub fn handshakes(&self) -> usize {
        self.handshakes.load(Ordering::Relaxed)
    }

    /// Whether the node holds as many WebSocket connections as it takes (readiness then
    /// sends new clients elsewhere).
    pub fn is_full(&self) -> bool {
        self.connections.load(Ordering::Relaxed) >= self.max_connections
    }

    /// A place for a new TCP connection, unless `server.max_handshakes` are in progress.
    pub fn try_handshake(self: &Arc<Self>) -> Option<HandshakeSlot> {
        take(&self.handshakes, self.max_handshakes).then(|| HandshakeSlot(self.clone()))
    }

    /// A place for a WebSocket connection from `address`, or why there is none.
    pub fn try_connection(self: &Arc<Self>, address: IpAddr) -> Result<ConnectionSlot, Full> {
        if !take(&self.connections, self.max_connections) {
            return Err(Full::Node);
        }
        if self.max_per_address == 0 {
            return Ok(ConnectionSlot {
                admission: self.clone(),
                address: None,
            });
        }
        let mut per_address = self.per_address.lock();
        let held = per_address.entry(address).or_insert(0);
        if *held >= self.max_per_address {
            drop(per_address);
            self.connections.fetch_sub(1, Ordering::Relaxed);
            return Err(Full::Address);
        }
        *held += 1;
        Ok(ConnectionSlot {
            admission: self.clone(),
            address: Some(address),
        })
    }

    /// The client's address: the TCP peer, unless the peer is a trusted proxy, in which
    /// case the right-most `X-Forwarded-For` entry that is not itself a trusted proxy (the
    /// entries left of it could have been written by anyone). A trusted peer that sends no
    /// usable header is taken as the client.
    pub fn client_address(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.is_trusted(peer) {
            return peer;
        }
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect::<Vec<_>>();
        for hop in forwarded.iter().rev() {
            match hop.parse::<IpAddr>() {
                Ok(ip) if self.is_trusted(canonical(ip)) => continue,
                Ok(ip) => return canonical(ip),
                // Garbage is not an address to trust or to count by: stop at the last good hop.
                Err(_) => break,
            }
        }
        peer
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(ip))
    }
}

/// Takes one of `max` places in `count`, if one is free.
fn take(count: &AtomicUsize, max: usize) -> bool {
    count
        .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| {
            (n < max).then_some(n + 1)
        })
        .is_ok()
}

impl Drop for HandshakeSlot {
    fn drop(&mut self) {
        self.0.handshakes.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.admission.connections.fetch_sub(1, Ordering::AcqRel);
        if let Some(address) = self.address {
            let mut per_address = self.admission.per_address.lock();
            if let Some(held) = per_address.get_mut(&address) {
                *held -= 1;
                if *held == 0 {
                    per_address.remove(&address);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn admission(edit: impl FnOnce(&mut ServerSettings)) -> Arc<Admission> {
        let mut server = ServerSettings::default();
        edit(&mut server);
        Admission::new(&server, 1_000_000)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn slots_are_given_back_when_dropped() {
        let a = admission(|s| {
            s.max_handshakes = 2;
            s.max_connections = 2;
            s.max_connections_per_ip = 1;
        });
        let (h1, h2) = (a.try_handshake().unwrap(), a.try_handshake().unwrap());
        assert!(a.try_handshake().is_none());
        drop(h1);
        assert!(a.try_handshake().is_some());
        drop(h2);

        let c1 = a.try_connection(ip("10.0.0.1")).unwrap();
        assert_eq!(a.try_connection(ip("10.0.0.1")).err(), Some(Full::Address));
        let c2 = a.try_connection(ip("10.0.0.2")).unwrap();
        assert!(a.is_full());
        assert_eq!(a.try_connection(ip("10.0.0.3")).err(), Some(Full::Node));
        drop(c1);
        assert!(!a.is_full());
        let _c3 = a.try_connection(ip("10.0.0.1")).unwrap();
        drop(c2);
        assert_eq!(
            a.per_address.lock().len(),
            1,
            "an address with no connection is forgotten"
        );
    }

    #[test]
    fn the_descriptor_limit_caps_connections() {
        let server = ServerSettings {
            max_connections: 100_000,
            ..ServerSettings::default()
        };
        assert_eq!(Admission::new(&server, 20_000).max_connections(), 19_744);
        assert_eq!(Admission::new(&server, 10).max_connections(), 1);
    }

    #[test]
    fn forwarded_for_is_believed_from_trusted_proxies_only() {
        let a = admission(|s| s.trusted_proxies = vec!["10.0.0.0/8".parse().unwrap()]);
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("6.6.6.6, 203.0.113.9, 10.1.1.1"),
        );
        // From a proxy: the right-most address that is not a proxy.
        assert_eq!(
            a.client_address(ip("10.0.0.2"), &headers),
            ip("203.0.113.9")
        );
        // From anyone else, the header is ignored.
        assert_eq!(
            a.client_address(ip("198.51.100.4"), &headers),
            ip("198.51.100.4")
        );
        // A proxy without the header, or with garbage, is the client.
        assert_eq!(
            a.client_address(ip("10.0.0.2"), &HeaderMap::new()),
            ip("10.0.0.2")
        );
        headers.insert("x-forwarded-for", HeaderValue::from_static("not-an-ip"));
        assert_eq!(a.client_address(ip("10.0.0.2"), &headers), ip("10.0.0.2"));
    }
}
