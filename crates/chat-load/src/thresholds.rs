//! The thresholds a run is judged by: what always fails it (lost messages beyond
//! `--max-lost`, duplicates, skipped sends unless allowed, errors above `--max-errors`), and
//! the limits a CI job sets (`--max-p99 50ms`, `--min-rate 20000`, …). Every reason a run
//! fails names the threshold it missed.

use clap::Args;
use std::time::Duration;

use crate::units::duration;

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
}
