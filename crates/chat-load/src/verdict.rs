//! A run's verdict: its report judged by its thresholds (thresholds.rs), every reason naming
//! the threshold or rule it missed.

use std::time::Duration;

use crate::report::{Percentiles, Report, Verdict};
use crate::thresholds::Thresholds;

impl Thresholds {
    /// Sets `report`'s verdict.
    pub fn apply(&self, report: &mut Report) {
        let reasons = self.judge(report);
        report.verdict = Verdict {
            passed: reasons.is_empty(),
            reasons,
        };
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
