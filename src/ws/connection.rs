//! One connection: a reader task that handles client frames in order, and a writer task
//! that drains the outbox to the socket (with the pings the hub's sweeper asks for) and
//! closes with the right code.

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use super::outbox::{CloseReason, Outbox};
use crate::chat::Session;
use crate::ids::{UserId, next_conn_id};
use crate::protocol::{codes, server};
use crate::state::AppState;

/// How long a connection closed for a too-large frame waits for the client's close frame.
const CLOSE_LINGER: Duration = Duration::from_secs(2);

/// Serves one upgraded, authenticated socket until it ends.
///
/// Takes the socket already split: a future holding the whole `WebSocket` by value would
/// reserve its size in the connection task for the task's whole life, on top of the halves'
/// shared allocation (about 700 bytes more per connection).
pub async fn run(
    sink: SplitSink<WebSocket, Message>,
    stream: SplitStream<WebSocket>,
    state: AppState,
    user: UserId,
) {
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
                return Box::pin(close_too_big(stream, outbox)).await;
            }
            Some(Ok(Message::Binary(data))) if data.len() > max_frame_bytes => {
                return Box::pin(close_too_big(stream, outbox)).await;
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
    let mut frames: VecDeque<Utf8Bytes> = VecDeque::new();
    loop {
        outbox.ready().await;
        let drained = outbox.drain(&mut frames);
        outbox.writing(true);
        let write = async {
            for frame in frames.drain(..) {
                sink.feed(Message::Text(frame)).await?;
            }
            if drained.ping {
                sink.feed(Message::Ping(Default::default())).await?;
            }
            sink.flush().await
        };
        // No timer per write: the hub's sweeper aborts a write blocked for too long.
        let written = tokio::select! {
            written = write => written.is_ok(),
            _ = outbox.aborted() => false,
        };
        outbox.writing(false);
        frames = VecDeque::new();
        outbox.notify_drained();
        if !written {
            outbox.close(CloseReason::TooSlow);
            return;
        }
        if let Some(reason) = drained.closed {
            if reason == CloseReason::TooSlow {
                state.metrics.slow_consumers.inc();
            }
            // Boxed: rarely needed, and inline it would enlarge every idle writer.
            Box::pin(close(&mut sink, reason)).await;
            return;
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
