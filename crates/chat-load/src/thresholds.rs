//! The thresholds a run is judged by: what always fails it (lost messages beyond
//! `--max-lost`, duplicates, skipped sends unless allowed, errors above `--max-errors`), and
//! the limits a CI job sets (`--max-p99 50ms`, `--min-rate 20000`, …). Every reason a run
//! fails names the threshold it missed.

use clap::Args;
use std::time::Duration;

use crate::cli::duration;
use crate::report::{Percentiles, Report};

/// Limits a run must stay within; a miss makes the exit status 1.
#[derive(Args, Debug, Clone, Default)]
#[command(
    next_help_heading = "Thresholds (a run that misses one exits with status 1 and names it)"
)]
pub struct Thresholds {
    /// Highest p99 latency of live deliveries, measured from the due time (`50ms`).
    #[arg(long, global = true, value_parser = duration)]
    pub max_p99: Option<Duration>,
    /// Highest p99.9 latency of live deliveries, measured from the due time.
    #[arg(long, global = true, value_parser = duration)]
    pub max_p999: Option<Duration>,
    /// Lowest delivery rate, deliveries per second over the real window (first send to
    /// last delivery).
    #[arg(long, global = true)]
    pub min_rate: Option<f64>,
    /// Most lost messages (acknowledged, never received by an online recipient).
    #[arg(long, global = true, default_value_t = 0)]
    pub max_lost: u64,
    /// Highest error rate (errors / operations, a fraction).
    #[arg(long, global = true, default_value_t = 0.0)]
    pub max_errors: f64,
    /// Longest drain: last send to last delivery.
    #[arg(long, global = true, value_parser = duration)]
    pub max_drain: Option<Duration>,
    /// Most gaps (owed messages a recipient's live stream skipped; they came by sync, late,
    /// or never). Unlimited by default: the protocol fills them by sync.
    #[arg(long, global = true)]
    pub max_gaps: Option<u64>,
    /// Most messages pushed after a later one of their stream. Unlimited by default.
    #[arg(long, global = true)]
    pub max_reordered: Option<u64>,
    /// Pass a run that skipped sends (the tool behind its schedule, or senders at their
    /// in-flight cap): the offered rate was then not the rate offered.
    #[arg(long, global = true)]
    pub allow_skips: bool,
}

impl Thresholds {
    /// Checks what can be checked before a run.
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.max_errors) {
            return Err("--max-errors is a fraction from 0 to 1".into());
        }
        if self.min_rate.is_some_and(|r| !r.is_finite() || r < 0.0) {
            return Err("--min-rate is a rate of 0 or more".into());
        }
        Ok(())
    }

    /// Why `report` fails, each reason naming the threshold or rule it missed; empty when
    /// it passes.
    pub fn judge(&self, report: &Report) -> Vec<String> {
        let mut reasons = Vec::new();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let latency = |name: &str, limit: Option<Duration>, of: fn(&Percentiles) -> f64| {
            let limit = limit?;
            let shown = humantime::format_duration(limit);
            Some(match &report.latency_ms {
                Some(p) if of(p) <= ms(limit) => return None,
                Some(p) => format!(
                    "{name} {shown}: {:.3} ms (from the due time; {:.3} ms from the actual send)",
                    of(p),
                    report.latency_from_send_ms.as_ref().map_or(f64::NAN, of),
                ),
                None => format!("{name} {shown}: no live delivery was measured"),
            })
        };
        reasons.extend(latency("--max-p99", self.max_p99, |p| p.p99));
        reasons.extend(latency("--max-p999", self.max_p999, |p| p.p999));
        match &report.messages {
            Some(m) => {
                if m.lost > self.max_lost {
                    reasons.push(format!(
                        "--max-lost {}: {} messages lost",
                        self.max_lost, m.lost
                    ));
                }
                if m.duplicates > 0 {
                    reasons.push(format!("{} duplicate live deliveries", m.duplicates));
                }
                let skipped = m.skipped_inflight + m.skipped_behind;
                if skipped > 0 && !self.allow_skips {
                    reasons.push(format!(
                        "{skipped} sends skipped ({} by senders at the --inflight cap, {} more than \
                         --max-send-lag overdue): the offered rate was not offered; \
                         --allow-skips accepts that",
                        m.skipped_inflight, m.skipped_behind
                    ));
                }
                if let Some(min) = self.min_rate
                    && m.delivery_rate < min
                {
                    reasons.push(format!(
                        "--min-rate {min}: {:.1} deliveries/s over the {:.2} s window",
                        m.delivery_rate, m.window_s
                    ));
                }
                if let Some(max) = self.max_drain
                    && m.drain_s > max.as_secs_f64()
                {
                    reasons.push(format!(
                        "--max-drain {}: the last delivery came {:.2} s after the last send",
                        humantime::format_duration(max),
                        m.drain_s
                    ));
                }
                if let Some(max) = self.max_gaps
                    && m.gaps > max
                {
                    reasons.push(format!("--max-gaps {max}: {} gaps", m.gaps));
                }
                if let Some(max) = self.max_reordered
                    && m.reordered > max
                {
                    reasons.push(format!(
                        "--max-reordered {max}: {} messages out of order",
                        m.reordered
                    ));
                }
            }
            None if self.min_rate.is_some() => {
                reasons.push("--min-rate: this run delivered no messages".into());
            }
            None => {}
        }
        if report.errors.rate > self.max_errors {
            reasons.push(format!(
                "--max-errors {}: error rate {:.5} ({} of {} operations)",
                self.max_errors, report.errors.rate, report.errors.total, report.errors.operations
            ));
        }
        if report.connections.established == 0 && report.connections.wanted > 0 {
            reasons.push("no connection could be established".into());
        }
        reasons
    }
}
