//! The time series of a run: once a second (and once more at the end, for the last part of
//! a second) what was sent, acknowledged and delivered in that interval, what was skipped,
//! what is still owed, and the latency of that interval's deliveries. Kept for the report,
//! written as JSON lines to `--series FILE` while the run goes (for a dashboard or `tail
//! -f`), and printed as the progress line a person watches.

use serde::{Deserialize, Serialize};
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::context::Ctx;

/// Most samples kept for the report (a day of seconds); later ones are only written out.
const MAX_SAMPLES: usize = 86_400;

/// One interval of the run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Sample {
    /// Wall-clock end of the interval, unix milliseconds.
    pub unix_ms: u64,
    /// End of the interval, seconds since the run began.
    pub t_s: f64,
    /// Length of the interval, seconds (1, except for the last one).
    pub span_s: f64,
    /// Connections open at its end.
    pub open: u64,
    /// Messages written in the interval.
    pub sent: u64,
    /// Sends skipped in the interval: sender at its in-flight cap, or the tool behind its
    /// schedule.
    pub skipped: u64,
    /// Acknowledgements received in the interval.
    pub acked: u64,
    /// Deliveries (first receipts) in the interval.
    pub delivered: u64,
    /// Error frames (not retried) and failed handshakes in the interval.
    pub errors: u64,
    /// Deliveries owed but not yet received, at its end.
    pub outstanding: u64,
    /// Latency (from the due time) of the interval's live deliveries, ms; null when none.
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
}

#[derive(Clone, Copy, Default)]
struct Totals {
    sent: u64,
    skipped: u64,
    acked: u64,
    delivered: u64,
    errors: u64,
}

impl Totals {
    fn now(ctx: &Ctx) -> Totals {
        let s = &ctx.stats;
        Totals {
            sent: s.sent.get(),
            skipped: s.skipped_inflight.get() + s.skipped_behind.get(),
            acked: s.acked.get(),
            delivered: s.delivered.get(),
            errors: s.errors.total().saturating_sub(s.retried.get()) + s.connect_failures.total(),
        }
    }
}

/// The running sampler; `stop` takes the last sample and hands back every sample.
pub struct Sampler {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Vec<Sample>>,
}

impl Sampler {
    /// Starts sampling every second; prints the progress line unless `--quiet`, and writes
    /// each sample to `--series` when given.
    pub fn start(ctx: Arc<Ctx>) -> Result<Sampler, String> {
        let out = match &ctx.opts.series {
            Some(path) => Some(
                std::fs::File::create(path)
                    .map_err(|e| format!("creating {}: {e}", path.display()))?,
            ),
            None => None,
        };
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(run(ctx, out, stopped));
        Ok(Sampler { stop, task })
    }

    /// Takes the last (partial) sample and returns them all.
    pub async fn stop(self) -> Vec<Sample> {
        let _ = self.stop.send(());
        self.task.await.unwrap_or_default()
    }
}

async fn run(
    ctx: Arc<Ctx>,
    mut out: Option<std::fs::File>,
    mut stopped: oneshot::Receiver<()>,
) -> Vec<Sample> {
    let mut samples = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut last = (Instant::now(), Totals::now(&ctx));
    loop {
        let end = tokio::select! {
            _ = tick.tick() => false,
            _ = &mut stopped => true,
        };
        let sample = take(&ctx, &mut last);
        if !ctx.opts.quiet && !end {
            eprintln!("{}", progress_line(&sample));
        }
        if let Some(file) = &mut out {
            let line = serde_json::to_string(&sample).unwrap_or_default();
            if writeln!(file, "{line}")
                .and_then(|()| file.flush())
                .is_err()
            {
                eprintln!("chat-load: cannot write the time series; it stops here");
                out = None;
            }
        }
        if samples.len() < MAX_SAMPLES {
            samples.push(sample);
        }
        if end {
            return samples;
        }
    }
}

fn take(ctx: &Ctx, last: &mut (Instant, Totals)) -> Sample {
    let now = (Instant::now(), Totals::now(ctx));
    let (was, then) = std::mem::replace(last, now);
    let window = ctx.stats.latency.take_window();
    let ms = |q: f64| (!window.is_empty()).then(|| window.value_at_quantile(q) as f64 / 1000.0);
    let us = ctx.now_us();
    Sample {
        unix_ms: ctx.unix_ms(us),
        t_s: us as f64 / 1e6,
        span_s: now.0.duration_since(was).as_secs_f64(),
        open: ctx.stats.open_now(),
        sent: now.1.sent - then.sent,
        skipped: now.1.skipped - then.skipped,
        acked: now.1.acked - then.acked,
        delivered: now.1.delivered - then.delivered,
        errors: now.1.errors.saturating_sub(then.errors),
        outstanding: ctx.ledger().expected().saturating_sub(now.1.delivered),
        p50_ms: ms(0.5),
        p99_ms: ms(0.99),
        max_ms: (!window.is_empty()).then(|| window.max() as f64 / 1000.0),
    }
}

/// The progress line: rates over the last second.
fn progress_line(s: &Sample) -> String {
    let per_s = |n: u64| n as f64 / s.span_s.max(1e-3);
    format!(
        "[{:>5.0}s] open {:>6}  sent {:>7.0}/s  acked {:>7.0}/s  delivered {:>8.0}/s  p99 {:>9}  \
         skipped {}  errors {}  outstanding {}",
        s.t_s,
        s.open,
        per_s(s.sent),
        per_s(s.acked),
        per_s(s.delivered),
        s.p99_ms.map_or("-".into(), |p| format!("{p:.2}ms")),
        s.skipped,
        s.errors,
        s.outstanding,
    )
}

/// Adds up the series of several reports: samples ending in the same wall-clock second
/// are one. Latency percentiles cannot be added, so a merged sample keeps the worst of
/// its parts' (`p99_ms` is then an upper bound, not the p99).
pub fn merge(parts: &[Vec<Sample>]) -> Vec<Sample> {
    let mut by_second: std::collections::BTreeMap<u64, Sample> = Default::default();
    for sample in parts.iter().flatten() {
        let m = by_second.entry(sample.unix_ms / 1000).or_default();
        m.unix_ms = m.unix_ms.max(sample.unix_ms);
        m.t_s = m.t_s.max(sample.t_s);
        m.span_s = m.span_s.max(sample.span_s);
        m.open += sample.open;
        m.sent += sample.sent;
        m.skipped += sample.skipped;
        m.acked += sample.acked;
        m.delivered += sample.delivered;
        m.errors += sample.errors;
        m.outstanding += sample.outstanding;
        let worst = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        m.p50_ms = worst(m.p50_ms, sample.p50_ms);
        m.p99_ms = worst(m.p99_ms, sample.p99_ms);
        m.max_ms = worst(m.max_ms, sample.max_ms);
    }
    by_second.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_series_add_up_by_second() {
        let a = vec![Sample {
            unix_ms: 10_400,
            sent: 5,
            p99_ms: Some(2.0),
            ..Sample::default()
        }];
        let b = vec![
            Sample {
                unix_ms: 10_900,
                sent: 7,
                p99_ms: Some(3.0),
                ..Sample::default()
            },
            Sample {
                unix_ms: 11_100,
                sent: 1,
                ..Sample::default()
            },
        ];
        let m = merge(&[a, b]);
        assert_eq!(m.len(), 2);
        assert_eq!((m[0].sent, m[0].p99_ms), (12, Some(3.0)));
        assert_eq!((m[1].sent, m[1].p99_ms), (1, None));
    }
}
