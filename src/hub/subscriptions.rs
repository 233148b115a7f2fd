//! The reference counts that decide this node's bus subscriptions.
//!
//! A user's topic is subscribed when their first local connection registers and dropped
//! when the last leaves (at once, so "offline" answers stay exact). A group's topic is
//! subscribed while at least one local connection belongs to a member, and dropped
//! `linger` after the last one leaves, to absorb reconnect churn.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use axum::extract::ws::Utf8Bytes;

use super::{Hub, LocalUser, State};
use crate::bus::Topic;
use crate::bus::envelope::Control;
use crate::ids::{GroupId, UserId};

impl Hub {
    /// Adds groups of a registered user (from the store, on their first connection).
    pub fn add_groups(&self, user: UserId, groups: impl IntoIterator<Item = GroupId>) {
        let mut state = self.state.write();
        let State {
            users, groups: all, ..
        } = &mut *state;
        let Some(local) = users.get_mut(&user) else {
            return;
        };
        for group in groups {
            if local.groups.insert(group.clone()) {
                self.join_locked(all, group, user);
            }
        }
    }

    /// Makes the groups of local `user` exactly `groups` (the store's view, after a bus
    /// outage in which membership changes may have been lost): joins the missing ones and
    /// leaves the others. Nothing for a user no longer here.
    pub fn set_groups(&self, user: UserId, groups: HashSet<GroupId>) {
        let mut state = self.state.write();
        let State {
            users, groups: all, ..
        } = &mut *state;
        let Some(local) = users.get_mut(&user) else {
            return;
        };
        let stale: Vec<GroupId> = local.groups.difference(&groups).cloned().collect();
        for group in stale {
            local.groups.remove(&group);
            self.leave_locked(all, group, user);
        }
        for group in groups {
            if local.groups.insert(group.clone()) {
                self.join_locked(all, group, user);
            }
        }
    }

    /// The users with a connection on this node.
    pub fn local_users(&self) -> Vec<UserId> {
        self.state.read().users.keys().copied().collect()
    }

    /// The last local connection of `user` is gone: releases the user's topic at once and
    /// the user's share of each group.
    pub(super) fn last_left_locked(&self, state: &mut State, user: UserId) {
        let local = state.users.remove(&user).unwrap_or_default();
        if let Some(announcing) = state.joining.remove(&user) {
            announcing.finish();
        }
        self.bus.unsubscribe(Topic::User(user));
        for group in local.groups {
            self.leave_locked(&mut state.groups, group, user);
        }
    }

    /// Applies a membership change announced on the control topic to the local users.
    pub(super) fn apply_membership_locked(&self, state: &mut State, control: Control) {
        let State { users, groups, .. } = state;
        match control {
            Control::MemberAdded { group, user } => {
                if let Some(local) = users.get_mut(&user)
                    && local.groups.insert(group.clone())
                {
                    self.tell(local, "joined", &group);
                    self.join_locked(groups, group, user);
                }
            }
            Control::MemberRemoved { group, user } => {
                if let Some(local) = users.get_mut(&user)
                    && local.groups.remove(&group)
                {
                    self.tell(local, "left", &group);
                    self.leave_locked(groups, group, user);
                }
            }
            Control::GroupDeleted { group } => {
                if let Some(members) = groups.remove(&group) {
                    for user in members {
                        if let Some(local) = users.get_mut(&user) {
                            local.groups.remove(&group);
                            self.tell(local, "deleted", &group);
                        }
                    }
                    self.bus.unsubscribe(Topic::Group(group));
                }
            }
            Control::DeviceJoined { .. } | Control::Present { .. } => {}
        }
    }

    /// Pushes a 2800 (the conversation list changed) to every local device of a user.
    fn tell(&self, local: &LocalUser, change: &str, group: &str) {
        let frame = Utf8Bytes::from(crate::protocol::server::conversation_update(change, group));
        for conn in &local.conns {
            self.send(conn, &frame, false);
        }
    }

    fn join_locked(
        &self,
        groups: &mut HashMap<GroupId, HashSet<UserId>>,
        group: GroupId,
        user: UserId,
    ) {
        match groups.entry(group) {
            // Held, or lingering (an empty set): the topic is subscribed already.
            Entry::Occupied(mut held) => {
                held.get_mut().insert(user);
            }
            Entry::Vacant(vacant) => {
                let topic = Topic::Group(vacant.key().clone());
                vacant.insert(HashSet::from([user]));
                self.bus.subscribe(topic);
            }
        }
    }

    fn leave_locked(
        &self,
        groups: &mut HashMap<GroupId, HashSet<UserId>>,
        group: GroupId,
        user: UserId,
    ) {
        let Some(members) = groups.get_mut(&group) else {
            return;
        };
        members.remove(&user);
        if !members.is_empty() {
            return;
        }
        if self.linger.is_zero() {
            groups.remove(&group);
            self.bus.unsubscribe(Topic::Group(group));
            return;
        }
        let me = self.me.clone();
        let linger = self.linger;
        tokio::spawn(async move {
            tokio::time::sleep(linger).await;
            if let Some(hub) = me.upgrade() {
                hub.release_if_idle(group);
            }
        });
    }

    fn release_if_idle(&self, group: GroupId) {
        let mut state = self.state.write();
        if state.groups.get(&group).is_some_and(|m| m.is_empty()) {
            state.groups.remove(&group);
            self.bus.unsubscribe(Topic::Group(group));
        }
    }
}
