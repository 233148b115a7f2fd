//! The hub: this node's local connections by user and by group, and the reference counts
//! that decide the bus subscriptions.
//!
//! A user's topic is subscribed when their first local connection registers and dropped
//! when the last leaves (at once, so "offline" answers stay exact). A group's topic is
//! subscribed while at least one local connection belongs to a member, and dropped
//! `linger` after the last one leaves, to absorb reconnect churn.
//!
//! All bus subscribe/unsubscribe calls are made under the hub's write lock, so they reach
//! the bus in the order the transitions happened. Nothing here awaits under a lock.

use axum::extract::ws::Utf8Bytes;
use bytes::Bytes;
use parking_lot::RwLock;
use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::Notify;

use crate::bus::envelope::Control;
use crate::bus::{Bus, Envelope, Inbound, Topic};
use crate::ids::{ConnId, GroupId, UserId};
use crate::metrics::Metrics;
use crate::protocol::server;
use crate::ws::flusher::Flusher;
use crate::ws::outbox::{CloseReason, Outbox, Pushed};

struct Conn {
    id: ConnId,
    outbox: Arc<Outbox>,
}

#[derive(Default)]
struct LocalUser {
    /// Oldest first, so the device limit evicts the oldest.
    conns: Vec<Conn>,
    groups: HashSet<GroupId>,
    /// Another node may hold a device of this user, so the user's sends are copied to
    /// their topic (`needs_echo`). Set by the `DeviceJoined` handshake (`announce`), never
    /// cleared while the user is here.
    shared: bool,
}

/// A user's first device on this node, waiting for the other nodes holding the user to
/// answer its `DeviceJoined`.
#[derive(Default)]
struct Joining {
    answers: AtomicUsize,
    done: AtomicBool,
    changed: Notify,
}

impl Joining {
    fn answer(&self) {
        self.answers.fetch_add(1, Ordering::Relaxed);
        self.changed.notify_waiters();
    }

    fn finish(&self) {
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

/// How long a user's first device here waits for the other nodes holding the user to
/// answer; past it the user counts as shared with them anyway (an older node that does not
/// answer, a slow link): copies are then sent, as they always were before this handshake.
const PRESENCE_WAIT: Duration = Duration::from_millis(500);

#[derive(Default)]
struct State {
    users: HashMap<UserId, LocalUser>,
    /// Local online members per group; an empty set is a group topic lingering before
    /// its unsubscribe.
    groups: HashMap<GroupId, HashSet<UserId>>,
    /// Users whose first device here is announcing itself to the other nodes.
    joining: HashMap<UserId, Arc<Joining>>,
}

/// A group message reaching at least this many local members is written after
/// `server.group_write_delay` (ws/flusher.rs).
pub const LARGE_FAN_OUT: usize = 64;

/// The liveness sweeper visits the connections in this many slices per `ping_interval`.
pub const SWEEP_SLICES: u64 = 16;

/// This node's connections and subscriptions.
pub struct Hub {
    state: RwLock<State>,
    bus: Arc<dyn Bus>,
    /// How long a group topic stays subscribed after its last local member left.
    linger: Duration,
    /// Connections of one user on this node before the oldest is replaced.
    max_devices: usize,
    metrics: Arc<Metrics>,
    /// Write the deliveries: one per runtime worker thread, a connection always to the same.
    flushers: Vec<Arc<Flusher>>,
    /// The same for large group fan-outs, after `server.group_write_delay`.
    delayed: Vec<Arc<Flusher>>,
    /// For the linger timers, which outlive the call that starts them.
    me: Weak<Hub>,
    /// This node's id in the presence handshake (random).
    node: u64,
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
    /// A hub over `bus`; attaches itself to the bus as its inbound side.
    pub fn new(
        bus: Arc<dyn Bus>,
        linger: Duration,
        max_devices: usize,
        group_write_delay: Duration,
        metrics: Arc<Metrics>,
    ) -> Arc<Hub> {
        let runtime = tokio::runtime::Handle::try_current().ok();
        let workers = runtime.as_ref().map_or(1, |r| r.metrics().num_workers());
        let start = |delay| -> Vec<Arc<Flusher>> {
            (0..workers.max(1))
                .map(|_| {
                    let flusher = Flusher::new(delay);
                    if let Some(runtime) = &runtime {
                        runtime.spawn(flusher.clone().run());
                    }
                    flusher
                })
                .collect()
        };
        let flushers = start(Duration::ZERO);
        let delayed = start(group_write_delay);
        let hub = Arc::new_cyclic(|me| Hub {
            state: RwLock::new(State::default()),
            bus: bus.clone(),
            linger,
            max_devices: max_devices.max(1),
            metrics,
            flushers,
            delayed,
            me: me.clone(),
            node: rand::random(),
        });
        bus.attach(hub.clone());
        bus.subscribe(Topic::Control);
        hub
    }

    /// Registers a connection of `user`. Returns true when it is the user's first on this
    /// node (the caller then loads the user's groups and calls `add_groups`).
    pub fn register(&self, user: UserId, id: ConnId, outbox: Arc<Outbox>) -> bool {
        let mut state = self.state.write();
        let first = !state.users.contains_key(&user);
        let entry = state.users.entry(user).or_insert_with(|| LocalUser {
            // Most users have one device: no room reserved for more.
            conns: Vec::with_capacity(1),
            groups: HashSet::new(),
            shared: false,
        });
        entry.conns.push(Conn { id, outbox });
        while entry.conns.len() > self.max_devices {
            let oldest = entry.conns.remove(0);
            oldest.outbox.close(CloseReason::Replaced);
        }
        if first {
            self.bus.subscribe(Topic::User(user));
            // Later devices wait for this one's announcement (`announce`).
            state.joining.insert(user, Arc::default());
        }
        first
    }

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
        let shared = match self
            .bus
            .publish_counted(&Topic::User(user), Envelope::control(&joined))
            .await
        {
            Ok(nodes) if nodes <= 1 => false,
            Ok(nodes) => {
                let others = nodes - 1;
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

    /// Removes a connection; the user's and groups' topics are released if it was the last.
    pub fn unregister(&self, user: UserId, id: ConnId) {
        let mut state = self.state.write();
        let State {
            users,
            groups,
            joining,
        } = &mut *state;
        let Some(local) = users.get_mut(&user) else {
            return;
        };
        local.conns.retain(|c| c.id != id);
        if !local.conns.is_empty() {
            return;
        }
        let local = users.remove(&user).unwrap_or_default();
        if let Some(announcing) = joining.remove(&user) {
            announcing.finish();
        }
        self.bus.unsubscribe(Topic::User(user));
        for group in local.groups {
            self.leave_locked(groups, group, user);
        }
    }

    /// Whether `user` has a connection on this node.
    pub fn is_local(&self, user: UserId) -> bool {
        self.state.read().users.contains_key(&user)
    }

    /// Local connections in total.
    pub fn connections(&self) -> usize {
        self.state
            .read()
            .users
            .values()
            .map(|u| u.conns.len())
            .sum()
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

    /// One pass of the liveness sweeper over slice `slice` of `SWEEP_SLICES` of the local
    /// connections: closes those silent for `idle_after`, aborts those whose write has been
    /// blocked for `stuck_after`, and asks the others for a WebSocket ping. Run every
    /// `server.ping_interval / SWEEP_SLICES`, a slice after the other, so each connection is
    /// visited once per `ping_interval` and the pings (and their pongs) are spread over the
    /// interval instead of all leaving at once: with tens of thousands of connections one
    /// burst would hold up live messages for tens of milliseconds.
    pub fn sweep(&self, slice: u64, idle_after: Duration, stuck_after: Duration) {
        let (idle_after, stuck_after) = (
            idle_after.as_millis() as u64,
            stuck_after.as_millis() as u64,
        );
        let slice = slice % SWEEP_SLICES;
        let state = self.state.read();
        for local in state.users.values() {
            for conn in &local.conns {
                if conn.id % SWEEP_SLICES != slice {
                    continue;
                }
                if conn.outbox.write_stuck_for() > stuck_after {
                    conn.outbox.abort();
                } else if conn.outbox.silent_for() > idle_after {
                    conn.outbox.close(CloseReason::Idle);
                } else {
                    conn.outbox.request_ping();
                }
            }
        }
    }

    /// Closes every local connection for `reason` (drain).
    pub fn close_all(&self, reason: CloseReason) {
        let state = self.state.read();
        for local in state.users.values() {
            for conn in &local.conns {
                conn.outbox.close(reason);
            }
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

    fn apply(&self, control: Control) {
        let mut state = self.state.write();
        let State {
            users,
            groups,
            joining,
        } = &mut *state;
        match control {
            Control::MemberAdded { group, user } => {
                if let Some(local) = users.get_mut(&user)
                    && local.groups.insert(group.clone())
                {
                    self.join_locked(groups, group, user);
                }
            }
            Control::MemberRemoved { group, user } => {
                if let Some(local) = users.get_mut(&user)
                    && local.groups.remove(&group)
                {
                    self.leave_locked(groups, group, user);
                }
            }
            Control::GroupDeleted { group } => {
                if let Some(members) = groups.remove(&group) {
                    for user in members {
                        if let Some(local) = users.get_mut(&user) {
                            local.groups.remove(&group);
                        }
                    }
                    self.bus.unsubscribe(Topic::Group(group));
                }
            }
            Control::DeviceJoined { user, node } => {
                if node == self.node {
                    return;
                }
                if let Some(local) = users.get_mut(&user) {
                    local.shared = true;
                    let bus = self.bus.clone();
                    let present = Envelope::control(&Control::Present { user, to: node });
                    tokio::spawn(async move {
                        let _ = bus.publish(&Topic::User(user), present).await;
                    });
                }
            }
            Control::Present { user, to } => {
                if to == self.node
                    && let Some(joining) = joining.get(&user)
                {
                    joining.answer();
                }
            }
        }
    }

    fn push_to(
        &self,
        state: &State,
        user: UserId,
        skip: Option<ConnId>,
        frame: &Utf8Bytes,
        delay: bool,
    ) -> u64 {
        let Some(local) = state.users.get(&user) else {
            return 0;
        };
        let mut sent = 0;
        for conn in &local.conns {
            if Some(conn.id) != skip && self.send(conn, frame, delay) {
                sent += 1;
            }
        }
        sent
    }

    /// Queues `frame` for `conn`, handing its outbox to its flusher (the delayed one for a
    /// large fan-out) when it was idle.
    fn send(&self, conn: &Conn, frame: &Utf8Bytes, delay: bool) -> bool {
        match conn.outbox.push(frame.clone()) {
            Pushed::Dropped => false,
            Pushed::Queued => true,
            Pushed::Flush => {
                let flushers = if delay { &self.delayed } else { &self.flushers };
                let flusher = &flushers[conn.id as usize % flushers.len()];
                flusher.schedule(conn.outbox.clone());
                true
            }
        }
    }
}

impl Inbound for Hub {
    fn deliver(&self, topic: Topic, payload: Bytes) {
        let Some(envelope) = Envelope::decode(payload) else {
            tracing::warn!(?topic, "dropped a malformed envelope");
            return;
        };
        let (skip, frame) = match envelope {
            Envelope::Deliver { skip, frame } => (skip, frame),
            Envelope::Control(control) => return self.apply(control),
        };
        let Ok(frame) = Utf8Bytes::try_from(frame) else {
            tracing::warn!(?topic, "dropped an envelope whose frame is not UTF-8");
            return;
        };
        let state = self.state.read();
        let sent = match &topic {
            Topic::User(user) => self.push_to(&state, *user, skip, &frame, false),
            Topic::Group(group) => match state.groups.get(group) {
                Some(members) => {
                    let delay = members.len() >= LARGE_FAN_OUT;
                    members
                        .iter()
                        .map(|u| self.push_to(&state, *u, skip, &frame, delay))
                        .sum()
                }
                None => 0,
            },
            Topic::Control => 0,
        };
        drop(state);
        self.metrics.deliveries.add(sent);
    }

    fn resync(&self) {
        let frame = Utf8Bytes::from(server::sync_needed());
        let mut state = self.state.write();
        for local in state.users.values_mut() {
            // Announcements of other nodes may have been lost with the link.
            local.shared = true;
        }
        for local in state.users.values() {
            for conn in &local.conns {
                self.send(conn, &frame, false);
            }
        }
    }
}
