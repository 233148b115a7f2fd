//! Presence: what this node knows about who else receives a send, so that a sender is told
//! 2100 (reached an online device) or 2101 (stored for later), and a private message is
//! copied to the sender's own topic only when another device of the sender may be online.
//!
//! Nodes holding the same user learn of each other through a handshake on the user's topic:
//! a user's first device here publishes `DeviceJoined`, every other node holding the user
//! answers `Present` (see `Hub::announce`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::Notify;

use super::{Hub, State};
use crate::bus::envelope::Control;
use crate::bus::{Bus, BusError, Envelope, Topic};
use crate::ids::{ConnId, GroupId, UserId};

/// How long a user's first device here waits for the other nodes holding the user to
/// answer; past it the user counts as shared with them anyway (an older node that does not
/// answer, a slow link): copies are then sent, as they always were before this handshake.
pub(super) const PRESENCE_WAIT: Duration = Duration::from_millis(500);

/// A user's first device on this node, waiting for the other nodes holding the user to
/// answer its `DeviceJoined`.
#[derive(Default)]
pub(super) struct Joining {
    answers: AtomicUsize,
    done: AtomicBool,
    changed: Notify,
}

impl Joining {
    fn answer(&self) {
        self.answers.fetch_add(1, Ordering::Relaxed);
        self.changed.notify_waiters();
    }

    pub(super) fn finish(&self) {
        self.done.store(true, Ordering::Relaxed);
        self.changed.notify_waiters();
    }

    /// Waits until `ready` holds or `timeout` passed.
    async fn until(&self, ready: impl Fn(&Joining) -> bool, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if ready(self) || tokio::time::timeout_at(deadline, changed).await.is_err() {
                return;
            }
        }
    }
}

/// What a group send needs to know about this node to tell 2100 from 2101.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupPresence {
    /// This node holds the group's topic, so a publish counts this node.
    pub holds_topic: bool,
    /// Another local connection of a member (not the sending one) would receive it.
    pub other_local: bool,
}

impl Hub {
    /// Makes the other nodes holding `user` aware of this node, once `register` said it is
    /// the user's `first` connection here and the user's topic is subscribed; a later
    /// connection waits for the announcement under way (registered by `register`, so a
    /// device arriving before the first one announces waits too). When this returns, every node
    /// holding the user copies the user's sends to this node (or the wait timed out).
    ///
    /// Why: a private message is copied to the sender's own topic only when another device
    /// of the sender may receive it (`needs_echo`); most users have one device, and the copy
    /// is a publish plus a delivery that the sending node itself only discards. A node learns
    /// that it is not alone with a user from this handshake: the first device publishes
    /// `DeviceJoined` on the user's topic (after subscribing, so nodes joining at the same
    /// time see at least one of each other's), the count says how many other nodes hold the
    /// user, and each of them answers `Present` after marking the user shared.
    pub async fn announce(&self, user: UserId, first: bool) {
        if !first {
            let joining = self.state.read().joining.get(&user).cloned();
            if let Some(joining) = joining {
                joining
                    .until(|j| j.done.load(Ordering::Relaxed), PRESENCE_WAIT * 2)
                    .await;
            }
            return;
        }
        let Some(joining) = self.state.read().joining.get(&user).cloned() else {
            return; // The user already left this node.
        };
        let joined = Control::DeviceJoined {
            user,
            node: self.node,
        };
        let shared = match handshake(&*self.bus, user, &joined).await {
            Ok(0) => false,
            Ok(others) => {
                joining
                    .until(
                        |j| j.answers.load(Ordering::Relaxed) >= others,
                        PRESENCE_WAIT,
                    )
                    .await;
                true
            }
            // Whether others hold the user is unknown: copy, as before the handshake.
            Err(_) => true,
        };
        let mut state = self.state.write();
        if state
            .joining
            .get(&user)
            .is_some_and(|j| Arc::ptr_eq(j, &joining))
        {
            state.joining.remove(&user);
        }
        if shared && let Some(local) = state.users.get_mut(&user) {
            local.shared = true;
        }
        drop(state);
        joining.finish();
    }

    /// Whether a private message `user` sends from connection `conn` must be copied to the
    /// user's own topic: another device of theirs is on this node, or another node may
    /// hold one (see `announce`).
    pub fn needs_echo(&self, user: UserId, conn: ConnId) -> bool {
        let state = self.state.read();
        state
            .users
            .get(&user)
            .is_none_or(|l| l.shared || l.conns.iter().any(|c| c.id != conn))
    }

    /// What this node knows about a group for a send from connection `skip`.
    pub fn group_presence(&self, group: &GroupId, skip: ConnId) -> GroupPresence {
        let state = self.state.read();
        let Some(members) = state.groups.get(group) else {
            return GroupPresence {
                holds_topic: false,
                other_local: false,
            };
        };
        let other_local = members.iter().any(|u| {
            state
                .users
                .get(u)
                .is_some_and(|l| l.conns.iter().any(|c| c.id != skip))
        });
        GroupPresence {
            holds_topic: true,
            other_local,
        }
    }

    /// Another node's first device of `user` announced itself: the user is shared with
    /// that node from now on, and it is told this node holds the user too.
    pub(super) fn device_joined_locked(&self, state: &mut State, user: UserId, node: u64) {
        if node == self.node {
            return;
        }
        if let Some(local) = state.users.get_mut(&user) {
            local.shared = true;
            let bus = self.bus.clone();
            let present = Control::Present { user, to: node };
            tokio::spawn(async move {
                let _ = handshake(&*bus, user, &present).await;
            });
        }
    }

    /// Another node holding `user` answered this node's `DeviceJoined`.
    pub(super) fn present_locked(&self, state: &State, user: UserId, to: u64) {
        if to == self.node
            && let Some(joining) = state.joining.get(&user)
        {
            joining.answer();
        }
    }
}

/// Publishes a step of the handshake on `user`'s topic; how many other nodes held the topic
/// (the bus's count, less this node, which holds it).
async fn handshake(bus: &dyn Bus, user: UserId, control: &Control) -> Result<usize, BusError> {
    let nodes = bus
        .publish_counted(&Topic::User(user), Envelope::control(control))
        .await?;
    Ok(nodes.saturating_sub(1))
}
