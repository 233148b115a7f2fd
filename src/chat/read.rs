//! Reading: unread sync (catch-up), delivery confirmations, history pages and read receipts.

use uuid::Uuid;

use super::Session;
use crate::bus::{Envelope, Topic};
use crate::ids::{GroupId, UserId};
use crate::message::Target;
use crate::protocol::{Cursor, Source, codes, server};
use crate::store::{Page, ReadOutcome, Role, StoreError};

/// The read positions a history page's 2200 carries, for ticks: `read_upto` (the newest
/// message of the conversation the reader has read; a group's read marker) and, for a
/// private conversation only, `peer_read_upto` (the newest of the reader's the peer read).
struct Ticks {
    read_upto: Option<Uuid>,
    peer_read_upto: Option<Option<Uuid>>,
}

impl Session {
    /// Type 2: the next page of what my device is owed (my unread messages past its
    /// confirmed position), oldest first. Changes nothing stored: the next sync on this
    /// connection continues after this page, and a new connection of the device starts again
    /// from what it confirmed (catchup.rs).
    pub(super) async fn sync_unread(&self, limit: u32) {
        let overlap = self.state.settings.chat.catchup_overlap;
        let (after, sent) = match self.catchup.sync_start(overlap).await {
            Ok(start) => start,
            Err(e) => return self.read_failed(e),
        };
        let page = match self
            .state
            .store
            .unread(self.user, after, &sent, limit)
            .await
        {
            Ok(page) => page,
            Err(e) => return self.read_failed(e),
        };
        let last = page.messages.last().map(|m| m.id);
        for message in &page.messages {
            self.outbox.reply(server::message(message, Source::Unread));
        }
        let ids: Vec<Uuid> = page.messages.iter().map(|m| m.id).collect();
        self.catchup.page_sent(&ids, overlap);
        self.outbox.reply(server::unread_page_end(
            page.messages.len() as u32,
            page.more,
            last,
        ));
    }

    /// Type 9: my device holds everything it was owed up to `id`.
    pub(super) async fn confirm(&self, id: Uuid) {
        if self.catchup.device().is_none() {
            let reason = "a delivery confirmation needs a device: connect with ?device_id=";
            return self.refuse(codes::BAD_FRAME, reason, None);
        }
        let now = crate::ids::millis_now();
        if crate::ids::millis_of(&id) > now + 1000 {
            let reason = "content is a message id from the future";
            return self.refuse(codes::BAD_FRAME, reason, None);
        }
        let confirmed = self.catchup.confirm(id);
        if confirmed.write_now
            && let Err(e) = self.catchup.write().await
        {
            // Taken, and written with the next confirmation or when the connection ends.
            tracing::warn!(error = %e, "device position not written");
        }
        if confirmed.write_later {
            self.catchup.schedule_write();
        }
        self.outbox
            .reply(server::delivery_confirmed(id, confirmed.position));
    }

    /// Type 3: my conversation with `peer`, newest first.
    pub(super) async fn private_history(&self, peer: UserId, before: Cursor, limit: u32) {
        match self
            .state
            .store
            .private_history(self.user, peer, before, limit)
            .await
        {
            Ok(page) => {
                let ticks = match self.state.store.private_read_upto(self.user, peer).await {
                    Ok((mine, theirs)) => Some(Ticks {
                        read_upto: mine,
                        peer_read_upto: Some(theirs),
                    }),
                    Err(e) => {
                        tracing::warn!(error = %e, "read positions of a history page not read");
                        None
                    }
                };
                self.history_page(page, ticks)
            }
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
            Ok(page) => {
                let ticks = match self.state.store.group_read_upto(&group, self.user).await {
                    Ok(marker) => Some(Ticks {
                        read_upto: marker,
                        peer_read_upto: None,
                    }),
                    Err(e) => {
                        tracing::warn!(error = %e, "read marker of a history page not read");
                        None
                    }
                };
                self.history_page(page, ticks)
            }
            Err(e) => self.read_failed(e),
        }
    }

    /// Type 5: a read receipt. The peer of a private conversation, every member of a group
    /// of at most `chat.group_receipts_max_members`, and my other devices learn of it (2301).
    pub(super) async fn read(&self, id: Uuid) {
        match self.state.store.mark_read(self.user, id).await {
            Ok(ReadOutcome::Applied(target)) => {
                self.outbox.reply(server::read_applied(id));
                let frame = server::read_by(self.user, id, &target);
                let mine = Envelope::deliver(Some(self.conn), &frame);
                let bus = &self.state.bus;
                match &target {
                    Target::User(peer) => {
                        let theirs = Envelope::deliver(None, &frame);
                        let _ = bus.publish(&Topic::User(*peer), theirs).await;
                        let _ = bus.publish(&Topic::User(self.user), mine).await;
                    }
                    // The group's topic reaches my other devices too.
                    Target::Group(group) if self.live_group_receipts(group).await => {
                        let _ = bus.publish(&Topic::Group(group.clone()), mine).await;
                    }
                    Target::Group(_) => {
                        let _ = bus.publish(&Topic::User(self.user), mine).await;
                    }
                }
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

    /// Whether `group` is small enough for live read receipts to every member.
    async fn live_group_receipts(&self, group: &GroupId) -> bool {
        let most = self.state.settings.chat.group_receipts_max_members;
        match self.state.store.group(group).await {
            Ok(Some(g)) => g.member_count <= most,
            _ => false,
        }
    }

    /// A history page, newest first: the next starts before its oldest message. `ticks`:
    /// the read positions for the 2200; `None` when they could not be read (the 2200 then
    /// has neither).
    fn history_page(&self, page: Page, ticks: Option<Ticks>) {
        let next = if page.more {
            page.messages.last().map(|m| m.id)
        } else {
            None
        };
        for message in &page.messages {
            self.outbox.reply(server::message(message, Source::History));
        }
        let count = page.messages.len() as u32;
        self.outbox.reply(match ticks {
            Some(ticks) => {
                server::history_page_end(count, next, ticks.read_upto, ticks.peer_read_upto)
            }
            None => server::page_end(count, next),
        });
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
