//! The run's shared context: options, targets, tokens, counters, the ledger, and the clock
//! that send times are measured on.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{LazyLock, Mutex, OnceLock};
use std::time::Instant;
use tokio::runtime::Handle;
use tokio::sync::mpsc;

use crate::cli::Common;
use crate::ledger::Ledger;
use crate::stats::{Stats, lock};
use crate::target::Dialer;
use crate::tokens::Tokens;

static NO_STREAMS: LazyLock<Ledger> = LazyLock::new(Ledger::default);

/// What every connection and scenario of the run shares.
pub struct Ctx {
    /// The command line's shared options.
    pub opts: Common,
    /// This run's tag, the first part of every `client_msg_id` it sends.
    pub tag: String,
    /// Message content (`--message-bytes` characters).
    pub content: String,
    /// Opens connections.
    pub dialer: Dialer,
    /// Mints tokens.
    pub tokens: Tokens,
    /// Counters and histograms.
    pub stats: Stats,
    /// The IO threads' runtimes (`shards`): a user's connection lives on one of them.
    io: Vec<Handle>,
    /// The streams; set once, before the first message.
    ledger: OnceLock<Ledger>,
    /// Whether a connection the server ends is reopened (and resynced).
    pub reconnect: AtomicBool,
    /// Users whose connection the server ended, for the reconnector.
    disconnects: mpsc::UnboundedSender<u32>,
    /// The other end of `disconnects`, taken by the scenario's reconnector.
    disconnected: Mutex<Option<mpsc::UnboundedReceiver<u32>>>,
    epoch: Instant,
    /// Unix milliseconds at `epoch`: times in the report are wall-clock, so that reports
    /// from several processes or machines can be merged on one time line.
    epoch_unix_ms: u64,
}

impl Ctx {
    /// A context for a run.
    pub fn new(opts: Common, dialer: Dialer, tokens: Tokens, io: Vec<Handle>) -> Ctx {
        assert!(!io.is_empty(), "at least one IO thread");
        let (disconnects, disconnected) = mpsc::unbounded_channel();
        Ctx {
            tag: crate::protocol::run_tag(),
            content: "x".repeat(opts.message_bytes.max(1)),
            opts,
            dialer,
            tokens,
            stats: Stats::default(),
            io,
            ledger: OnceLock::new(),
            reconnect: AtomicBool::new(false),
            disconnects,
            disconnected: Mutex::new(Some(disconnected)),
            epoch: Instant::now(),
            epoch_unix_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
        }
    }

    /// The runtime of the IO thread that user `idx`'s connections live on.
    pub fn shard(&self, idx: u32) -> &Handle {
        &self.io[idx as usize % self.io.len()]
    }

    /// µs since the run began: the clock of send times and latencies.
    pub fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    /// `at` in µs since the run began (0 for an instant before it).
    pub fn us_at(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_micros() as u64
    }

    /// Unix milliseconds of `us` µs since the run began.
    pub fn unix_ms(&self, us: u64) -> u64 {
        self.epoch_unix_ms + us / 1000
    }

    /// The streams (none until `set_ledger`).
    pub fn ledger(&self) -> &Ledger {
        self.ledger.get().unwrap_or(&NO_STREAMS)
    }

    /// Installs the streams; only the first call counts.
    pub fn set_ledger(&self, ledger: Ledger) {
        let _ = self.ledger.set(ledger);
    }

    /// Whether dropped connections are reopened.
    pub fn reconnecting(&self) -> bool {
        self.reconnect.load(Ordering::Relaxed)
    }

    /// Reports that the server ended `user`'s connection.
    pub fn report_disconnect(&self, user: u32) {
        let _ = self.disconnects.send(user);
    }

    /// Takes the receiving end of disconnect reports (once).
    pub fn take_disconnects(&self) -> Option<mpsc::UnboundedReceiver<u32>> {
        lock(&self.disconnected).take()
    }
}
