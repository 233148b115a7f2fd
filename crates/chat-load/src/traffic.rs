//! Sending: one message of a stream, stamped with the time the schedule made it due and
//! how late it went out, subject to the sender being online and under its in-flight cap.

use std::sync::atomic::Ordering;

use crate::fleet::Fleet;
use crate::protocol::frame;

/// Sends the next message of `stream`, due at `due_us` (µs since the run began); whether
/// it went out (skips are counted).
pub fn send(fleet: &Fleet, stream: u32, due_us: u64) -> bool {
    let ctx = &fleet.ctx;
    let ledger = ctx.ledger();
    let Some(s) = ledger.streams.get(stream as usize) else {
        return false;
    };
    let user = &fleet.users[s.sender as usize];
    if !user.is_online() {
        ctx.stats.skipped_offline.inc();
        return false;
    }
    if user.inflight.load(Ordering::Relaxed) >= ctx.opts.inflight {
        ctx.stats.skipped_inflight.inc();
        return false;
    }
    let seq = ledger.next_seq(stream);
    user.inflight.fetch_add(1, Ordering::Relaxed);
    let now = ctx.now_us();
    let late = now.saturating_sub(due_us);
    if user.send(frame(&s.head, seq, due_us, late)) {
        let stats = &ctx.stats;
        stats.sent.inc();
        stats.first_send.note(now);
        stats.last_send.note(now);
        stats.send_lag.record(user.idx as usize, late);
        true
    } else {
        let _ = user
            .inflight
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        ctx.stats.skipped_offline.inc();
        false
    }
}
