//! One chat connection on the WebSocket transport: registers with the hub, drives a
//! `Session` with the client's frames in order, and at the end writes what is still queued
//! and closes with the right code (ws/outbox.rs). One task per connection: a writer task
//! runs only while the socket has a backlog.

use bytes::Bytes;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use tokio::io::AsyncRead;
use tokio::net::TcpStream;
use tracing::Instrument as _;

use super::Session;
use crate::admission::ConnectionSlot;
use crate::auth::Identity;
use crate::ids::{ConnId, DeviceId, next_conn_id};
use crate::protocol::{codes, server};
use crate::state::AppState;
use crate::ws::close::CloseReason;
use crate::ws::frame::{FrameError, FrameReader, Incoming, ReadError};
use crate::ws::outbox::Outbox;
use crate::ws::rate::{FrameRate, Verdict};

/// How long a closing connection's writer may take to write what is queued and the
/// closing frames.
const CLOSE_WRITE: Duration = Duration::from_secs(5);

/// How long a connection the server closed waits for the client's close frame before it
/// closes TCP.
const CLOSE_LINGER: Duration = Duration::from_secs(2);

/// A handshake the node accepted: what its connection starts from.
pub struct Accepted {
    /// Resolves to the upgraded connection once the 101 answer is written.
    pub upgrade: OnUpgrade,
    /// The connection's place under `limits.max_connections`, given back when it ends.
    pub slot: ConnectionSlot,
    pub socket: Arc<TcpStream>,
    pub state: AppState,
    pub identity: Identity,
    pub device: Option<DeviceId>,
}

/// Serves one accepted handshake's socket, once upgraded, until it ends.
///
/// One task per connection holds this future for the connection's life, so its size is
/// most of what an idle connection costs: the handshake comes boxed and is unpacked inside
/// (an async fn keeps its arguments' space for its whole life, beside what it moves them
/// to), and this is a plain function for the same reason.
pub fn run(accepted: Box<Accepted>) -> impl Future<Output = ()> + Send {
    let conn = next_conn_id();
    // With traces on (src/telemetry.rs), the connection is a trace of its own: its sends
    // and publishes are its children, and the log lines inside carry these fields.
    let span = tracing::info_span!(
        target: "chat_gateway::spans",
        "connection",
        conn,
        user = accepted.identity.user,
        trace_id = tracing::field::Empty,
    );
    crate::telemetry::record_trace_id(&span);
    connected(accepted, conn).instrument(span)
}

/// The connection `conn`, from its upgrade to its end.
async fn connected(accepted: Box<Accepted>, conn: ConnId) {
    let Accepted {
        upgrade,
        slot: _slot,
        socket,
        state,
        identity,
        device,
    } = *accepted;
    let mut io = match upgrade.await {
        Ok(upgraded) => TokioIo::new(upgraded),
        Err(e) => {
            tracing::debug!(error = %e, "upgrade failed");
            return;
        }
    };
    let user = identity.user;
    let _tracked = state.tracker.token();
    let outbox = Arc::new(Outbox::new(
        Some(socket.clone()),
        state.settings.server.outbound_queue,
    ));
    outbox.reply(server::connected(user));
    state.metrics.connections_opened.inc();
    let first = state.hub.register(user, conn, outbox.clone());
    if first {
        match state.store.user_group_ids(user).await {
            Ok(groups) => state.hub.add_groups(user, groups),
            // Live group pushes wait for the next connection; syncs still return them.
            Err(e) => tracing::warn!(error = %e, user, "could not load the user's groups"),
        }
    }
    // The 1000 frame (queued first) goes out once this node receives the user's and groups'
    // channels: from then on, everything sent to the user reaches this socket live.
    state.bus.settled().await;
    // …and once the other nodes holding the user copy the user's own sends here.
    // Boxed, like the other awaits that run once per connection (the store's and the bus's
    // futures are boxed already): inline, each would enlarge the future that every idle
    // connection holds.
    Box::pin(state.hub.announce(user, first)).await;
    if first {
        state.presence.changed(user, true);
    }
    tracing::debug!(user, conn, "connected");

    outbox.start();
    let session = Session::new(state.clone(), user, device, conn, outbox.clone());
    session.watch_expiry(identity.expires_at);
    let server = &state.settings.server;
    let mut reader = FrameReader::new(server.read_buffer_bytes, server.max_frame_bytes)
        .with_stall_limit(server.fragment_timeout);
    let limits = &state.settings.limits;
    let rate = FrameRate::new(
        limits.frames_per_second,
        limits.frame_burst,
        limits.frame_strikes,
    );
    let ended = read_loop(&mut io, &socket, &mut reader, &session, &outbox, &rate).await;

    state.hub.unregister(user, conn);
    if !state.hub.is_local(user) {
        state.presence.changed(user, false);
    }
    session.unwatch_expiry();
    Box::pin(close(&outbox, &state)).await;
    Box::pin(session.finish()).await;
    if ended == Ended::ByServer {
        Box::pin(linger(&mut io, &socket, reader, server)).await;
    }
    // Closes TCP now, whoever else still holds the socket (a delivery in flight).
    let _ = socket2::SockRef::from(&*socket).shutdown(std::net::Shutdown::Both);
    state.metrics.connections_closed.inc();
    tracing::debug!(user, conn, "disconnected");
}

/// Writes what is queued and the closing frames, but for no longer than CLOSE_WRITE: a
/// client that does not read (its socket full) must not hold the connection open, and the
/// sweeper no longer watches an unregistered connection.
async fn close(outbox: &Outbox, state: &AppState) {
    outbox.close(CloseReason::Ended);
    let reason = match tokio::time::timeout(CLOSE_WRITE, outbox.finish()).await {
        Ok(reason) => reason,
        Err(_) => {
            outbox.abort();
            CloseReason::TooSlow
        }
    };
    if state.metrics.closed(reason) == CloseReason::TooSlow {
        state.metrics.slow_consumers.inc();
    }
}

/// Who ended a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// The client closed or went away: nothing more to read.
    ByClient,
    /// The server closed (an error in the client's frames, a limit, a drain, a slow
    /// reader): the client's close frame is still to come.
    ByServer,
}

/// Hands each client frame within the connection's rate to the session, in order, until
/// the client closes, the connection fails or the server closes it.
async fn read_loop<Io: AsyncRead + Unpin>(
    io: &mut Io,
    socket: &TcpStream,
    reader: &mut FrameReader,
    session: &Session,
    outbox: &Arc<Outbox>,
    rate: &FrameRate,
) -> Ended {
    let metrics = &session.state.metrics.edge;
    loop {
        // Checked between frames only: a frame being handled when a drain starts is
        // answered (its acknowledgement written) before the connection closes.
        let next = {
            let mut next = std::pin::pin!(reader.next(io, socket));
            std::future::poll_fn(|cx| match outbox.poll_ending(cx) {
                Poll::Ready(()) => Poll::Ready(None),
                Poll::Pending => next.as_mut().poll(cx).map(Some),
            })
            .await
        };
        let Some(next) = next else {
            outbox.close(CloseReason::Draining);
            return Ended::ByServer;
        };
        outbox.touch();
        if matches!(
            next,
            Ok(Incoming::Text(_) | Incoming::Binary(_) | Incoming::Ping(_) | Incoming::Pong)
        ) {
            match rate.check() {
                Verdict::Take => {}
                Verdict::Refuse(wait) => {
                    metrics.frame_rate.inc();
                    let wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1);
                    outbox.answer(server::rate_limited(wait_ms));
                    continue;
                }
                Verdict::Close => {
                    metrics.frame_rate_close.inc();
                    outbox.close(CloseReason::Policy(
                        "too many frames over limits.frames_per_second",
                    ));
                    return Ended::ByServer;
                }
            }
        }
        let reason = match next {
            Ok(Incoming::Text(text)) => {
                // Boxed: the handler's future is large and lives only while a frame is handled,
                // keeping an idle connection's task small.
                Box::pin(handle_text(session, outbox, text)).await;
                continue;
            }
            Ok(Incoming::Binary(_)) => {
                outbox.answer(server::error(
                    codes::BAD_FRAME,
                    "binary frames are not supported: send JSON text frames",
                    None,
                ));
                continue;
            }
            Ok(Incoming::Ping(payload)) => {
                outbox.pong(payload);
                continue;
            }
            Ok(Incoming::Pong) => continue,
            Ok(Incoming::Close) | Err(ReadError::Eof) => return Ended::ByClient,
            Err(ReadError::Io(e)) => {
                tracing::debug!(error = %e, "connection read failed");
                return Ended::ByClient;
            }
            Err(ReadError::Frame(FrameError::TooBig)) => CloseReason::TooBig,
            Err(ReadError::Frame(FrameError::BadUtf8)) => CloseReason::BadData,
            Err(ReadError::Frame(FrameError::Protocol(rule))) => CloseReason::Protocol(rule),
            Err(ReadError::Stalled) => {
                metrics.fragment_timeout.inc();
                CloseReason::Policy("message incomplete for longer than server.fragment_timeout")
            }
        };
        outbox.close(reason);
        return Ended::ByServer;
    }
}

/// Hands a text message to the session, then waits until the client has read enough of the
/// answers for the next one to be read.
async fn handle_text(session: &Session, outbox: &Outbox, text: Bytes) {
    let text = std::str::from_utf8(&text).expect("the reader checked UTF-8");
    session.handle(text).await;
    outbox.wait_for_room().await;
}

/// After the server's close frame: reads (and drops) what the client still sends until its
/// close frame, its end of the connection or `CLOSE_LINGER`, whichever comes first.
/// Closing a socket with unread input resets the connection, and the client would lose the
/// close frame; waiting without a bound would let a client that never answers hold the
/// connection open.
async fn linger<Io: AsyncRead + Unpin>(
    io: &mut Io,
    socket: &TcpStream,
    mut reader: FrameReader,
    server: &crate::settings::ServerSettings,
) {
    let _ = tokio::time::timeout(CLOSE_LINGER, async {
        loop {
            match reader.next(io, socket).await {
                Ok(Incoming::Close) => return,
                // The rest of a refused frame is being skipped.
                Ok(_) | Err(ReadError::Frame(FrameError::TooBig)) => {}
                // What follows a broken frame cannot be parsed: start afresh on new bytes,
                // where the client's close frame will be.
                Err(ReadError::Frame(_)) | Err(ReadError::Stalled) => {
                    reader = FrameReader::new(server.read_buffer_bytes, server.max_frame_bytes);
                }
                Err(ReadError::Eof | ReadError::Io(_)) => return,
            }
        }
    })
    .await;
}
