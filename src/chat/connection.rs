//! One chat connection on the WebSocket transport: registers with the hub, drives a
//! `Session` with the client's frames in order, and leaves a writer task to write what the
//! socket did not take directly (ws/outbox.rs) and close with the right code.

use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncRead;
use tokio::net::TcpStream;

use super::Session;
use crate::ids::{UserId, next_conn_id};
use crate::protocol::{codes, server};
use crate::state::AppState;
use crate::ws::close::CloseReason;
use crate::ws::frame::{FrameError, FrameReader, Incoming, ReadError};
use crate::ws::outbox::Outbox;

/// How long a connection closed for a too-large frame waits for the client's close frame.
const CLOSE_LINGER: Duration = Duration::from_secs(2);

/// Serves one upgraded, authenticated socket until it ends. `io` is the upgraded connection
/// (which may hold bytes it read ahead of the handshake's end), `socket` its TCP socket.
pub async fn run<Io: AsyncRead + Unpin>(
    mut io: Io,
    socket: Arc<TcpStream>,
    state: AppState,
    user: UserId,
) {
    let _tracked = state.tracker.token();
    let conn = next_conn_id();
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
    state.hub.announce(user, first).await;
    tracing::debug!(user, conn, "connected");

    let writer = tokio::spawn({
        let (outbox, state) = (outbox.clone(), state.clone());
        async move {
            if outbox.write_loop().await == CloseReason::TooSlow {
                state.metrics.slow_consumers.inc();
            }
        }
    });
    let session = Session::new(state.clone(), user, conn, outbox.clone());
    let server = &state.settings.server;
    let mut reader = FrameReader::new(server.read_buffer_bytes, server.max_frame_bytes);
    read_loop(&mut io, &socket, &mut reader, &session, &outbox).await;

    state.hub.unregister(user, conn);
    outbox.close(CloseReason::Ended);
    let _ = writer.await;
    state.metrics.connections_closed.inc();
    tracing::debug!(user, conn, "disconnected");
}

/// Hands each client frame to the session, in order, until the client closes, the
/// connection fails or the outbox stops it.
async fn read_loop<Io: AsyncRead + Unpin>(
    io: &mut Io,
    socket: &TcpStream,
    reader: &mut FrameReader,
    session: &Session,
    outbox: &Outbox,
) {
    loop {
        let next = tokio::select! {
            next = reader.next(io, socket) => next,
            _ = outbox.stopped() => return,
        };
        outbox.touch();
        match next {
            Ok(Incoming::Text(text)) => {
                let text = std::str::from_utf8(&text).expect("the reader checked UTF-8");
                // Boxed: the handler's future is large and lives only while a frame is handled,
                // keeping an idle connection's task small.
                Box::pin(session.handle(text)).await;
                outbox.wait_for_room().await;
            }
            Ok(Incoming::Binary(_)) => session.refuse(
                codes::BAD_FRAME,
                "binary frames are not supported: send JSON text frames",
                None,
            ),
            Ok(Incoming::Ping(payload)) => outbox.pong(payload),
            Ok(Incoming::Pong) => {}
            Ok(Incoming::Close) => return,
            Err(ReadError::Frame(FrameError::TooBig)) => {
                return Box::pin(close_too_big(io, socket, reader, outbox)).await;
            }
            Err(ReadError::Frame(FrameError::BadUtf8)) => {
                return outbox.close(CloseReason::BadData);
            }
            Err(ReadError::Frame(FrameError::Protocol(rule))) => {
                return outbox.close(CloseReason::Protocol(rule));
            }
            Err(ReadError::Eof) => return,
            Err(ReadError::Io(e)) => {
                tracing::debug!(error = %e, "connection read failed");
                return;
            }
        }
    }
}

/// Closes for a message over `server.max_frame_bytes` (1009), then discards what the client
/// still sends until its close frame: closing the socket with input unread would reset the
/// connection, and the client would lose our close frame.
async fn close_too_big<Io: AsyncRead + Unpin>(
    io: &mut Io,
    socket: &TcpStream,
    reader: &mut FrameReader,
    outbox: &Outbox,
) {
    outbox.close(CloseReason::TooBig);
    let _ = tokio::time::timeout(CLOSE_LINGER, async {
        loop {
            match reader.next(io, socket).await {
                Ok(Incoming::Close) => return,
                Ok(_) | Err(ReadError::Frame(FrameError::TooBig)) => {}
                Err(_) => return,
            }
        }
    })
    .await;
}
