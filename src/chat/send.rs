//! Sending: stranger check, store (batched), publish, then the truthful acknowledgement.

use bytes::Bytes;

use super::Session;
use crate::bus::{BusError, Envelope, Topic};
use crate::ids::{GroupId, UserId};
use crate::limiter::Verdict;
use crate::message::{Message, Target};
use crate::protocol::{Source, codes, server};
use crate::store::InsertOutcome;
use crate::store::writer::Written;

/// What the stranger check decided about a private message.
enum Stranger {
    /// Send it. `counted`: it counts against the stranger limit, so a failure later must
    /// take the count back.
    Clear { counted: bool },
    /// Over the stranger limit and not exempt.
    OverLimit { counted: bool },
    /// The check failed and the client has its answer.
    Answered,
}

impl Session {
    /// Type 1: a private message to `recipient`.
    #[tracing::instrument(
        target = "chat_gateway::spans",
        name = "send",
        skip_all,
        fields(kind = "private")
    )]
    pub(super) async fn send_private(
        &self,
        recipient: UserId,
        content: String,
        client_msg_id: Option<String>,
    ) {
        let _ack = self.state.metrics.ack.start();
        let cid = client_msg_id.as_deref();
        if recipient == self.user {
            return self.refuse(codes::BAD_FRAME, "recipient_id must not be yourself", cid);
        }
        let counted = match self.stranger_check(recipient, cid).await {
            Stranger::Clear { counted } => counted,
            Stranger::OverLimit { counted } => {
                return self
                    .refuse_stranger(recipient, content, client_msg_id, counted)
                    .await;
            }
            Stranger::Answered => return,
        };
        let message = Message::new(self.user, Target::User(recipient), content, client_msg_id);
        let Some((message, outcome)) = self.store(message).await else {
            self.uncount(counted, recipient).await;
            return self.not_stored(None);
        };
        if !matches!(outcome, Ok(InsertOutcome::Stored)) {
            // Only a message stored now counts against the stranger limit.
            self.uncount(counted, recipient).await;
        }
        let cid = message.client_msg_id.as_deref();
        match outcome {
            Ok(InsertOutcome::Stored) => {
                self.state.metrics.messages_stored.inc();
                let delivered = self.publish_private(recipient, &message).await;
                if delivered {
                    // Online somewhere: no push (src/push).
                    self.state.push.delivered_live(message.id);
                }
                self.acknowledge(&message, delivered);
            }
            Ok(InsertOutcome::Duplicate { id, ts, delivered }) => {
                self.acknowledge_duplicate(message, id, ts, delivered);
            }
            Ok(InsertOutcome::Blocked | InsertOutcome::NotMember) => {
                self.state.metrics.messages_refused.inc();
                let reason = format!("user {recipient} does not accept your messages");
                self.refuse(codes::FORBIDDEN, &reason, cid);
            }
            Err(e) => {
                tracing::debug!(error = %e, "message not stored");
                self.not_stored(cid);
            }
        }
    }

    /// Type 4: a group message.
    #[tracing::instrument(
        target = "chat_gateway::spans",
        name = "send",
        skip_all,
        fields(kind = "group")
    )]
    pub(super) async fn send_group(
        &self,
        group: GroupId,
        content: String,
        client_msg_id: Option<String>,
    ) {
        let _ack = self.state.metrics.ack.start();
        let target = Target::Group(group.clone());
        let message = Message::new(self.user, target, content, client_msg_id);
        let Some((message, outcome)) = self.store(message).await else {
            return self.not_stored(None);
        };
        let cid = message.client_msg_id.as_deref();
        match outcome {
            Ok(InsertOutcome::Stored) => {
                self.state.metrics.messages_stored.inc();
                let delivered = self.publish_group(&group, &message).await;
                self.acknowledge(&message, delivered);
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
            Err(e) => {
                tracing::debug!(error = %e, "message not stored");
                self.not_stored(cid);
            }
        }
    }

    /// The stranger limit. Counted only when the pair is not known to be talking; over the
    /// limit, a pair that follows each other (or has talked) is still exempt.
    async fn stranger_check(&self, recipient: UserId, cid: Option<&str>) -> Stranger {
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
                Stranger::Clear { counted }
            }
            Ok(Verdict::Allowed) => Stranger::Clear { counted },
            Ok(Verdict::OverLimit) => {
                match self.state.store.stranger_exempt(self.user, recipient).await {
                    Ok(true) => Stranger::Clear { counted },
                    Ok(false) => Stranger::OverLimit { counted },
                    Err(e) => {
                        self.uncount(counted, recipient).await;
                        tracing::warn!(error = %e, "stranger exemption check failed");
                        self.not_stored(cid);
                        Stranger::Answered
                    }
                }
            }
            // Not from the shipped counters: shared ones fall back to this node's own
            // (`limiter::Fallback`), which always answer.
            Err(e) => {
                tracing::warn!(error = %e, "stranger limiter failed");
                self.not_stored(cid);
                Stranger::Answered
            }
        }
    }

    /// Answers a private message over the stranger limit: a retry of a message stored before
    /// the limit was reached is told it was stored, like any repeated client_msg_id; any
    /// other is refused.
    async fn refuse_stranger(
        &self,
        recipient: UserId,
        content: String,
        client_msg_id: Option<String>,
        counted: bool,
    ) {
        if let Some(cid) = client_msg_id.as_deref() {
            match self.state.writer.find_duplicate(self.user, cid).await {
                Ok(Some(InsertOutcome::Duplicate { id, ts, delivered })) => {
                    self.uncount(counted, recipient).await;
                    let target = Target::User(recipient);
                    let message = Message::new(self.user, target, content, client_msg_id);
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
        self.state.metrics.edge.stranger.inc();
        let reason = format!(
            "stranger limit reached: {} messages until user {recipient} answers or you follow each other",
            self.state.settings.limits.stranger_messages
        );
        self.refuse(codes::STRANGER_LIMIT, &reason, client_msg_id.as_deref());
    }

    /// Stores `message` through the batching writer: the message as stored and what became
    /// of it, or `None` when the writer itself failed.
    async fn store(&self, message: Message) -> Option<Written> {
        match self.state.writer.insert(message).await {
            Ok(written) => Some(written),
            Err(e) => {
                tracing::warn!(error = %e, "message not stored");
                None
            }
        }
    }

    /// Publishes a stored private message to the recipient; whether it reached a node
    /// holding them (2100, else 2101).
    async fn publish_private(&self, recipient: UserId, message: &Message) -> bool {
        let frame = server::message(message, Source::Live);
        let to_recipient = Topic::User(recipient);
        // The sender's other devices get a copy; with none anywhere (the hub knows), the
        // copy would only be discarded by this node.
        let nodes = if self.state.hub.needs_echo(self.user, self.conn) {
            let to_me = Topic::User(self.user);
            tokio::join!(
                self.publish(&to_recipient, Envelope::deliver(None, &frame)),
                self.publish_copy(&to_me, Envelope::deliver(Some(self.conn), &frame)),
            )
            .0
        } else {
            self.publish(&to_recipient, Envelope::deliver(None, &frame))
                .await
        };
        nodes.unwrap_or(0) > 0
    }

    /// Publishes a stored group message; whether it reached another member's device.
    async fn publish_group(&self, group: &GroupId, message: &Message) -> bool {
        let frame = server::message(message, Source::Live);
        let to_group = Topic::Group(group.clone());
        let nodes = self
            .publish(&to_group, Envelope::deliver(Some(self.conn), &frame))
            .await
            .unwrap_or(0);
        // The count includes this node when it holds the topic (it does while the sender is
        // connected); here, only another local member device counts.
        let local = self.state.hub.group_presence(group, self.conn);
        let remote = nodes.saturating_sub(usize::from(local.holds_topic));
        remote > 0 || local.other_local
    }

    /// Publishes, counting failures: how many nodes received it, `None` when the bus failed
    /// (the message is stored and reaches the recipient on their next sync).
    /// `publish_private` and `publish_group` read its count.
    #[tracing::instrument(target = "chat_gateway::spans", name = "publish", skip_all)]
    async fn publish(&self, topic: &Topic, envelope: Bytes) -> Option<usize> {
        let _publish = self.state.metrics.publish.start();
        let published = self.state.bus.publish_counted(topic, envelope).await;
        published.map_err(|e| self.bus_failed(e)).ok()
    }

    /// Publishes a copy whose reach nobody reads (the sender's other devices).
    #[tracing::instrument(
        target = "chat_gateway::spans",
        name = "publish",
        skip_all,
        fields(copy = true)
    )]
    async fn publish_copy(&self, topic: &Topic, envelope: Bytes) {
        let _publish = self.state.metrics.publish.start();
        let published = self.state.bus.publish(topic, envelope).await;
        let _ = published.map_err(|e| self.bus_failed(e));
    }

    fn bus_failed(&self, e: BusError) {
        self.state.metrics.bus_errors.inc();
        tracing::warn!(error = %e, "publish failed; recipients get the message on sync");
    }

    /// Takes back a counted message that was not stored after all.
    async fn uncount(&self, counted: bool, recipient: UserId) {
        if counted {
            self.state.limiter.undo(self.user, recipient).await;
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
