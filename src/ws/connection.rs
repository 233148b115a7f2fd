//! One connection: a reader task that handles client frames in order, and a writer task
//! that drains the outbox to the socket, pings, and closes with the right code.

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use std::sync::Arc;
use std::time::Duration;

use super::outbox::{CloseReason, Outbox};
use crate::chat::Session;
use crate::ids::{UserId, next_conn_id};
use crate::protocol::{codes, server};
use crate::state::AppState;

/// Longest a write to a client may take before the connection is dropped as stuck.
const WRITE_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a connection closed for a too-large frame waits for the client's close frame.
const CLOSE_LINGER: Duration = Duration::from_secs(2);

/// Serves one upgraded, authenticated socket until it ends.
pub async fn run(socket: WebSocket, state: AppState, user: UserId) {
    let _tracked = state.tracker.token();
    let conn = next_conn_id();
    let outbox = Arc::new(Outbox::new(state.settings.server.outbound_queue));
    outbox.reply(server::connected(user));
    state.metrics.connections_opened.inc();
    if state.hub.register(user, conn, outbox.clone()) {
        match state.store.user_group_ids(user).await {
            Ok(groups) => state.hub.add_groups(user, groups),
            // Live group pushes wait for the next connection; syncs still return them.
            Err(e) => tracing::warn!(error = %e, user, "could not load the user's groups"),
        }
    }
    // The 1000 frame (queued first) goes out once this node receives the user's and groups'
    // channels: from then on, everything sent to the user reaches this socket live.
    state.bus.settled().await;
    tracing::debug!(user, conn, "connected");

    let (sink, stream) = socket.split();
    let writer = tokio::spawn(write_loop(sink, outbox.clone(), state.clone()));
    let session = Session::new(state.clone(), user, conn, outbox.clone());
    read_loop(stream, &session, &outbox).await;

    state.hub.unregister(user, conn);
    outbox.close(CloseReason::Ended);
    let _ = writer.await;
    state.metrics.connections_closed.inc();
    tracing::debug!(user, conn, "disconnected");
}

async fn read_loop(mut stream: SplitStream<WebSocket>, session: &Session, outbox: &Outbox) {
    let max_frame_bytes = session.state.settings.server.max_frame_bytes;
    loop {
        let next = tokio::select! {
            next = stream.next() => next,
            _ = outbox.stopped() => return,
        };
        outbox.touch();
        match next {
            None | Some(Ok(Message::Close(_))) => return,
            Some(Ok(Message::Text(text))) if text.len() > max_frame_bytes => {
                return close_too_big(stream, outbox).await;
            }
            Some(Ok(Message::Binary(data))) if data.len() > max_frame_bytes => {
                return close_too_big(stream, outbox).await;
            }
            Some(Ok(Message::Text(text))) => {
                // Boxed: the handler's future is large and lives only while a frame is handled,
                // keeping an idle connection's task small.
                Box::pin(session.handle(&text)).await;
                outbox.wait_for_room().await;
            }
            Some(Ok(Message::Binary(_))) => session.refuse(
                codes::BAD_FRAME,
                "binary frames are not supported: send JSON text frames",
                None,
            ),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            Some(Err(e)) => {
                let reason = match classify(&e) {
                    Some(reason) => reason,
                    None => {
                        tracing::debug!(error = %e, "connection read failed");
                        return;
                    }
                };
                outbox.close(reason);
                return;
            }
        }
    }
}

/// Closes for a message over `server.max_frame_bytes` (1009), then discards what the client
/// still sends until its close frame: dropping the socket with input unread would reset the
/// connection, and the client would lose our close frame.
async fn close_too_big(mut stream: SplitStream<WebSocket>, outbox: &Outbox) {
    outbox.close(CloseReason::TooBig);
    let _ = tokio::time::timeout(CLOSE_LINGER, async {
        while let Some(Ok(message)) = stream.next().await {
            if matches!(message, Message::Close(_)) {
                return;
            }
        }
    })
    .await;
}

/// The close reason for a read error the client should be told about.
fn classify(e: &axum::Error) -> Option<CloseReason> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(ws) = err.downcast_ref::<tokio_tungstenite::tungstenite::Error>() {
            return match ws {
                tokio_tungstenite::tungstenite::Error::Capacity(_) => Some(CloseReason::TooBig),
                tokio_tungstenite::tungstenite::Error::Utf8(_) => Some(CloseReason::BadData),
                _ => None,
            };
        }
        source = err.source();
    }
    None
}

async fn write_loop(mut sink: SplitSink<WebSocket, Message>, outbox: Arc<Outbox>, state: AppState) {
    let ping_every = state.settings.server.ping_interval;
    let idle_after = state.settings.server.idle_timeout.as_millis() as u64;
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
    let mut frames: Vec<Utf8Bytes> = Vec::new();
    let mut draining = false;
    loop {
        tokio::select! {
            _ = outbox.ready() => {
                let closed = outbox.drain(&mut frames);
                let written = tokio::time::timeout(WRITE_TIMEOUT, async {
                    for frame in frames.drain(..) {
                        sink.feed(Message::Text(frame)).await?;
                    }
                    sink.flush().await
                })
                .await;
                frames.clear();
                frames.shrink_to(16);
                outbox.notify_drained();
                if !matches!(written, Ok(Ok(()))) {
                    outbox.close(CloseReason::TooSlow);
                    return;
                }
                if let Some(reason) = closed {
                    if reason == CloseReason::TooSlow {
                        state.metrics.slow_consumers.inc();
                    }
                    close(&mut sink, reason).await;
                    return;
                }
            }
            _ = ping.tick() => {
                if outbox.silent_for() > idle_after {
                    outbox.close(CloseReason::Idle);
                } else if tokio::time::timeout(WRITE_TIMEOUT, sink.send(Message::Ping(Default::default()))).await.is_err() {
                    outbox.close(CloseReason::TooSlow);
                    return;
                }
            }
            _ = state.shutdown.cancelled(), if !draining => {
                draining = true;
                outbox.close(CloseReason::Draining);
            }
        }
    }
}

/// Tells the client why (a 1001 frame), then closes with the matching code.
async fn close(sink: &mut SplitSink<WebSocket, Message>, reason: CloseReason) {
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        if !matches!(reason, CloseReason::Idle | CloseReason::Ended) {
            sink.send(Message::Text(server::closing(reason.reason()).into()))
                .await?;
        }
        sink.send(Message::Close(Some(CloseFrame {
            code: reason.close_code(),
            reason: Utf8Bytes::from_static(reason.reason()),
        })))
        .await
    })
    .await;
}
