//! The hub: this node's local connections by user and by group, and the delivery of what the
//! bus brings to them.
//!
//! The reference counts that decide the bus subscriptions are in `subscriptions.rs`, the
//! handshake by which the nodes holding one user learn of each other in `presence.rs`, the
//! liveness sweep over every connection in `sweep.rs`.
//!
//! All bus subscribe/unsubscribe calls are made under the hub's write lock, so they reach
//! the bus in the order the transitions happened. Nothing here awaits under a lock.

mod expiry;
mod presence;
mod subscriptions;
mod sweep;
#[cfg(test)]
mod tests;

pub use expiry::Expiries;
pub use presence::GroupPresence;
pub use sweep::{STUCK_WRITE, SWEEP_SLICES};

use axum::extract::ws::Utf8Bytes;
use bytes::Bytes;
use parking_lot::RwLock;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::Notify;

use crate::bus::envelope::Control;
use crate::bus::{Bus, Envelope, Inbound, Topic};
use crate::ids::{ConnId, GroupId, UserId};
use crate::metrics::Metrics;
use crate::protocol::server;
use crate::ws::close::CloseReason;
use crate::ws::flusher::Flusher;
use crate::ws::outbox::{Outbox, Pushed};
use presence::Joining;

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

#[derive(Default)]
struct State {
    users: HashMap<UserId, LocalUser>,
    /// Local online members per group; an empty set is a group topic lingering before
    /// its unsubscribe.
    groups: HashMap<GroupId, HashSet<UserId>>,
    /// Users whose first device here is announcing itself to the other nodes.
    joining: HashMap<UserId, Arc<Joining>>,
}

/// A group message reaching at least this many local members is written by the paced
/// flusher, which coalesces a busy group's writes (ws/flusher.rs, at most
/// `server.group_write_delay`).
pub const LARGE_FAN_OUT: usize = 64;

/// How often a drain closes its next slice of connections.
const DRAIN_SLICE: Duration = Duration::from_millis(10);

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
    /// The same for large group fan-outs, paced: at once when idle, coalesced when busy (at
    /// most `server.group_write_delay` later).
    delayed: Vec<Arc<Flusher>>,
    /// For the linger timers, which outlive the call that starts them.
    me: Weak<Hub>,
    /// This node's id in the presence handshake (random).
    node: u64,
    /// Wakes the task that reloads memberships after a resync, once one is attached
    /// (`resynced`); without it, a resync sends 1002 at once.
    reload: Notify,
    reloader: AtomicBool,
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
            reload: Notify::new(),
            reloader: AtomicBool::new(false),
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

    /// Removes a connection; the user's and groups' topics are released if it was the last.
    pub fn unregister(&self, user: UserId, id: ConnId) {
        let mut state = self.state.write();
        let Some(local) = state.users.get_mut(&user) else {
            return;
        };
        local.conns.retain(|c| c.id != id);
        if local.conns.is_empty() {
            self.last_left_locked(&mut state, user);
        }
    }

    /// Whether `user` has a connection on this node.
    pub fn is_local(&self, user: UserId) -> bool {
        self.state.read().users.contains_key(&user)
    }

    /// Waits for the next resync, for the one task that reloads memberships then and sends
    /// 1002 (`sync_needed`). Once it has called this, resyncs leave the 1002 to it.
    pub async fn resynced(&self) {
        self.reloader.store(true, Ordering::Release);
        self.reload.notified().await;
    }

    /// Tells every local connection that deliveries may have been missed (1002).
    pub fn sync_needed(&self) {
        let frame = Utf8Bytes::from(server::sync_needed());
        let state = self.state.read();
        for local in state.users.values() {
            for conn in &local.conns {
                self.send(conn, &frame, false);
            }
        }
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

    /// Closes every local connection for `reason` (drain).
    /// Drains the node: every connection is asked to end (close 1012 after the frame it is
    /// handling) in even slices over `window`, so that clients reconnect to the other nodes
    /// spread out rather than all in the same second.
    pub async fn drain(&self, window: Duration) {
        let outboxes = self.outboxes();
        // One slice per DRAIN_SLICE, or per connection when there are fewer connections.
        let most = (window.as_millis() / DRAIN_SLICE.as_millis()).max(1) as usize;
        let slices = outboxes.len().clamp(1, most);
        let per_slice = outboxes.len().div_ceil(slices).max(1);
        let mut tick = tokio::time::interval(window / slices as u32);
        for slice in outboxes.chunks(per_slice) {
            tick.tick().await;
            for outbox in slice {
                outbox.drain();
            }
        }
        // Connections whose handshake was under way when the drain began.
        for outbox in self.outboxes() {
            outbox.drain();
        }
    }

    /// Every local connection's outbox.
    fn outboxes(&self) -> Vec<Arc<Outbox>> {
        let state = self.state.read();
        let all = state.users.values().flat_map(|local| local.conns.iter());
        all.map(|conn| conn.outbox.clone()).collect()
    }

    /// Applies a control envelope: a membership change, or a step of the presence handshake.
    fn apply(&self, control: Control) {
        let mut state = self.state.write();
        match control {
            Control::MemberAdded { .. }
            | Control::MemberRemoved { .. }
            | Control::GroupDeleted { .. } => self.apply_membership_locked(&mut state, control),
            Control::DeviceJoined { user, node } => {
                self.device_joined_locked(&mut state, user, node)
            }
            Control::Present { user, to } => self.present_locked(&state, user, to),
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

    /// Queues `frame` for `conn`, handing its outbox to its flusher (the paced one for a
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
        self.metrics.delivered(frame.as_str());
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
        self.metrics.resyncs.inc();
        let mut state = self.state.write();
        for local in state.users.values_mut() {
            // Announcements of other nodes may have been lost with the link.
            local.shared = true;
        }
        drop(state);
        // Membership changes may have been lost too: the reloader reloads them, then sends
        // the 1002, so that a client's sync comes after its groups are live again.
        if self.reloader.load(Ordering::Acquire) {
            self.reload.notify_one();
        } else {
            self.sync_needed();
        }
    }
}
