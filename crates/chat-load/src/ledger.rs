//! The ledger: every stream of the run (one sender to one destination), which of its
//! messages were acknowledged, and what each recipient received, in which order. From
//! these come the numbers a run must get right: lost (acknowledged, never received),
//! duplicates, reordering (a message pushed after a later one of its stream) and gaps (a
//! recipient's live stream skipping acknowledged messages, which then came by sync, late,
//! or never).

use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::protocol::{Destination, frame_head};
use crate::stats::lock;

/// A growable set of small integers.
#[derive(Default, Debug, Clone)]
pub struct Bits(Vec<u64>);

impl Bits {
    /// Adds `i`; whether it was absent.
    pub fn insert(&mut self, i: u32) -> bool {
        let (word, bit) = (i as usize / 64, 1u64 << (i % 64));
        if word >= self.0.len() {
            self.0.resize(word + 1, 0);
        }
        let absent = self.0[word] & bit == 0;
        self.0[word] |= bit;
        absent
    }

    /// Whether `i` is in the set.
    pub fn contains(&self, i: u32) -> bool {
        let (word, bit) = (i as usize / 64, 1u64 << (i % 64));
        self.0.get(word).is_some_and(|w| w & bit != 0)
    }

    /// How many members `self` and `other` have in common.
    pub fn count_common(&self, other: &Bits) -> u64 {
        self.0
            .iter()
            .zip(&other.0)
            .map(|(a, b)| (a & b).count_ones() as u64)
            .sum()
    }

    /// How many members of `self` are not in `other`.
    pub fn count_missing_from(&self, other: &Bits) -> u64 {
        self.0
            .iter()
            .enumerate()
            .map(|(i, w)| (w & !other.0.get(i).copied().unwrap_or(0)).count_ones() as u64)
            .sum()
    }

    /// The first member of `self` not in `other`.
    pub fn first_missing_from(&self, other: &Bits) -> Option<u32> {
        self.0.iter().enumerate().find_map(|(i, w)| {
            let missing = w & !other.0.get(i).copied().unwrap_or(0);
            (missing != 0).then(|| (i * 64) as u32 + missing.trailing_zeros())
        })
    }

    /// Number of members.
    pub fn len(&self) -> u64 {
        self.0.iter().map(|w| w.count_ones() as u64).sum()
    }
}

/// A conversation as a recipient sees it (what a read receipt applies to).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Conversation {
    /// With this user (index in the fleet).
    Private(u32),
    /// In this group (index in the scenario's groups).
    Group(u32),
}

/// One sender's messages to one destination.
pub struct Stream {
    /// The sender, as an index in the fleet.
    pub sender: u32,
    /// Who must receive each acknowledged message, as indexes in the fleet.
    pub recipients: Arc<[u32]>,
    /// The conversation the recipients see it in.
    pub conversation: Conversation,
    /// The frame's constant head (`protocol::frame_head`).
    pub head: String,
    state: Mutex<StreamState>,
}

#[derive(Default)]
struct StreamState {
    next_seq: u32,
    acked: Bits,
    failed: Bits,
    /// Retries so far of messages refused with 5000 (rare: only while storage struggles).
    retries: HashMap<u32, u32>,
}

/// What a recipient's user received, by stream.
#[derive(Default)]
pub struct Inbox {
    seen: HashMap<u32, Seen>,
    /// Newest message id per conversation, for the read receipts at the end.
    pub newest: HashMap<Conversation, String>,
}

#[derive(Default)]
struct Seen {
    any: Bits,
    live: Bits,
    /// One past the highest sequence number pushed live.
    next_live: u32,
    /// Sequence numbers a live push skipped: not yet received when a later one arrived.
    jumped: Bits,
}

/// What a received message was to its recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receipt {
    /// The first time; `reordered`: pushed live after a later message of its stream.
    First { reordered: bool },
    /// Received before by sync, or now by sync: allowed by the protocol.
    Again,
    /// Pushed live a second time: a duplicate.
    Duplicate,
}

impl Inbox {
    /// Records message `seq` of `stream`, received live or by sync.
    pub fn record(&mut self, stream: u32, seq: u32, live: bool) -> Receipt {
        let seen = self.seen.entry(stream).or_default();
        if live && !seen.live.insert(seq) {
            return Receipt::Duplicate;
        }
        let mut reordered = false;
        if live {
            reordered = seq < seen.next_live;
            // Everything between the last live push and this one that has not arrived is a
            // hole in what the recipient saw live (whether it was acknowledged is known
            // only at the audit: a send may be refused, or acknowledged after delivery).
            for skipped in seen.next_live..seq {
                if !seen.any.contains(skipped) {
                    seen.jumped.insert(skipped);
                }
            }
            seen.next_live = seen.next_live.max(seq.saturating_add(1));
        }
        if seen.any.insert(seq) {
            Receipt::First { reordered }
        } else {
            Receipt::Again
        }
    }

    /// Remembers `id` as the newest in `conversation` if it is (ids are UUIDv7: their text
    /// sorts by time).
    pub fn note_newest(&mut self, conversation: Conversation, id: &str) {
        match self.newest.get_mut(&conversation) {
            Some(newest) if newest.as_str() >= id => {}
            Some(newest) => {
                newest.clear();
                newest.push_str(id);
            }
            None => {
                self.newest.insert(conversation, id.to_string());
            }
        }
    }
}

/// Every stream of the run.
#[derive(Default)]
pub struct Ledger {
    /// The streams, indexed by the number in their `client_msg_id`s.
    pub streams: Vec<Stream>,
    expected: AtomicU64,
}

/// The outcome of comparing what was acknowledged with what was received.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Audit {
    /// Messages acknowledged.
    pub acked: u64,
    /// Deliveries owed: each acknowledged message times its recipients online at the end.
    pub expected_deliveries: u64,
    /// Owed deliveries that did not happen.
    pub lost: u64,
    /// Owed deliveries that a recipient's live stream skipped: a later message of the same
    /// stream was pushed first. They came by sync or late (reordered), or are lost.
    pub gaps: u64,
    /// Deliveries owed to recipients that were offline at the end (not counted as lost).
    pub owed_to_offline: u64,
    /// A few lost messages, to look them up: `sender->recipient #seq (stream s)`.
    pub lost_examples: Vec<String>,
}

impl Ledger {
    /// Adds a stream from `sender` to `dest`; its index.
    pub fn add(
        &mut self,
        sender: u32,
        dest: &Destination,
        recipients: Arc<[u32]>,
        conversation: Conversation,
        content: &str,
        tag: &str,
    ) -> u32 {
        let index = self.streams.len() as u32;
        self.streams.push(Stream {
            sender,
            recipients,
            conversation,
            head: frame_head(dest, content, tag, index),
            state: Mutex::default(),
        });
        index
    }

    /// The next sequence number of `stream`.
    pub fn next_seq(&self, stream: u32) -> u32 {
        let mut state = lock(&self.streams[stream as usize].state);
        state.next_seq += 1;
        state.next_seq - 1
    }

    /// Marks a message acknowledged; whether it is the first acknowledgement. `None` when
    /// the stream does not exist (a forged or foreign id).
    pub fn ack(&self, stream: u32, seq: u32) -> Option<bool> {
        let s = self.streams.get(stream as usize)?;
        let first = lock(&s.state).acked.insert(seq);
        if first {
            self.expected
                .fetch_add(s.recipients.len() as u64, Ordering::Relaxed);
        }
        Some(first)
    }

    /// Marks a message refused; whether it is the first word about it.
    pub fn fail(&self, stream: u32, seq: u32) -> Option<bool> {
        let s = self.streams.get(stream as usize)?;
        let mut state = lock(&s.state);
        Some(!state.acked.contains(seq) && state.failed.insert(seq))
    }

    /// Counts a retry of message `seq` of `stream`; the number of this retry (from 1).
    pub fn retry(&self, stream: u32, seq: u32) -> u32 {
        let Some(s) = self.streams.get(stream as usize) else {
            return u32::MAX;
        };
        let mut state = lock(&s.state);
        let n = state.retries.entry(seq).or_default();
        *n += 1;
        *n
    }

    /// Deliveries owed so far (acknowledged messages times recipients).
    pub fn expected(&self) -> u64 {
        self.expected.load(Ordering::Relaxed)
    }

    /// Compares acknowledgements with receipts. `inbox(i)` runs `f` on user i's inbox;
    /// `online(i)` says whether user i is connected (owed deliveries to offline users are
    /// counted apart).
    pub fn audit(
        &self,
        inbox: impl Fn(u32, &mut dyn FnMut(&Inbox)),
        online: impl Fn(u32) -> bool,
    ) -> Audit {
        let mut audit = Audit::default();
        let empty = Bits::default();
        for (index, stream) in self.streams.iter().enumerate() {
            let acked = lock(&stream.state).acked.clone();
            let n = acked.len();
            audit.acked += n;
            if n == 0 {
                continue;
            }
            for &r in stream.recipients.iter() {
                if !online(r) {
                    audit.owed_to_offline += n;
                    continue;
                }
                audit.expected_deliveries += n;
                inbox(r, &mut |ib: &Inbox| {
                    let seen = ib.seen.get(&(index as u32));
                    audit.gaps += seen.map_or(0, |s| s.jumped.count_common(&acked));
                    let seen = seen.map_or(&empty, |s| &s.any);
                    let lost = acked.count_missing_from(seen);
                    audit.lost += lost;
                    if lost > 0 && audit.lost_examples.len() < 10 {
                        let seq = acked.first_missing_from(seen).unwrap_or_default();
                        audit.lost_examples.push(format!(
                            "user#{}->user#{r} seq {seq} (stream {index})",
                            stream.sender
                        ));
                    }
                });
            }
        }
        audit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits() {
        let mut a = Bits::default();
        assert!(a.insert(3));
        assert!(!a.insert(3));
        assert!(a.insert(200));
        assert!(a.contains(200) && !a.contains(4));
        let mut b = Bits::default();
        b.insert(3);
        assert_eq!(a.count_missing_from(&b), 1);
        assert_eq!(a.first_missing_from(&b), Some(200));
        assert_eq!(a.len(), 2);
    }

    #[test]
    fn receipts() {
        let first = Receipt::First { reordered: false };
        let mut ib = Inbox::default();
        assert_eq!(ib.record(0, 1, false), first);
        assert_eq!(ib.record(0, 1, true), Receipt::Again);
        assert_eq!(ib.record(0, 1, true), Receipt::Duplicate);
        assert_eq!(ib.record(0, 2, true), first);
        assert_eq!(ib.record(0, 2, false), Receipt::Again);
    }

    #[test]
    fn reordering_and_gaps() {
        let mut ledger = Ledger::default();
        let s = ledger.add(
            0,
            &Destination::User(2),
            Arc::from(vec![1]),
            Conversation::Private(0),
            "x",
            "t",
        );
        for seq in 0..8 {
            ledger.next_seq(s);
            // 6 is refused: never owed, so skipping it is no gap.
            if seq != 6 {
                ledger.ack(s, seq);
            }
        }
        let mut ib = Inbox::default();
        let in_order = Receipt::First { reordered: false };
        assert_eq!(ib.record(s, 0, true), in_order);
        // 1 and 2 are skipped by the live stream; 2 then arrives late, 1 by sync.
        assert_eq!(ib.record(s, 3, true), in_order);
        assert_eq!(ib.record(s, 2, true), Receipt::First { reordered: true });
        assert_eq!(ib.record(s, 1, false), in_order);
        // 4 came by sync before 5 was pushed: the recipient saw no hole.
        assert_eq!(ib.record(s, 4, false), in_order);
        assert_eq!(ib.record(s, 5, true), in_order);
        // 6 (refused) and 7 (lost) are skipped by nothing: the stream just ends.
        let mut inboxes = [Inbox::default(), ib];
        let audit = ledger.audit(|i, f| f(&inboxes[i as usize]), |_| true);
        assert_eq!(audit.gaps, 2, "1 and 2");
        assert_eq!(audit.lost, 1, "7");
        // A later push over the refused and the lost one: only the lost one is a gap.
        ledger.next_seq(s);
        ledger.ack(s, 8);
        inboxes[1].record(s, 8, true);
        let audit = ledger.audit(|i, f| f(&inboxes[i as usize]), |_| true);
        assert_eq!(audit.gaps, 3, "1, 2 and 7");
    }

    #[test]
    fn audit_counts_lost_and_offline() {
        let mut ledger = Ledger::default();
        let to_b = ledger.add(
            0,
            &Destination::User(2),
            Arc::from(vec![1, 2]),
            Conversation::Private(0),
            "x",
            "t",
        );
        for seq in 0..3 {
            assert_eq!(ledger.next_seq(to_b), seq);
            assert_eq!(ledger.ack(to_b, seq), Some(true));
        }
        assert_eq!(ledger.ack(to_b, 0), Some(false));
        assert_eq!(ledger.fail(to_b, 0), Some(false));
        assert_eq!(ledger.expected(), 6);
        let mut inboxes = [Inbox::default(), Inbox::default(), Inbox::default()];
        inboxes[1].record(to_b, 0, true);
        inboxes[1].record(to_b, 2, true);
        let audit = ledger.audit(|i, f| f(&inboxes[i as usize]), |i| i != 2);
        assert_eq!(audit.acked, 3);
        assert_eq!(audit.expected_deliveries, 3);
        assert_eq!(audit.lost, 1);
        assert_eq!(audit.owed_to_offline, 3);
        assert_eq!(audit.lost_examples.len(), 1);
    }
}
