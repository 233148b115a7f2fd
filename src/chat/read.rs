//! Reading: unread sync, history pages and read receipts.

use uuid::Uuid;

use super::Session;
use crate::bus::{Envelope, Topic};
use crate::ids::{GroupId, UserId};
use crate::message::Target;
use crate::protocol::{Cursor, Source, codes, server};
use crate::store::{Page, ReadOutcome, Role, StoreError};

impl Session {
    /// Type 2: my unread messages, oldest first; they become read.
    pub(super) async fn sync_unread(&self, limit: u32) {
        match self.state.store.take_unread(self.user, limit).await {
            // Oldest first: if more remain, the next sync continues after the last one.
            Ok(page) => self.send_page(page, Source::Unread, |p| p.messages.last().map(|m| m.id)),
            Err(e) => self.read_failed(e),
        }
    }

    /// Type 3: my conversation with `peer`, newest first.
    pub(super) async fn private_history(&self, peer: UserId, before: Cursor, limit: u32) {
        match self
            .state
            .store
            .private_history(self.user, peer, before, limit)
            .await
        {
            Ok(page) => self.send_page(page, Source::History, |p| p.messages.last().map(|m| m.id)),
            Err(e) => self.read_failed(e),
        }
    }

    /// Type 6: a group's history, newest first; members only.
    pub(super) async fn group_history(&self, group: GroupId, before: Cursor, limit: u32) {
        match self.state.store.role(&group, self.user).await {
            Ok(None) => {
                return self.refuse(codes::NOT_FOUND, &format!("no such group {group}"), None);
            }
            Ok(Some(Role::Outsider)) => {
                let reason = format!("you are not a member of group {group}");
                return self.refuse(codes::FORBIDDEN, &reason, None);
            }
            Ok(Some(_)) => {}
            Err(e) => return self.read_failed(e),
        }
        match self.state.store.group_history(&group, before, limit).await {
            Ok(page) => self.send_page(page, Source::History, |p| p.messages.last().map(|m| m.id)),
            Err(e) => self.read_failed(e),
        }
    }

    /// Type 5: a read receipt. The peer of a private conversation and my other devices learn
    /// of it (2301).
    pub(super) async fn read(&self, id: Uuid) {
        match self.state.store.mark_read(self.user, id).await {
            Ok(ReadOutcome::Applied(target)) => {
                self.outbox.reply(server::read_applied(id));
                let frame = server::read_by(self.user, id, &target);
                if let Target::User(peer) = target {
                    let _ = self
                        .state
                        .bus
                        .publish(&Topic::User(peer), Envelope::deliver(None, &frame))
                        .await;
                }
                let _ = self
                    .state
                    .bus
                    .publish(
                        &Topic::User(self.user),
                        Envelope::deliver(Some(self.conn), &frame),
                    )
                    .await;
            }
            Ok(ReadOutcome::NotFound) => {
                self.refuse(codes::NOT_FOUND, &format!("no such message {id}"), None)
            }
            Ok(ReadOutcome::NotMember) => self.refuse(
                codes::FORBIDDEN,
                "that message is in a group you are not a member of",
                None,
            ),
            Err(e) => self.read_failed(e),
        }
    }

    fn send_page(&self, page: Page, source: Source, next: impl Fn(&Page) -> Option<Uuid>) {
        let next = if page.more { next(&page) } else { None };
        for message in &page.messages {
            self.outbox.reply(server::message(message, source));
        }
        self.outbox
            .reply(server::page_end(page.messages.len() as u32, next));
    }

    fn read_failed(&self, e: StoreError) {
        tracing::warn!(error = %e, "read failed");
        self.refuse(
            codes::STORAGE_UNAVAILABLE,
            "storage unavailable: try again",
            None,
        );
    }
}
