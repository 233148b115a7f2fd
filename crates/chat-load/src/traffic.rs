//! Sending: one message of a stream, stamped with its send time, subject to the sender
//! being online and under its in-flight cap.

use std::sync::atomic::Ordering;

use crate::fleet::Fleet;
use crate::protocol::frame;

/// Sends the next message of `stream`; whether it went out (skips are counted).
pub fn send(fleet: &Fleet, stream: u32) -> bool {
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
    if user.send(frame(&s.head, seq, ctx.now_us())) {
        ctx.stats.sent.inc();
        true
    } else {
        let _ = user
            .inflight
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        ctx.stats.skipped_offline.inc();
        false
    }
}
