//! Edit (type 11) and delete (type 12) of one's own message within `chat.edit_window`:
//! stored first (sql/edits.rs), then pushed to every participant's devices but the sending
//! one (2700 edited, 2710 deleted), then answered (2701, 2711). A repeated `client_msg_id`
//! answers the first result again and pushes nothing.

use uuid::Uuid;

use super::Session;
use crate::bus::{Envelope, Topic};
use crate::message::Target;
use crate::protocol::{codes, server};
use crate::store::{Edit, EditOutcome};

impl Session {
    /// Type 11 (`content: Some`) or 12 (`None`): edit or delete my message `id`.
    pub(super) async fn change(
        &self,
        id: Uuid,
        content: Option<String>,
        client_msg_id: Option<String>,
    ) {
        let window = self.state.settings.chat.edit_window;
        let now = crate::ids::millis_now();
        let edit = Edit {
            sender: self.user,
            id,
            content,
            client_msg_id,
            now,
            not_before: now.saturating_sub(i64::try_from(window.as_millis()).unwrap_or(i64::MAX)),
        };
        let cid = edit.client_msg_id.as_deref();
        let (code, reason) = match self.state.store.edit_message(&edit).await {
            Ok(EditOutcome::Applied {
                id,
                target,
                at,
                deleted,
                repeat,
            }) => {
                if !repeat {
                    let content = edit.content.as_deref();
                    let frame = server::message_changed(self.user, &target, id, content, at);
                    self.fan_out(&target, &frame).await;
                }
                let answer = server::change_applied(self.user, &target, id, deleted, at, cid);
                return self.outbox.reply(answer);
            }
            Ok(EditOutcome::NotFound) => (codes::NOT_FOUND, format!("no such message {id}")),
            Ok(EditOutcome::Deleted) => (codes::NOT_FOUND, format!("message {id} was deleted")),
            Ok(EditOutcome::NotSender) => (
                codes::FORBIDDEN,
                format!("message {id} is not yours: only its sender may edit or delete it"),
            ),
            Ok(EditOutcome::TooLate) => (
                codes::EDIT_WINDOW_PASSED,
                format!(
                    "message {id} is older than chat.edit_window ({})",
                    humantime::format_duration(window)
                ),
            ),
            Err(e) => {
                tracing::warn!(error = %e, "edit not applied");
                let reason = "storage unavailable: not applied; retry with the same client_msg_id";
                (codes::STORAGE_UNAVAILABLE, reason.to_string())
            }
        };
        self.refuse(code, &reason, cid);
    }

    /// Publishes `frame` to every device of `target`'s participants but this connection:
    /// the peer's and my other devices (private), or the group's member devices.
    pub(super) async fn fan_out(&self, target: &Target, frame: &str) {
        let bus = &self.state.bus;
        let published = match target {
            Target::User(peer) => {
                let (peer_topic, my_topic) = (Topic::User(*peer), Topic::User(self.user));
                let to_peer = bus.publish(&peer_topic, Envelope::deliver(None, frame));
                if self.state.hub.needs_echo(self.user, self.conn) {
                    let to_me = bus.publish(&my_topic, Envelope::deliver(Some(self.conn), frame));
                    let (peer, me) = tokio::join!(to_peer, to_me);
                    peer.and(me)
                } else {
                    to_peer.await
                }
            }
            Target::Group(group) => {
                let envelope = Envelope::deliver(Some(self.conn), frame);
                bus.publish(&Topic::Group(group.clone()), envelope).await
            }
        };
        if let Err(e) = published {
            self.state.metrics.bus_errors.inc();
            tracing::warn!(error = %e, "publish failed; recipients see the change on sync");
        }
    }
}
