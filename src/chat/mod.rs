//! What one authenticated connection can ask for: the handling of each client frame.
//!
//! `connection::run` serves one upgraded socket and hands its frames to a `Session`;
//! `Session::handle` parses a frame and answers on the connection's outbox; sending goes
//! store → publish → acknowledge (`send.rs`), reading goes to the store (`read.rs`).

mod catchup;
pub mod connection;
mod edit;
pub mod memberships;
mod read;
mod send;
mod token;
mod typing;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use crate::ids::{ConnId, DeviceId, UserId};
use crate::protocol::{ClientFrame, DecodeError, codes, server};
use crate::state::AppState;
use crate::ws::outbox::Outbox;

/// One connection's user, identity and outbox, with the node's shared state.
pub struct Session {
    pub(crate) state: AppState,
    pub(crate) user: UserId,
    pub(crate) conn: ConnId,
    pub(crate) outbox: Arc<Outbox>,
    /// When the connection's token expires (unix seconds); 0: never.
    pub(crate) expires_at: AtomicU64,
    /// Where this connection's syncs are, and its device's confirmations.
    pub(crate) catchup: Arc<catchup::CatchUp>,
    /// This connection's typing rate state (type 10), bounded.
    pub(crate) typing: typing::TypingState,
}

impl Session {
    /// A session of `user` on connection `conn`, from `device` if the client named one.
    pub fn new(
        state: AppState,
        user: UserId,
        device: Option<DeviceId>,
        conn: ConnId,
        outbox: Arc<Outbox>,
    ) -> Session {
        let chat = &state.settings.chat;
        let catchup = catchup::CatchUp::new(
            state.store.clone(),
            user,
            device,
            chat.max_device_positions,
            chat.confirm_interval,
        );
        Session {
            state,
            user,
            conn,
            outbox,
            expires_at: AtomicU64::new(0),
            catchup,
            typing: typing::TypingState::default(),
        }
    }

    /// The connection ended: what its device confirmed is written.
    pub async fn finish(&self) {
        self.catchup.finish().await;
    }

    /// Handles one text frame; every outcome is answered with at least one frame, except a
    /// forwarded or dropped typing event (type 10).
    pub async fn handle(&self, text: &str) {
        let frame = match ClientFrame::parse(text, self.state.settings.limits.max_content_bytes) {
            Ok(frame) => frame,
            Err(DecodeError::Invalid(reason)) => {
                let cid = client_msg_id_of(text);
                return self.refuse(codes::BAD_FRAME, &reason, cid.as_deref());
            }
            Err(DecodeError::TooLong { limit }) => {
                self.state.metrics.edge.content_too_large.inc();
                let reason = format!("content longer than {limit} bytes");
                return self.refuse(codes::TOO_LONG, &reason, client_msg_id_of(text).as_deref());
            }
        };
        match frame {
            ClientFrame::Private {
                recipient,
                content,
                client_msg_id,
            } => self.send_private(recipient, content, client_msg_id).await,
            ClientFrame::Group {
                group,
                content,
                client_msg_id,
            } => self.send_group(group, content, client_msg_id).await,
            ClientFrame::SyncUnread { limit } => self.sync_unread(limit).await,
            ClientFrame::PrivateHistory {
                peer,
                before,
                limit,
            } => self.private_history(peer, before, limit).await,
            ClientFrame::GroupHistory {
                group,
                before,
                limit,
            } => self.group_history(group, before, limit).await,
            ClientFrame::Read { id } => self.read(id).await,
            ClientFrame::Ping => self.outbox.reply(server::pong()),
            ClientFrame::Refresh { token } => self.refresh(token.expose()).await,
            ClientFrame::Confirm { id } => self.confirm(id).await,
            ClientFrame::Typing { target, typing } => self.typing(target, typing).await,
            ClientFrame::Edit {
                id,
                content,
                client_msg_id,
            } => self.change(id, Some(content), client_msg_id).await,
            ClientFrame::Delete { id, client_msg_id } => self.change(id, None, client_msg_id).await,
        }
    }

    /// Answers with a refusal or failure frame.
    pub(crate) fn refuse(&self, code: u16, reason: &str, client_msg_id: Option<&str>) {
        if code == codes::STORAGE_UNAVAILABLE {
            self.state.metrics.store_errors.inc();
        }
        self.outbox
            .reply(server::error(code, reason, client_msg_id));
    }
}

/// The `client_msg_id` of a frame refused before it was fully parsed, to echo it back.
fn client_msg_id_of(text: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    value.get("client_msg_id")?.as_str().map(str::to_owned)
}
