//! Sending: stranger check, store (batched), publish, then the truthful acknowledgement.

use bytes::Bytes;

use super::Session;
use crate::bus::{Envelope, Topic};
use crate::ids::{GroupId, UserId};
use crate::limiter::Verdict;
use crate::message::{Message, Target};
use crate::protocol::{Source, codes, server};
use crate::store::InsertOutcome;

impl Session {
    /// Type 1: a private message to `recipient`.
    pub(super) async fn send_private(
        &self,
        recipient: UserId,
        content: String,
        client_msg_id: Option<String>,
    ) {
        let cid = client_msg_id.as_deref();
        if recipient == self.user {
            return self.refuse(codes::BAD_FRAME, "recipient_id must not be yourself", cid);
        }
        // Counted only when the pair is not known to be talking; `counted` says whether a
        // failure later must take the count back.
        let counted = !self.state.answered.contains(self.user, recipient);
        let verdict = if counted {
            self.state.limiter.try_send(self.user, recipient).await
        } else {
            Ok(Verdict::Answered)
        };
        match verdict {
            Ok(Verdict::Answered) => {
                if counted {
                    self.state.answered.insert(self.user, recipient);
                }
            }
            Ok(Verdict::Allowed) => {}
            Ok(Verdict::OverLimit) => {
                match self.state.store.stranger_exempt(self.user, recipient).await {
                    Ok(true) => {}
                    Ok(false) => {
                        // A retry of a message stored before the limit was reached is told
                        // it was stored, like any repeated client_msg_id.
                        if let Some(cid) = cid {
                            match self.state.writer.find_duplicate(self.user, cid).await {
                                Ok(Some(InsertOutcome::Duplicate { id, ts, delivered })) => {
                                    self.uncount(counted, recipient).await;
                                    let target = Target::User(recipient);
                                    let message =
                                        Message::new(self.user, target, content, client_msg_id);
                                    return self.acknowledge_duplicate(message, id, ts, delivered);
                                }
                                Ok(_) => {}
                                Err(e) => {
                                    self.uncount(counted, recipient).await;
                                    tracing::warn!(error = %e, "duplicate check failed");
                                    return self.not_stored(Some(cid));
                                }
                            }
                        }
                        self.state.metrics.messages_refused.inc();
                        let reason = format!(
                            "stranger limit reached: {} messages until user {recipient} answers or you follow each other",
                            self.state.settings.limits.stranger_messages
                        );
                        return self.refuse(codes::STRANGER_LIMIT, &reason, cid);
                    }
                    Err(e) => {
                        self.uncount(counted, recipient).await;
                        tracing::warn!(error = %e, "stranger exemption check failed");
                        return self.not_stored(cid);
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "stranger limiter failed");
                return self.not_stored(cid);
            }
        }
        let message = Message::new(self.user, Target::User(recipient), content, client_msg_id);
        let (message, outcome) = match self.state.writer.insert(message).await {
            Ok(written) => written,
            Err(e) => {
                tracing::warn!(error = %e, "message not stored");
                self.uncount(counted, recipient).await;
                return self.not_stored(None);
            }
        };
        let cid = message.client_msg_id.as_deref();
        match outcome {
            Err(e) => {
                tracing::debug!(error = %e, "message not stored");
                self.uncount(counted, recipient).await;
                self.not_stored(cid)
            }
            Ok(InsertOutcome::Stored) => {
                self.state.metrics.messages_stored.inc();
                let frame = server::message(&message, Source::Live);
                let to_recipient = Topic::User(recipient);
                // The sender's other devices get a copy; with none anywhere (the hub
                // knows), the copy would only be discarded by this node.
                let to_recipient = if self.state.hub.needs_echo(self.user, self.conn) {
                    let to_me = Topic::User(self.user);
                    tokio::join!(
                        self.publish(&to_recipient, Envelope::deliver(None, &frame)),
                        self.publish(&to_me, Envelope::deliver(Some(self.conn), &frame)),
                    )
                    .0
                } else {
                    self.publish(&to_recipient, Envelope::deliver(None, &frame))
                        .await
                };
                self.acknowledge(&message, to_recipient.unwrap_or(0) > 0);
            }
            Ok(InsertOutcome::Duplicate { id, ts, delivered }) => {
                self.uncount(counted, recipient).await;
                self.acknowledge_duplicate(message, id, ts, delivered);
            }
            Ok(InsertOutcome::Blocked | InsertOutcome::NotMember) => {
                self.uncount(counted, recipient).await;
                self.state.metrics.messages_refused.inc();
                self.refuse(
                    codes::FORBIDDEN,
                    &format!("user {recipient} does not accept your messages"),
                    cid,
                );
            }
        }
    }

    /// Type 4: a group message.
    pub(super) async fn send_group(
        &self,
        group: GroupId,
        content: String,
        client_msg_id: Option<String>,
    ) {
        let message = Message::new(
            self.user,
            Target::Group(group.clone()),
            content,
            client_msg_id,
        );
        let (message, outcome) = match self.state.writer.insert(message).await {
            Ok(written) => written,
            Err(e) => {
                tracing::warn!(error = %e, "message not stored");
                return self.not_stored(None);
            }
        };
        let cid = message.client_msg_id.as_deref();
        match outcome {
            Err(e) => {
                tracing::debug!(error = %e, "message not stored");
                self.not_stored(cid)
            }
            Ok(InsertOutcome::Stored) => {
                self.state.metrics.messages_stored.inc();
                let frame = server::message(&message, Source::Live);
                let nodes = self
                    .publish(
                        &Topic::Group(group.clone()),
                        Envelope::deliver(Some(self.conn), &frame),
                    )
                    .await
                    .unwrap_or(0);
                // The count includes this node when it holds the topic (it does while the
                // sender is connected); here, only another local member device counts.
                let local = self.state.hub.group_presence(&group, self.conn);
                let remote = nodes.saturating_sub(usize::from(local.holds_topic));
                self.acknowledge(&message, remote > 0 || local.other_local);
            }
            Ok(InsertOutcome::Duplicate { id, ts, delivered }) => {
                self.acknowledge_duplicate(message, id, ts, delivered);
            }
            Ok(InsertOutcome::NotMember | InsertOutcome::Blocked) => {
                self.state.metrics.messages_refused.inc();
                if let Ok(None) = self.state.store.role(&group, self.user).await {
                    self.refuse(codes::NOT_FOUND, &format!("no such group {group}"), cid);
                } else {
                    let reason = format!("you are not a member of group {group}");
                    self.refuse(codes::FORBIDDEN, &reason, cid);
                }
            }
        }
    }

    /// Takes back a counted message that was not stored after all.
    async fn uncount(&self, counted: bool, recipient: UserId) {
        if counted {
            self.state.limiter.undo(self.user, recipient).await;
        }
    }

    /// Publishes, counting failures; `None` when the bus failed (the message is stored and
    /// reaches the recipient on their next sync).
    async fn publish(&self, topic: &Topic, envelope: Bytes) -> Option<usize> {
        match self.state.bus.publish_counted(topic, envelope).await {
            Ok(n) => Some(n),
            Err(e) => {
                self.state.metrics.bus_errors.inc();
                tracing::warn!(error = %e, "publish failed; recipients get the message on sync");
                None
            }
        }
    }

    fn acknowledge(&self, message: &Message, delivered: bool) {
        if !delivered && message.client_msg_id.is_some() {
            self.state.writer.undelivered(message.id);
        }
        self.outbox.reply(server::stored(message, delivered));
    }

    /// A repeated `client_msg_id`: the first message's id, time and code; nothing published.
    fn acknowledge_duplicate(
        &self,
        mut message: Message,
        id: uuid::Uuid,
        ts: i64,
        delivered: bool,
    ) {
        message.id = id;
        message.ts = ts;
        self.outbox.reply(server::stored(&message, delivered));
    }

    fn not_stored(&self, cid: Option<&str>) {
        self.state.metrics.messages_refused.inc();
        self.refuse(
            codes::STORAGE_UNAVAILABLE,
            "storage unavailable: the message was not stored; retry with the same client_msg_id",
            cid,
        );
    }
}
