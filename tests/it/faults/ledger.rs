//! What the fault suite's clients saw: every acknowledgement, every message each device
//! received (live or in a catch-up), and the membership removal; and the checker that turns
//! them into counts and violations.

use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::fmt;
use tokio::time::Instant;
use uuid::Uuid;

/// A conversation: a private one is keyed by its two users (smaller first).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Conversation {
    Private(i64, i64),
    Group(String),
}

/// One acknowledged message.
#[derive(Debug, Clone)]
pub struct Acked {
    pub sender: i64,
    /// The recipient user, or the group.
    pub to: Target,
    /// When its client first sent it (retries keep the first time).
    pub first_sent: Instant,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    User(i64),
    Group(String),
}

/// A device: its user and `device_id`.
pub type Device = (i64, String);

/// The membership removal of the run: who, from which group, when it was asked for and when
/// it was acknowledged.
#[derive(Debug, Clone)]
pub struct Removal {
    pub group: String,
    pub user: i64,
    pub asked: Instant,
    pub acknowledged: Instant,
}

#[derive(Default)]
struct Inner {
    acked: HashMap<Uuid, Acked>,
    /// The id each client_msg_id was acknowledged with: a retry acknowledged with another
    /// id would be a message stored twice.
    by_cid: HashMap<String, Uuid>,
    conflicting_acks: Vec<String>,
    received: HashMap<Device, HashMap<Uuid, u32>>,
    /// Per device and sender, the last live id: a live message older than it is reordered.
    last_live: HashMap<(Device, i64, Conversation), Uuid>,
    live_reordered: u64,
    /// Frames a client did not expect (refusals other than 5000 and 4290).
    unexpected: Vec<String>,
    /// Group messages the removed member received, with the group and id.
    removed_received: Vec<(String, Uuid)>,
    removal: Option<Removal>,
    retries: u64,
    reconnects: u64,
    cut_mid_sync: u64,
}

/// Shared by the clients, the nemesis and the checker.
#[derive(Default)]
pub struct Ledger {
    inner: Mutex<Inner>,
}

impl Ledger {
    /// An acknowledgement (2100/2101) of `cid` with message `id`.
    pub fn acked(&self, cid: &str, id: Uuid, acked: Acked) {
        let mut inner = self.inner.lock();
        if let Some(first) = inner.by_cid.insert(cid.to_string(), id)
            && first != id
        {
            inner
                .conflicting_acks
                .push(format!("{cid}: acknowledged as {first} and as {id}"));
        }
        inner.acked.entry(id).or_insert(acked);
    }

    /// `device` received message `id` from `sender` in `conversation`; `live` for a push.
    pub fn received(
        &self,
        device: &Device,
        id: Uuid,
        sender: i64,
        conversation: Conversation,
        live: bool,
    ) {
        let mut inner = self.inner.lock();
        *inner
            .received
            .entry(device.clone())
            .or_default()
            .entry(id)
            .or_default() += 1;
        if let (Some(removal), Conversation::Group(group)) = (&inner.removal, &conversation)
            && *group == removal.group
            && device.0 == removal.user
        {
            let group = group.clone();
            inner.removed_received.push((group, id));
        }
        if live {
            let key = (device.clone(), sender, conversation);
            match inner.last_live.get(&key) {
                Some(last) if *last > id => inner.live_reordered += 1,
                _ => {
                    inner.last_live.insert(key, id);
                }
            }
        }
    }

    pub fn unexpected(&self, what: String) {
        self.inner.lock().unexpected.push(what);
    }

    pub fn retried(&self) {
        self.inner.lock().retries += 1;
    }

    pub fn reconnected(&self) {
        self.inner.lock().reconnects += 1;
    }

    pub fn cut_mid_sync(&self) {
        self.inner.lock().cut_mid_sync += 1;
    }

    pub fn removal(&self, removal: Removal) {
        self.inner.lock().removal = Some(removal);
    }

    /// How many distinct messages were acknowledged.
    pub fn acked_count(&self) -> usize {
        self.inner.lock().acked.len()
    }

    /// The acknowledged messages of `conversation`, ascending.
    pub fn acked_in(&self, conversation: &Conversation) -> Vec<Uuid> {
        let inner = self.inner.lock();
        let mut ids: Vec<Uuid> = inner
            .acked
            .iter()
            .filter(|(_, a)| conversation_of(a) == *conversation)
            .map(|(id, _)| *id)
            .collect();
        ids.sort();
        ids
    }

    /// Counts and violations. `devices` are every device of the run, `members` the members
    /// of each group (before the removal), `order_violations` what the history check found.
    pub fn check(
        &self,
        devices: &[Device],
        members: &HashMap<String, Vec<i64>>,
        order_violations: Vec<String>,
    ) -> Report {
        let inner = self.inner.lock();
        let mut report = Report {
            acked: inner.acked.len() as u64,
            retries: inner.retries,
            reconnects: inner.reconnects,
            cut_mid_sync: inner.cut_mid_sync,
            live_reordered: inner.live_reordered,
            ..Report::default()
        };
        for (id, acked) in &inner.acked {
            for device in devices {
                let owed = match &acked.to {
                    Target::User(user) => *user == device.0,
                    Target::Group(group) => {
                        let is_member = members.get(group).is_some_and(|m| m.contains(&device.0));
                        let removed = inner
                            .removal
                            .as_ref()
                            .is_some_and(|r| r.group == *group && r.user == device.0);
                        // A removed member loses the group: nothing of it is owed to them.
                        is_member && !removed && acked.sender != device.0
                    }
                };
                if !owed {
                    continue;
                }
                report.expected += 1;
                match inner.received.get(device).and_then(|r| r.get(id)) {
                    Some(1) => report.delivered += 1,
                    Some(n) => {
                        report.delivered += 1;
                        report.duplicated += u64::from(n - 1);
                    }
                    None => {
                        report.lost += 1;
                        if report.lost_examples.len() < 10 {
                            report
                                .lost_examples
                                .push(format!("{id} ({acked:?}) never reached {device:?}"));
                            report.lost_pairs.push((*id, device.clone()));
                        }
                    }
                }
            }
        }
        if let Some(removal) = &inner.removal {
            for (group, id) in &inner.removed_received {
                let Some(acked) = inner.acked.get(id) else {
                    continue;
                };
                if acked.first_sent > removal.acknowledged && *group == removal.group {
                    report.violations.push(format!(
                        "user {} removed from {group} received {id}, sent after the removal was acknowledged (which took {:?})",
                        removal.user,
                        removal.acknowledged.duration_since(removal.asked)
                    ));
                }
            }
        }
        report
            .violations
            .extend(inner.conflicting_acks.iter().cloned());
        report.violations.extend(order_violations);
        report
            .violations
            .extend(inner.unexpected.iter().take(10).cloned());
        report
    }

    /// Every private pair that exchanged acknowledged messages.
    pub fn private_pairs(&self) -> HashSet<(i64, i64)> {
        let inner = self.inner.lock();
        inner
            .acked
            .values()
            .filter_map(|a| match conversation_of(a) {
                Conversation::Private(x, y) => Some((x, y)),
                Conversation::Group(_) => None,
            })
            .collect()
    }
}

fn conversation_of(acked: &Acked) -> Conversation {
    match &acked.to {
        Target::User(user) => {
            Conversation::Private(acked.sender.min(*user), acked.sender.max(*user))
        }
        Target::Group(group) => Conversation::Group(group.clone()),
    }
}

/// What a run came to.
#[derive(Debug, Default)]
pub struct Report {
    pub acked: u64,
    /// (message, device) pairs owed.
    pub expected: u64,
    pub delivered: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub live_reordered: u64,
    pub retries: u64,
    pub reconnects: u64,
    pub cut_mid_sync: u64,
    pub faults: u64,
    pub lost_examples: Vec<String>,
    /// (message, device) of the first lost ones, to look them up in the store.
    pub lost_pairs: Vec<(Uuid, Device)>,
    pub violations: Vec<String>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "acked {} · owed deliveries {} · delivered {} · lost {} · duplicated {} · \
             live reordered {} · retried sends {} · reconnects {} (cut mid-sync {}) · faults {} · \
             violations {}",
            self.acked,
            self.expected,
            self.delivered,
            self.lost,
            self.duplicated,
            self.live_reordered,
            self.retries,
            self.reconnects,
            self.cut_mid_sync,
            self.faults,
            self.violations.len()
        )
    }
}
