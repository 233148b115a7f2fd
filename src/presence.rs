//! Live presence for followers: when a user's first connection anywhere opens, or the last
//! one anywhere closes, the followers' online devices get a 2900.
//!
//! Each node speaks for the users it holds. A user's first connection here or last one
//! gone marks the user *changed*; one task per node settles changed users in time order:
//! - held here: "online", unless this node told so already;
//! - not held here, but another node holds them (the bus's presence of the user's topic,
//!   asked after this node's unsubscribe is in effect): nothing; that node speaks for them;
//! - held nowhere: "offline", if this node had told "online".
//!
//! Offline is settled `OFFLINE_SETTLE` after the last connection left (a reconnect within it,
//! here or elsewhere, tells nothing), and a node tells at most one change per user per
//! `MIN_INTERVAL`: a user reconnecting in a loop costs their followers one frame per
//! interval, the last state always arriving. A frame is published to each follower's user
//! topic (the one delivery path), for users with at most `chat.presence_max_followers`
//! followers; those a user blocks are not told.

use parking_lot::Mutex;
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

use std::sync::Arc;

use crate::bus::{Bus, Envelope, Topic};
use crate::hub::Hub;
use crate::ids::UserId;
use crate::protocol::server;
use crate::store::Store;

/// How long after a user's last connection here closed their offline state is settled.
pub const OFFLINE_SETTLE: Duration = Duration::from_secs(2);
/// A node tells at most one presence change per user per this long.
pub const MIN_INTERVAL: Duration = Duration::from_secs(3);
/// Users settled per round of the task, before it looks at its queue again.
const ROUND: usize = 256;
/// Publishes in flight at once for one change's fan-out.
const FAN_OUT: usize = 64;

/// What this node last told of a user, and when it settles them next.
struct Entry {
    /// `Some(true)`: this node told the user's followers "online" last.
    told: Option<bool>,
    told_at: Option<Instant>,
    due: Option<Instant>,
}

#[derive(Default)]
struct Queue {
    users: HashMap<UserId, Entry>,
    /// Users by when they are settled next.
    due: BTreeSet<(Instant, UserId)>,
}

/// What the presence task tells with: the node's parts it reads (not the whole `AppState`,
/// which holds the `Presence`).
pub struct Tellers {
    pub hub: Arc<Hub>,
    pub bus: Arc<dyn Bus>,
    pub store: Arc<dyn Store>,
    /// `chat.presence_max_followers`.
    pub max_followers: u32,
}

/// The node's presence changes waiting to be told; see the module docs.
#[derive(Default)]
pub struct Presence {
    queue: Mutex<Queue>,
    /// Wakes the task when a user is queued.
    wake: Notify,
}

impl Presence {
    /// `user`'s first connection on this node opened (`online`) or the last one closed.
    pub fn changed(&self, user: UserId, online: bool) {
        let now = Instant::now();
        let settle = if online { now } else { now + OFFLINE_SETTLE };
        let mut queue = self.queue.lock();
        let Queue { users, due } = &mut *queue;
        let entry = users.entry(user).or_insert(Entry {
            told: None,
            told_at: None,
            due: None,
        });
        let when = entry
            .told_at
            .map_or(settle, |at| settle.max(at + MIN_INTERVAL));
        if let Some(old) = entry.due.replace(when) {
            due.remove(&(old, user));
        }
        due.insert((when, user));
        drop(queue);
        self.wake.notify_one();
    }

    /// Settles changed users until the process ends.
    pub async fn run(self: Arc<Self>, state: Tellers) {
        let presence = self;
        loop {
            let next = presence.queue.lock().due.first().map(|(at, _)| *at);
            match next {
                Some(at) if at > Instant::now() => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(at) => {}
                        _ = presence.wake.notified() => {}
                    }
                }
                Some(_) => {}
                None => presence.wake.notified().await,
            }
            for user in presence.take_due(Instant::now()) {
                presence.settle(&state, user).await;
            }
        }
    }

    /// Up to `ROUND` users whose time has come, earliest first.
    fn take_due(&self, now: Instant) -> Vec<UserId> {
        let mut queue = self.queue.lock();
        let Queue { users, due } = &mut *queue;
        let mut taken = Vec::new();
        while taken.len() < ROUND {
            match due.first() {
                Some(&(at, user)) if at <= now => {
                    due.pop_first();
                    if let Some(entry) = users.get_mut(&user) {
                        entry.due = None;
                    }
                    taken.push(user);
                }
                _ => break,
            }
        }
        taken
    }

    /// Decides and tells `user`'s presence as this node sees it now.
    async fn settle(&self, state: &Tellers, user: UserId) {
        let local = state.hub.is_local(user);
        let online = if local {
            true
        } else {
            // This node's unsubscribe must be in effect before the bus is asked.
            state.bus.settled().await;
            match state.bus.user_online(user).await {
                Ok(online) => online,
                Err(e) => {
                    tracing::debug!(error = %e, user, "presence not settled: bus unavailable");
                    return self.again(user, Instant::now() + MIN_INTERVAL);
                }
            }
        };
        let told = self.queue.lock().users.get(&user).and_then(|e| e.told);
        let tell = match (local, online, told) {
            (true, _, Some(true)) => None,
            (true, _, _) => Some(true),
            (false, false, Some(true)) => Some(false),
            (false, _, _) => None,
        };
        if let Some(online) = tell {
            tell_followers(state, user, online).await;
        }
        let now = Instant::now();
        let mut queue = self.queue.lock();
        let Queue { users, due } = &mut *queue;
        let Some(entry) = users.get_mut(&user) else {
            return;
        };
        if let Some(online) = tell {
            entry.told = Some(online);
            entry.told_at = Some(now);
        } else if !local && online {
            // Another node holds the user and speaks for them.
            entry.told = None;
        }
        // A user gone from here is forgotten once the interval since the last change
        // passed, unless queued again meanwhile; until then the entry keeps the rate.
        if !local && entry.due.is_none() {
            match entry.told_at.map(|at| at + MIN_INTERVAL) {
                Some(until) if until > now => {
                    entry.due = Some(until);
                    due.insert((until, user));
                }
                _ => {
                    users.remove(&user);
                }
            }
        }
    }

    /// Queues `user` again at `when` (unless queued sooner meanwhile).
    fn again(&self, user: UserId, when: Instant) {
        let mut queue = self.queue.lock();
        let Queue { users, due } = &mut *queue;
        if let Some(entry) = users.get_mut(&user)
            && entry.due.is_none()
        {
            entry.due = Some(when);
            due.insert((when, user));
        }
    }
}

/// Publishes a 2900 to the user topic of each of `user`'s followers (those `user` does not
/// block), unless they are more than `chat.presence_max_followers`.
async fn tell_followers(state: &Tellers, user: UserId, online: bool) {
    let most = state.max_followers;
    let followers = match state.store.followers(user, most).await {
        Ok(followers) => followers,
        Err(e) => {
            tracing::warn!(error = %e, user, "presence not told: followers not read");
            return;
        }
    };
    if followers.len() > most as usize {
        tracing::debug!(
            user,
            "no live presence: more than chat.presence_max_followers"
        );
        return;
    }
    let frame = server::presence(user, online);
    for chunk in followers.chunks(FAN_OUT) {
        let topics: Vec<Topic> = chunk.iter().map(|f| Topic::User(*f)).collect();
        let sends = topics
            .iter()
            .map(|topic| state.bus.publish(topic, Envelope::deliver(None, &frame)));
        for sent in futures_util::future::join_all(sends).await {
            if let Err(e) = sent {
                tracing::debug!(error = %e, user, "presence not told to a follower");
            }
        }
    }
}
