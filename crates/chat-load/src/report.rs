//! The final report: one serialisable struct (the `--json` file) built from the run's
//! counters, and its verdict. `table.rs` prints it for people.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;

use crate::context::Ctx;
use crate::fdlimit::FdLimit;
use crate::fleet::Opened;
use crate::ledger::Audit;
use crate::procs::CpuReport;

/// Latency percentiles, in milliseconds.
#[derive(Debug, Clone, Serialize)]
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
#[derive(Debug, Clone, Serialize)]
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
#[derive(Debug, Clone, Serialize)]
pub struct Messages {
    /// Offered rate, messages/s.
    pub target_rate: f64,
    /// Sending phase, seconds (rates are over it).
    pub send_s: f64,
    pub sent: u64,
    pub send_rate: f64,
    /// Sends skipped: sender at its in-flight cap.
    pub skipped_inflight: u64,
    /// Sends skipped: sender offline.
    pub skipped_offline: u64,
    /// 2100 + 2101.
    pub acked: u64,
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
    pub delivery_rate: f64,
    /// Acknowledged × recipients online at the end.
    pub expected_deliveries: u64,
    /// Acknowledged but never received by an online recipient.
    pub lost: u64,
    /// Owed to recipients offline at the end (not counted as lost).
    pub owed_to_offline: u64,
    /// Pushed live twice to the same user.
    pub duplicates: u64,
    /// Received again by sync: allowed.
    pub redelivered: u64,
    /// Messages of other runs (unread leftovers).
    pub foreign: u64,
    /// Unread syncs completed.
    pub syncs: u64,
    /// A few lost messages.
    pub lost_examples: Vec<String>,
}

/// Errors of the run.
#[derive(Debug, Clone, Serialize)]
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
#[derive(Debug, Clone, Serialize)]
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
#[derive(Debug, Clone, Serialize)]
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
#[derive(Debug, Clone, Serialize)]
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
    /// Messages sent to the dropped clients' groups during the storm.
    pub messages_during_storm: u64,
}

/// Pass or fail, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub passed: bool,
    pub reasons: Vec<String>,
}

/// Everything a run reports.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: &'static str,
    /// The scenario's flags.
    pub params: serde_json::Value,
    /// Prefix of this run's client_msg_ids.
    pub run_tag: String,
    pub targets: Vec<String>,
    pub source_addrs: Vec<String>,
    pub fd_limit: FdLimit,
    /// Users (distinct ids) of the run.
    pub users: u64,
    /// Whole run, seconds.
    pub duration_s: f64,
    pub connections: Connections,
    pub messages: Option<Messages>,
    /// Send → live delivery on the recipient's socket.
    pub latency_ms: Option<Percentiles>,
    /// Send → acknowledgement on the sender's socket.
    pub ack_latency_ms: Option<Percentiles>,
    pub errors: Errors,
    pub cpu: Option<Cpu>,
    pub memory: Vec<ServerMemory>,
    /// The load tool's own RSS at the end, KiB.
    pub load_tool_rss_kib: Option<u64>,
    pub storm: Option<Storm>,
    pub verdict: Verdict,
}

/// What a scenario hands over for the report; the counters come from the context.
#[derive(Default)]
pub struct Outcome {
    pub users: u64,
    pub wanted: u64,
    pub capped: bool,
    pub opened: Opened,
    /// Target rate and length of the sending phase, for message scenarios.
    pub sending: Option<(f64, f64)>,
    pub audit: Option<Audit>,
    pub cpu: Option<CpuReport>,
    pub memory: Vec<ServerMemory>,
    pub storm: Option<Storm>,
    /// Users that could not be brought back (storm), counted as errors.
    pub unrecovered: u64,
    /// Handshakes in the CPU window, when they are the work measured (connect, storm).
    pub handshakes_measured: Option<u64>,
}

fn rate(n: u64, secs: f64) -> f64 {
    if secs > 0.0 { n as f64 / secs } else { 0.0 }
}

impl Report {
    /// Builds the report of a finished run.
    pub fn build(
        ctx: &Ctx,
        scenario: &'static str,
        params: serde_json::Value,
        fd_limit: FdLimit,
        duration_s: f64,
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
        let messages = outcome.sending.map(|(target_rate, send_s)| {
            let audit = outcome.audit.clone().unwrap_or_default();
            Messages {
                target_rate,
                send_s,
                sent: s.sent.get(),
                send_rate: rate(s.sent.get(), send_s),
                skipped_inflight: s.skipped_inflight.get(),
                skipped_offline: s.skipped_offline.get(),
                acked: s.acked.get(),
                ack_rate: rate(s.acked.get(), send_s),
                acked_offline: s.acked_offline.get(),
                refused: s.failed.get(),
                unacked: s.unacked.get(),
                delivered: s.delivered.get(),
                delivered_live: s.delivered_live.get(),
                delivered_unread: s.delivered_unread.get(),
                delivery_rate: rate(s.delivered.get(), send_s),
                expected_deliveries: audit.expected_deliveries,
                lost: audit.lost,
                owed_to_offline: audit.owed_to_offline,
                duplicates: s.duplicates.get(),
                redelivered: s.redelivered.get(),
                foreign: s.foreign.get(),
                syncs: s.syncs.get(),
                lost_examples: audit.lost_examples,
            }
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
            let paced = outcome.sending.is_some_and(|(rate, _)| rate > 0.0);
            Cpu {
                gateway_us_per_message: per(s.acked.get()).filter(|_| paced),
                gateway_us_per_delivery: per(s.delivered.get()).filter(|_| paced),
                gateway_us_per_connection: outcome.handshakes_measured.and_then(per),
                report,
            }
        });
        let mut report = Report {
            scenario,
            params,
            run_tag: ctx.tag.clone(),
            targets: ctx.dialer.targets.iter().map(|t| t.url.clone()).collect(),
            source_addrs: ctx.dialer.sources.iter().map(|a| a.to_string()).collect(),
            fd_limit,
            users: outcome.users,
            duration_s,
            connections,
            messages,
            latency_ms: Percentiles::of(&s.latency.total()),
            ack_latency_ms: Percentiles::of(&s.ack_latency.total()),
            errors,
            cpu,
            memory: outcome.memory,
            load_tool_rss_kib: crate::procs::rss_kib(None),
            storm: outcome.storm,
            verdict: Verdict {
                passed: true,
                reasons: Vec::new(),
            },
        };
        report.verdict = report.judge(ctx.opts.max_errors);
        report
    }

    /// Fails on any lost message, on duplicates, and on an error rate above `max_errors`.
    fn judge(&self, max_errors: f64) -> Verdict {
        let mut reasons = Vec::new();
        if let Some(m) = &self.messages {
            if m.lost > 0 {
                reasons.push(format!("{} messages lost", m.lost));
            }
            if m.duplicates > 0 {
                reasons.push(format!("{} duplicate live deliveries", m.duplicates));
            }
        }
        if self.errors.rate > max_errors {
            reasons.push(format!(
                "error rate {:.5} above --max-errors {max_errors}",
                self.errors.rate
            ));
        }
        if self.connections.established == 0 && self.connections.wanted > 0 {
            reasons.push("no connection could be established".into());
        }
        Verdict {
            passed: reasons.is_empty(),
            reasons,
        }
    }
}
