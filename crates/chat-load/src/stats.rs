//! Live counters and latency histograms, shared by every connection of the run: atomics for
//! counts, sharded HDR histograms (a short lock each) for latencies.

use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};

/// Highest value a histogram holds, in µs (longer values are clamped to it).
const MAX_US: u64 = 600_000_000;
/// Histogram shards: recorders pick one by connection, so they rarely contend.
const SHARDS: usize = 16;

/// A monotonically increasing count.
#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The count so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A latency histogram in µs, with a second one reset at each progress tick.
pub struct Recorder {
    shards: Vec<Mutex<(Histogram<u64>, Histogram<u64>)>>,
}

/// An empty histogram of µs, as every recorder of the run keeps them.
pub fn histogram() -> Histogram<u64> {
    // Bounds and precision are constants that hdrhistogram accepts.
    Histogram::new_with_bounds(1, MAX_US, 3).expect("valid histogram bounds")
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            shards: (0..SHARDS)
                .map(|_| Mutex::new((histogram(), histogram())))
                .collect(),
        }
    }
}

impl Recorder {
    /// Records `us` in the shard chosen by `hint` (a connection's index).
    pub fn record(&self, hint: usize, us: u64) {
        let us = us.clamp(1, MAX_US);
        let mut shard = lock(&self.shards[hint % SHARDS]);
        shard.0.saturating_record(us);
        shard.1.saturating_record(us);
    }

    /// Everything recorded since the start.
    pub fn total(&self) -> Histogram<u64> {
        let mut all = histogram();
        for shard in &self.shards {
            let _ = all.add(&lock(shard).0);
        }
        all
    }

    /// What was recorded since the last call, and starts a new window.
    pub fn take_window(&self) -> Histogram<u64> {
        let mut all = histogram();
        for shard in &self.shards {
            let mut shard = lock(shard);
            let _ = all.add(&shard.1);
            shard.1.reset();
        }
        all
    }
}

/// A histogram as text for the JSON report: HdrHistogram's V2 encoding in base64, which
/// other HdrHistogram libraries read too, and `merge` adds up exactly.
pub fn encode(h: &Histogram<u64>) -> String {
    let mut bytes = Vec::new();
    // Writing to a Vec cannot fail, nor can encoding a histogram of these bounds.
    let _ = V2Serializer::new().serialize(h, &mut bytes);
    STANDARD.encode(bytes)
}

/// The histogram `encode` wrote.
pub fn decode(text: &str) -> Result<Histogram<u64>, String> {
    let bytes = STANDARD
        .decode(text)
        .map_err(|e| format!("a histogram is not base64: {e}"))?;
    let read: Histogram<u64> = Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| format!("a histogram is not HdrHistogram V2: {e:?}"))?;
    // Into the run's bounds, so that histograms from several reports add up.
    let mut h = histogram();
    h.add(&read)
        .map_err(|e| format!("a histogram does not fit: {e:?}"))?;
    Ok(h)
}

/// The latest of several moments (µs since the run began) seen by many threads; 0: none.
#[derive(Default)]
pub struct Latest(AtomicU64);

impl Latest {
    /// Notes `us`.
    pub fn note(&self, us: u64) {
        self.0.fetch_max(us, Ordering::Relaxed);
    }

    /// The latest moment noted, if any.
    pub fn get(&self) -> Option<u64> {
        Some(self.0.load(Ordering::Relaxed)).filter(|&us| us > 0)
    }
}

/// The earliest of several moments (µs since the run began).
pub struct Earliest(AtomicU64);

impl Default for Earliest {
    fn default() -> Self {
        Earliest(AtomicU64::new(u64::MAX))
    }
}

impl Earliest {
    /// Notes `us`.
    pub fn note(&self, us: u64) {
        self.0.fetch_min(us, Ordering::Relaxed);
    }

    /// The earliest moment noted, if any.
    pub fn get(&self) -> Option<u64> {
        Some(self.0.load(Ordering::Relaxed)).filter(|&us| us < u64::MAX)
    }
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it.
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Counts by a key (a code, a cause, a reason).
#[derive(Default)]
pub struct Tally<K: Ord>(Mutex<BTreeMap<K, u64>>);

impl<K: Ord + Clone> Tally<K> {
    /// Adds one under `key`.
    pub fn inc(&self, key: K) {
        *lock(&self.0).entry(key).or_default() += 1;
    }

    /// The counts.
    pub fn snapshot(&self) -> BTreeMap<K, u64> {
        lock(&self.0).clone()
    }

    /// The sum of all counts.
    pub fn total(&self) -> u64 {
        lock(&self.0).values().sum()
    }
}

/// Everything counted during a run.
#[derive(Default)]
pub struct Stats {
    /// Connections open now.
    pub open: AtomicI64,
    /// Reader tasks alive (connections whose socket is not yet closed).
    pub readers: AtomicI64,
    /// Most connections open at once.
    pub peak_open: AtomicI64,
    /// Successful handshakes (first connections and reconnections).
    pub connected: Counter,
    /// Failed handshakes, by cause.
    pub connect_failures: Tally<String>,
    /// Reconnections after a drop (by the server, or by a scenario).
    pub reconnects: Counter,
    /// Connections the server ended (EOF, error, close frame) while the run wanted them open.
    pub server_disconnects: Counter,
    /// 1001 frames, by reason.
    pub close_reasons: Tally<String>,
    /// Messages written to a socket.
    pub sent: Counter,
    /// Sends skipped because the sender had `--inflight` unacknowledged messages.
    pub skipped_inflight: Counter,
    /// Sends skipped because the sender was offline.
    pub skipped_offline: Counter,
    /// Sends skipped because the tool fell more than `--max-send-lag` behind its schedule.
    pub skipped_behind: Counter,
    /// First message written (µs since the run began).
    pub first_send: Earliest,
    /// Last message written.
    pub last_send: Latest,
    /// Last acknowledgement received.
    pub last_ack: Latest,
    /// Last delivery (first receipt, live or by sync) received.
    pub last_delivery: Latest,
    /// Messages acknowledged (2100 or 2101).
    pub acked: Counter,
    /// Of those, 2101 (stored; recipient offline).
    pub acked_offline: Counter,
    /// Messages refused with an error frame.
    pub failed: Counter,
    /// Messages whose connection ended before their acknowledgement.
    pub unacked: Counter,
    /// First receipts of a message by a recipient, live or by sync.
    pub delivered: Counter,
    /// Of those, by live push.
    pub delivered_live: Counter,
    /// Of those, by unread sync.
    pub delivered_unread: Counter,
    /// A message pushed live to the same user a second time.
    pub duplicates: Counter,
    /// A message pushed live after a later message of its stream had been pushed to the
    /// same user.
    pub reordered: Counter,
    /// A message received again by sync (or live after a sync): the protocol allows it.
    pub redelivered: Counter,
    /// Message frames not of this run (earlier runs' unread messages).
    pub foreign: Counter,
    /// Acknowledgements of setup messages (not measured).
    pub setup_acks: Counter,
    /// Deliveries of setup messages (not measured).
    pub setup_deliveries: Counter,
    /// Error frames (4xxx, 5000), by code.
    pub errors: Tally<u16>,
    /// Error frames answered by retrying (5000 to an unread sync, a message or a read
    /// receipt): not counted as errors.
    pub retried: Counter,
    /// Frames that were not JSON with a code.
    pub bad_frames: Counter,
    /// Unread syncs completed (final 2200).
    pub syncs: Counter,
    /// 1002 frames (deliveries may have been missed).
    pub sync_needed: Counter,
    /// Read receipts applied (2300).
    pub reads_applied: Counter,
    /// Due time (the schedule's) → live delivery on the recipient's socket.
    pub latency: Recorder,
    /// Actual send → live delivery (hides a tool that fell behind: reported beside).
    pub latency_from_send: Recorder,
    /// Due time → acknowledgement on the sender's socket.
    pub ack_latency: Recorder,
    /// Due time → actual send: how late the tool was.
    pub send_lag: Recorder,
    /// TCP connect → 1000 frame.
    pub handshake: Recorder,
}

impl Stats {
    /// A connection opened.
    pub fn opened(&self) {
        let now = self.open.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak_open.fetch_max(now, Ordering::Relaxed);
    }

    /// A connection closed.
    pub fn closed(&self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }

    /// Connections open now.
    pub fn open_now(&self) -> u64 {
        self.open.load(Ordering::Relaxed).max(0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_reset_totals_do_not() {
        let r = Recorder::default();
        r.record(0, 100);
        r.record(5, 2_000_000_000);
        assert_eq!(r.take_window().len(), 2);
        assert_eq!(r.take_window().len(), 0);
        assert_eq!(r.total().len(), 2);
        assert_eq!(r.total().max(), r.total().highest_equivalent(MAX_US));
    }

    #[test]
    fn histograms_round_trip_through_text() {
        let r = Recorder::default();
        for us in [1, 250, 250, 9_000, 3_000_000] {
            r.record(0, us);
        }
        let h = decode(&encode(&r.total())).unwrap();
        assert_eq!(h, r.total());
        assert!(decode("not base64!").is_err());
        assert!(decode("AAAA").is_err());
    }
}
