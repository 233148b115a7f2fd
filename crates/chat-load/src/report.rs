//! The final report: one serialisable struct (the `--json` file) built from the run's
//! counters, and its verdict. `table.rs` prints it for people; `merge.rs` reads several
//! back and adds them up.
//!
//! Rates are over the time the work took: sends over the sending phase, acknowledgements
//! and deliveries over the window from the first send to the last acknowledgement or
//! delivery (the drain included), so a gateway that delivers late cannot look fast.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::context::Ctx;
use crate::fdlimit::FdLimit;
use crate::fleet::Opened;
use crate::ledger::Audit;
use crate::procs::CpuReport;
use crate::series::Sample;
use crate::stats::encode;

/// Latency percentiles, in milliseconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Percentiles {
    /// Samples.
    pub count: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

impl Percentiles {
    /// Percentiles of a histogram in µs; `None` when it is empty.
    pub fn of(h: &Histogram<u64>) -> Option<Percentiles> {
        let ms = |us: u64| us as f64 / 1000.0;
        (!h.is_empty()).then(|| Percentiles {
            count: h.len(),
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
            mean: h.mean() / 1000.0,
        })
    }
}

/// Connections of the run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Connections {
    /// Connections the scenario asked for.
    pub wanted: u64,
    /// Whether the file-descriptor limit lowered `wanted`.
    pub capped_by_fd_limit: bool,
    /// Established in the opening ramp.
    pub established: u64,
    /// Users that never connected in the ramp (after their attempts).
    pub failed: u64,
    /// Failed handshake attempts by cause (retried ones included).
    pub failures_by_cause: BTreeMap<String, u64>,
    /// Duration of the opening ramp, seconds.
    pub ramp_s: f64,
    /// Handshakes completed per second in the ramp.
    pub handshake_rate: f64,
    /// TCP connect → 1000 frame, every handshake of the run.
    pub handshake_ms: Option<Percentiles>,
    /// Most connections open at once.
    pub peak_open: i64,
    /// Reconnections after drops.
    pub reconnects: u64,
    /// Connections the server ended while the run wanted them open.
    pub server_disconnects: u64,
    /// 1001 frames by reason.
    pub close_reasons: BTreeMap<String, u64>,
}

/// Messages of the run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Messages {
    /// Offered rate, messages/s.
    pub target_rate: f64,
    /// Sending phase, seconds.
    pub send_s: f64,
    /// Sends the schedule made due in the sending phase.
    pub scheduled: u64,
    pub sent: u64,
    /// sent / send_s.
    pub send_rate: f64,
    /// Sends skipped: sender at its in-flight cap.
    pub skipped_inflight: u64,
    /// Sends skipped: the tool more than `--max-send-lag` behind its schedule.
    pub skipped_behind: u64,
    /// Sends skipped: sender offline.
    pub skipped_offline: u64,
    /// First send, last send, last acknowledgement, last delivery: unix milliseconds.
    pub first_send_unix_ms: Option<u64>,
    pub last_send_unix_ms: Option<u64>,
    pub last_ack_unix_ms: Option<u64>,
    pub last_delivery_unix_ms: Option<u64>,
    /// The real window: first send → last acknowledgement or delivery, seconds. Ack and
    /// delivery rates are over it.
    pub window_s: f64,
    /// Last send → last acknowledgement or delivery, seconds.
    pub drain_s: f64,
    /// 2100 + 2101.
    pub acked: u64,
    /// acked / window_s.
    pub ack_rate: f64,
    /// 2101 (recipient offline).
    pub acked_offline: u64,
    /// Refused by an error frame.
    pub refused: u64,
    /// Connection gone before the acknowledgement.
    pub unacked: u64,
    /// First receipts (live or by sync).
    pub delivered: u64,
    pub delivered_live: u64,
    pub delivered_unread: u64,
    /// delivered / window_s.
    pub delivery_rate: f64,
    /// The delivery rate the offered rate asks for: target_rate × owed deliveries per
    /// acknowledged message.
    pub offered_delivery_rate: f64,
    /// Acknowledged × recipients online at the end.
    pub expected_deliveries: u64,
    /// Acknowledged but never received by an online recipient.
    pub lost: u64,
    /// Owed to recipients offline at the end (not counted as lost).
    pub owed_to_offline: u64,
    /// Pushed live twice to the same user.
    pub duplicates: u64,
    /// Pushed live after a later message of the same stream.
    pub reordered: u64,
    /// Owed messages a recipient's live stream skipped (a later one came first): filled
    /// by sync, late (reordered), or lost.
    pub gaps: u64,
    /// Received again by sync: allowed.
    pub redelivered: u64,
    /// Messages of other runs (unread leftovers).
    pub foreign: u64,
    /// Unread syncs completed.
    pub syncs: u64,
    /// A few lost messages.
    pub lost_examples: Vec<String>,
    /// Whether the run kept up with the offered rate; `behind` says how it did not.
    pub kept_up: bool,
    pub behind: Vec<String>,
}

impl Messages {
    /// Fills in what follows from the counts and times: the window, the drain, the rates,
    /// and whether the run kept up.
    pub fn derive(&mut self) {
        let end = self.last_delivery_unix_ms.max(self.last_ack_unix_ms);
        let ms = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (Some(a), Some(b)) => b.saturating_sub(a) as f64 / 1000.0,
            _ => 0.0,
        };
        self.window_s = ms(self.first_send_unix_ms, end);
        self.drain_s = ms(self.last_send_unix_ms, end);
        self.send_rate = rate(self.sent, self.send_s);
        self.ack_rate = rate(self.acked, self.window_s);
        self.delivery_rate = rate(self.delivered, self.window_s);
        let per_message = if self.acked > 0 {
            (self.expected_deliveries + self.owed_to_offline) as f64 / self.acked as f64
        } else {
            0.0
        };
        self.offered_delivery_rate = self.target_rate * per_message;
        self.behind.clear();
        if self.skipped_behind > 0 {
            self.behind.push(format!(
                "the tool fell behind its schedule: {} sends more than --max-send-lag overdue \
                 were skipped",
                self.skipped_behind
            ));
        }
        if self.skipped_inflight > 0 {
            self.behind.push(format!(
                "{} sends skipped: their senders had --inflight messages unacknowledged",
                self.skipped_inflight
            ));
        }
        // Deliveries over the real window short of what the offered rate asks for (a tenth
        // of slack: a short run's window is its sending phase plus one latency).
        if self.target_rate > 0.0
            && self.delivery_rate < 0.9 * self.offered_delivery_rate
            && self.window_s > 0.0
        {
            self.behind.push(format!(
                "delivered {:.1}/s over the {:.2} s window against {:.1}/s offered; the last \
                 delivery came {:.2} s after the last send",
                self.delivery_rate, self.window_s, self.offered_delivery_rate, self.drain_s
            ));
        }
        self.kept_up = self.behind.is_empty();
    }
}

/// Errors of the run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Errors {
    /// Error frames by code.
    pub by_code: BTreeMap<String, u64>,
    /// All error frames.
    pub frames: u64,
    /// Of those, retried by the client as the protocol says (5000 to an unread sync, to a
    /// read receipt, or to a message, sent again with the same client_msg_id): not counted
    /// in `total`.
    pub retried: u64,
    /// Frames that could not be read.
    pub bad_frames: u64,
    /// error frames (less retried) + bad frames + users never connected or never back +
    /// server disconnects.
    pub total: u64,
    /// Messages sent + connection attempts.
    pub operations: u64,
    /// total / operations.
    pub rate: f64,
}

/// Server memory over the run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerMemory {
    pub pid: u32,
    /// Before the first connection, KiB.
    pub rss_before_kib: Option<u64>,
    /// With every connection up, KiB.
    pub rss_loaded_kib: Option<u64>,
    /// (loaded − before) / connections open, bytes.
    pub rss_per_connection_bytes: Option<f64>,
}

/// CPU over the measured window, and the gateway's cost per unit of work.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cpu {
    #[serde(flatten)]
    pub report: CpuReport,
    /// Gateway CPU µs per acknowledged message.
    pub gateway_us_per_message: Option<f64>,
    /// Gateway CPU µs per delivery.
    pub gateway_us_per_delivery: Option<f64>,
    /// Gateway CPU µs per handshake: connect (opening) and storm (reconnect and resync).
    pub gateway_us_per_connection: Option<f64>,
}

/// The storm's own measures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Storm {
    /// Clients dropped.
    pub clients: u64,
    /// Back (reconnected) before the timeout.
    pub reconnected: u64,
    /// Back and resynced before the timeout.
    pub resynced: u64,
    /// Drop → last client reconnected, seconds.
    pub all_reconnected_s: Option<f64>,
    /// Drop → last client resynced, seconds.
    pub all_resynced_s: Option<f64>,
    /// Drop → resynced, per client.
    pub resync_ms: Option<Percentiles>,
    /// The same as an HDR histogram (`stats::encode`), for `merge`.
    #[serde(default)]
    pub resync_histogram: Option<String>,
    /// Messages sent to the dropped clients' groups during the storm.
    pub messages_during_storm: u64,
}

/// Pass or fail, and why.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Verdict {
    pub passed: bool,
    pub reasons: Vec<String>,
}

/// The run's latency histograms, HdrHistogram V2 in base64 (`stats::encode`): what
/// `merge` adds up into exact percentiles of several runs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Histograms {
    pub latency: String,
    pub latency_from_send: String,
    pub ack_latency: String,
    pub send_lag: String,
    pub handshake: String,
}

/// Everything a run reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub scenario: String,
    /// The scenario's flags.
    pub params: serde_json::Value,
    /// Prefix of this run's client_msg_ids (several, comma-separated, in a merged report).
    pub run_tag: String,
    pub targets: Vec<String>,
    pub source_addrs: Vec<String>,
    pub fd_limit: FdLimit,
    /// Users (distinct ids) of the run.
    pub users: u64,
    /// Whole run, seconds.
    pub duration_s: f64,
    /// Reports merged into this one (1 for a single run).
    #[serde(default = "one")]
    pub parts: u64,
    pub connections: Connections,
    pub messages: Option<Messages>,
    /// Due time (the schedule's) → live delivery on the recipient's socket.
    pub latency_ms: Option<Percentiles>,
    /// Actual send → live delivery: lower than `latency_ms` by what the tool was late.
    pub latency_from_send_ms: Option<Percentiles>,
    /// Due time → acknowledgement on the sender's socket.
    pub ack_latency_ms: Option<Percentiles>,
    /// Due time → actual send: how late the tool was.
    pub send_lag_ms: Option<Percentiles>,
    pub errors: Errors,
    pub cpu: Option<Cpu>,
    pub memory: Vec<ServerMemory>,
    /// The load tool's own RSS at the end, KiB (the largest of the parts' when merged).
    pub load_tool_rss_kib: Option<u64>,
    pub storm: Option<Storm>,
    /// Once a second: sent, acknowledged, delivered, skipped, outstanding, latency.
    #[serde(default)]
    pub series: Vec<Sample>,
    #[serde(default)]
    pub histograms: Histograms,
    pub verdict: Verdict,
}

fn one() -> u64 {
    1
}

/// What a scenario hands over for the report; the counters come from the context.
#[derive(Default)]
pub struct Outcome {
    pub users: u64,
    pub wanted: u64,
    pub capped: bool,
    pub opened: Opened,
    /// The sending phase, for message scenarios.
    pub sending: Option<Sending>,
    pub audit: Option<Audit>,
    pub cpu: Option<CpuReport>,
    pub memory: Vec<ServerMemory>,
    pub storm: Option<Storm>,
    /// Users that could not be brought back (storm), counted as errors.
    pub unrecovered: u64,
    /// Handshakes in the CPU window, when they are the work measured (connect, storm).
    pub handshakes_measured: Option<u64>,
}

/// What a scenario's sending phase was.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sending {
    /// Offered rate, messages/s (0: not paced, as in `storm`).
    pub rate: f64,
    /// Length, seconds.
    pub send_s: f64,
    /// Sends the schedule made due (sent or skipped).
    pub scheduled: u64,
}

/// `n` per second over `secs` (0 over no time).
pub fn rate(n: u64, secs: f64) -> f64 {
    if secs > 0.0 { n as f64 / secs } else { 0.0 }
}

impl Report {
    /// Builds the report of a finished run.
    pub fn build(
        ctx: &Ctx,
        (scenario, params): (&str, serde_json::Value),
        fd_limit: FdLimit,
        (duration_s, series): (f64, Vec<Sample>),
        outcome: Outcome,
    ) -> Report {
        let s = &ctx.stats;
        let opened = outcome.opened;
        let connections = Connections {
            wanted: outcome.wanted,
            capped_by_fd_limit: outcome.capped,
            established: opened.established,
            failed: opened.failed,
            failures_by_cause: s.connect_failures.snapshot(),
            ramp_s: opened.elapsed.as_secs_f64(),
            handshake_rate: rate(opened.established, opened.elapsed.as_secs_f64()),
            handshake_ms: Percentiles::of(&s.handshake.total()),
            peak_open: s.peak_open.load(std::sync::atomic::Ordering::Relaxed),
            reconnects: s.reconnects.get(),
            server_disconnects: s.server_disconnects.get(),
            close_reasons: s.close_reasons.snapshot(),
        };
        let unix = |us: Option<u64>| us.map(|us| ctx.unix_ms(us));
        let messages = outcome.sending.map(|sending| {
            let audit = outcome.audit.clone().unwrap_or_default();
            let mut m = Messages {
                target_rate: sending.rate,
                send_s: sending.send_s,
                scheduled: sending.scheduled,
                sent: s.sent.get(),
                send_rate: 0.0,
                skipped_inflight: s.skipped_inflight.get(),
                skipped_behind: s.skipped_behind.get(),
                skipped_offline: s.skipped_offline.get(),
                first_send_unix_ms: unix(s.first_send.get()),
                last_send_unix_ms: unix(s.last_send.get()),
                last_ack_unix_ms: unix(s.last_ack.get()),
                last_delivery_unix_ms: unix(s.last_delivery.get()),
                window_s: 0.0,
                drain_s: 0.0,
                acked: s.acked.get(),
                ack_rate: 0.0,
                acked_offline: s.acked_offline.get(),
                refused: s.failed.get(),
                unacked: s.unacked.get(),
                delivered: s.delivered.get(),
                delivered_live: s.delivered_live.get(),
                delivered_unread: s.delivered_unread.get(),
                delivery_rate: 0.0,
                offered_delivery_rate: 0.0,
                expected_deliveries: audit.expected_deliveries,
                lost: audit.lost,
                owed_to_offline: audit.owed_to_offline,
                duplicates: s.duplicates.get(),
                reordered: s.reordered.get(),
                gaps: audit.gaps,
                redelivered: s.redelivered.get(),
                foreign: s.foreign.get(),
                syncs: s.syncs.get(),
                lost_examples: audit.lost_examples,
                kept_up: true,
                behind: Vec::new(),
            };
            m.derive();
            m
        });
        let by_code: BTreeMap<String, u64> = s
            .errors
            .snapshot()
            .into_iter()
            .map(|(code, n)| (code.to_string(), n))
            .collect();
        let frames = s.errors.total();
        let total = frames.saturating_sub(s.retried.get())
            + s.bad_frames.get()
            + opened.failed
            + outcome.unrecovered
            + s.server_disconnects.get();
        let operations = s.sent.get() + s.connected.get() + s.connect_failures.total();
        let errors = Errors {
            by_code,
            frames,
            retried: s.retried.get(),
            bad_frames: s.bad_frames.get(),
            total,
            operations,
            rate: if operations > 0 {
                total as f64 / operations as f64
            } else {
                0.0
            },
        };
        let cpu = outcome.cpu.map(|report| {
            let gateway = report.seconds_of("gateway");
            let per = |n: u64| gateway.filter(|_| n > 0).map(|g| g * 1e6 / n as f64);
            // Per message only where messages are the work measured (not in a storm).
            let paced = outcome.sending.is_some_and(|sending| sending.rate > 0.0);
            Cpu {
                gateway_us_per_message: per(s.acked.get()).filter(|_| paced),
                gateway_us_per_delivery: per(s.delivered.get()).filter(|_| paced),
                gateway_us_per_connection: outcome.handshakes_measured.and_then(per),
                report,
            }
        });
        let (latency, from_send) = (s.latency.total(), s.latency_from_send.total());
        let (ack, lag, handshake) = (
            s.ack_latency.total(),
            s.send_lag.total(),
            s.handshake.total(),
        );
        Report {
            scenario: scenario.to_string(),
            params,
            run_tag: ctx.tag.clone(),
            targets: ctx.dialer.targets.iter().map(|t| t.url.clone()).collect(),
            source_addrs: ctx.dialer.sources.iter().map(|a| a.to_string()).collect(),
            fd_limit,
            users: outcome.users,
            duration_s,
            parts: 1,
            connections,
            messages,
            latency_ms: Percentiles::of(&latency),
            latency_from_send_ms: Percentiles::of(&from_send),
            ack_latency_ms: Percentiles::of(&ack),
            send_lag_ms: Percentiles::of(&lag),
            errors,
            cpu,
            memory: outcome.memory,
            load_tool_rss_kib: crate::procs::rss_kib(None),
            storm: outcome.storm,
            series,
            histograms: Histograms {
                latency: encode(&latency),
                latency_from_send: encode(&from_send),
                ack_latency: encode(&ack),
                send_lag: encode(&lag),
                handshake: encode(&handshake),
            },
            verdict: Verdict {
                passed: true,
                reasons: Vec::new(),
            },
        }
    }
}
