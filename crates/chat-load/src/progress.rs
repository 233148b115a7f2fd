//! The live progress line: once a second on stderr, rates over the last second.

use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

use crate::context::Ctx;

/// Prints a line per second until the returned task is aborted.
pub fn spawn(ctx: Arc<Ctx>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let started = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        let s = &ctx.stats;
        let mut last = (s.sent.get(), s.acked.get(), s.delivered.get());
        loop {
            tick.tick().await;
            let now = (s.sent.get(), s.acked.get(), s.delivered.get());
            let window = s.latency.take_window();
            let p99 = if window.is_empty() {
                "-".to_string()
            } else {
                format!("{:.2}ms", window.value_at_quantile(0.99) as f64 / 1000.0)
            };
            eprintln!(
                "[{:>5.0}s] open {:>6}  sent {:>7}/s  acked {:>7}/s  delivered {:>8}/s  p99 {:>9}  \
                 errors {}  outstanding {}  reconnects {}",
                started.elapsed().as_secs_f64(),
                s.open_now(),
                now.0 - last.0,
                now.1 - last.1,
                now.2 - last.2,
                p99,
                s.errors.total().saturating_sub(s.retried.get()) + s.connect_failures.total(),
                ctx.ledger().expected().saturating_sub(s.delivered.get()),
                s.reconnects.get(),
            );
            last = now;
        }
    })
}
