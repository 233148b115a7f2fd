//! The node's accept loop: every TCP connection is admitted (or shed at once when
//! `server.max_handshakes` are in progress), served as HTTP/1.1 by hyper with a bounded
//! request head (`server.max_header_bytes`, 431 past it) that must arrive within
//! `server.handshake_timeout`, and handed to the router; a WebSocket upgrade then leaves
//! hyper for the chat connection, and gives its handshake slot back.

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tower::Service as _;

use crate::admission::HandshakeSlot;
use crate::state::AppState;
use crate::ws::socket::{SharedTcp, Socket};

/// Most headers in one request; more is answered with 431 like an oversized head.
const MAX_HEADERS: usize = 64;

/// The answer to a connection that finds every handshake place taken. Written without
/// reading the request, so it costs the node one system call.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n\
content-type: application/json\r\nconnection: close\r\ncontent-length: 67\r\n\r\n\
{\"error\":\"too many handshakes in progress: retry later\",\"code\":503}";

/// Accepts and serves connections until `stop`: through a drain too, so that readiness
/// answers 503 and upgrades are refused rather than the port going dark.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    state: AppState,
    stop: CancellationToken,
) {
    let server = &state.settings.server;
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(server.handshake_timeout)
        .max_buf_size(server.max_header_bytes)
        .max_headers(MAX_HEADERS);
    loop {
        let (stream, peer) = tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
        };
        let Some(slot) = state.admission.try_handshake() else {
            state.metrics.edge.handshakes_full.inc();
            let _ = stream.try_write(BUSY);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let mut http = http.clone();
        if state.shutdown.is_cancelled() {
            http.keep_alive(false);
        }
        let served = serve_connection(stream, peer, slot, router.clone(), http, state.clone());
        state.tracker.spawn(served);
    }
}

/// Serves one admitted connection's HTTP until it closes, times out or upgrades; on drain,
/// finishes the request in progress and closes. The handshake slot is given back at the end.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    slot: HandshakeSlot,
    router: Router,
    http: http1::Builder,
    state: AppState,
) {
    let tcp = Arc::new(stream);
    let socket = Socket {
        tcp: tcp.clone(),
        peer,
    };
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(socket.clone()));
        router.clone().call(request)
    });
    let conn = http
        .serve_connection(TokioIo::new(SharedTcp(tcp)), service)
        .with_upgrades();
    let mut conn = std::pin::pin!(conn);
    let result = if state.shutdown.is_cancelled() {
        // Accepted while draining (http was built without keep-alive): one answer, then
        // the connection closes.
        conn.await
    } else {
        tokio::select! {
            result = conn.as_mut() => result,
            // A kept-alive connection closes after the request it is serving.
            _ = state.shutdown.cancelled() => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        }
    };
    drop(slot);
    if let Err(e) = result {
        if e.is_timeout() {
            state.metrics.edge.handshake_timeout.inc();
        } else if e.is_parse_too_large() {
            state.metrics.edge.headers_too_large.inc();
        }
        tracing::debug!(error = %e, %peer, "HTTP connection ended");
    }
}

/// After a failed accept: out of descriptors (EMFILE, ENFILE) or memory, waits a moment
/// for connections to close rather than spinning; a connection that failed before it was
/// accepted (reset, aborted) is simply skipped.
async fn accept_failed(e: io::Error) {
    if matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
    ) {
        return;
    }
    tracing::warn!(error = %e, "accept failed; pausing accepts for 100 ms");
    tokio::time::sleep(Duration::from_millis(100)).await;
}
