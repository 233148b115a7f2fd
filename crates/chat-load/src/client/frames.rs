//! What each server frame means for the run: a live message or a sync page received, an
//! acknowledgement, a refusal (retried when the protocol says so), counted in the ledger.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use chat_gateway::protocol::codes;

use super::{MESSAGE_RETRIES, RETRY_DELAY, User};
use crate::context::Ctx;
use crate::ledger::Receipt;
use crate::protocol::{Incoming, MsgKey, confirm, sync};
use crate::stats::lock;

/// Accounts for one server frame.
pub(super) fn handle(ctx: &Ctx, user: &Arc<User>, text: &str) {
    let stats = &ctx.stats;
    let Some(frame) = Incoming::parse(text) else {
        stats.bad_frames.inc();
        return;
    };
    match frame.code {
        codes::MESSAGE => message(ctx, user, &frame),
        codes::STORED_DELIVERED | codes::STORED_OFFLINE => acknowledged(ctx, user, &frame),
        codes::PAGE_END => match frame.next_cursor.as_deref() {
            Some(next) if !next.is_empty() => {
                confirm_page(user, &frame);
                user.send(sync());
            }
            _ => {
                confirm_page(user, &frame);
                stats.syncs.inc();
                user.syncing.store(false, Ordering::Relaxed);
                user.synced.notify_waiters();
            }
        },
        codes::READ_APPLIED => stats.reads_applied.inc(),
        codes::CLOSING => stats
            .close_reasons
            .inc(frame.reason.as_deref().unwrap_or("").to_string()),
        codes::SYNC_NEEDED => {
            stats.sync_needed.inc();
            user.start_sync();
        }
        codes::CONNECTED
        | codes::PONG
        | codes::READ_BY_PEER
        | codes::DELIVERY_CONFIRMED
        | codes::CONVERSATION_UPDATE => {}
        code if code >= codes::BAD_FRAME => refused(ctx, user, &frame),
        _ => stats.bad_frames.inc(),
    }
}

/// Confirms an unread page the device now holds (type 9), as a per-device client does: its
/// next connection catches up after it.
fn confirm_page(user: &User, frame: &Incoming<'_>) {
    if let Some(last) = frame.last_id.as_deref()
        && !last.is_empty()
    {
        user.send(confirm(last));
    }
}

fn key(ctx: &Ctx, frame: &Incoming<'_>) -> Option<MsgKey> {
    MsgKey::decode(frame.client_msg_id.as_deref()?, &ctx.tag)
}

/// Whether a frame is about a setup message (`protocol::setup_frame`) of this run.
fn is_setup(ctx: &Ctx, frame: &Incoming<'_>) -> bool {
    frame
        .client_msg_id
        .as_deref()
        .and_then(|cid| cid.strip_prefix(ctx.tag.as_str()))
        .is_some_and(|rest| rest.starts_with(":setup:"))
}

fn message(ctx: &Ctx, user: &User, frame: &Incoming<'_>) {
    let stats = &ctx.stats;
    let Some(key) = key(ctx, frame) else {
        if is_setup(ctx, frame) {
            stats.setup_deliveries.inc();
        } else {
            stats.foreign.inc();
        }
        return;
    };
    let Some(stream) = ctx.ledger().streams.get(key.stream as usize) else {
        stats.foreign.inc();
        return;
    };
    let live = frame.source.as_deref() == Some("live");
    let receipt = {
        let mut inbox = lock(&user.inbox);
        if let Some(id) = frame.id.as_deref() {
            inbox.note_newest(stream.conversation, id);
        }
        inbox.record(key.stream, key.seq, live)
    };
    match receipt {
        Receipt::First { reordered } => {
            let now = ctx.now_us();
            stats.delivered.inc();
            stats.last_delivery.note(now);
            if reordered {
                stats.reordered.inc();
            }
            if live {
                stats.delivered_live.inc();
                let shard = user.idx as usize;
                stats.latency.record(shard, now.saturating_sub(key.due_us));
                let from_send = now.saturating_sub(key.sent_us());
                stats.latency_from_send.record(shard, from_send);
            } else {
                stats.delivered_unread.inc();
            }
        }
        Receipt::Again => stats.redelivered.inc(),
        Receipt::Duplicate => stats.duplicates.inc(),
    }
}

fn acknowledged(ctx: &Ctx, user: &User, frame: &Incoming<'_>) {
    let Some(key) = key(ctx, frame) else {
        if is_setup(ctx, frame) {
            ctx.stats.setup_acks.inc();
        } else {
            // An acknowledgement of something this run did not send.
            ctx.stats.bad_frames.inc();
        }
        return;
    };
    if ctx.ledger().ack(key.stream, key.seq) == Some(true) {
        ctx.stats.acked.inc();
        if frame.code == codes::STORED_OFFLINE {
            ctx.stats.acked_offline.inc();
        }
        let now = ctx.now_us();
        ctx.stats.last_ack.note(now);
        let latency = now.saturating_sub(key.due_us);
        ctx.stats.ack_latency.record(user.idx as usize, latency);
        settle(user);
    }
}

fn refused(ctx: &Ctx, user: &Arc<User>, frame: &Incoming<'_>) {
    ctx.stats.errors.inc(frame.code);
    if frame.code == codes::STORAGE_UNAVAILABLE
        && frame.client_msg_id.is_none()
        && (user.retry_sync() || user.retry_receipts())
    {
        ctx.stats.retried.inc();
        return;
    }
    if frame.code == codes::STORAGE_UNAVAILABLE
        && let Some(key) = key(ctx, frame)
        && resend(ctx, user, key)
    {
        ctx.stats.retried.inc();
        return;
    }
    if let Some(key) = key(ctx, frame)
        && ctx.ledger().fail(key.stream, key.seq) == Some(true)
    {
        ctx.stats.failed.inc();
        settle(user);
    }
}

/// Sends a message refused with 5000 again, same `client_msg_id` (and so the same due
/// time: the retry's delay counts in its latency), after a backoff, as the protocol asks;
/// false once it was retried enough.
fn resend(ctx: &Ctx, user: &Arc<User>, key: MsgKey) -> bool {
    let ledger = ctx.ledger();
    let Some(stream) = ledger.streams.get(key.stream as usize) else {
        return false;
    };
    let attempt = ledger.retry(key.stream, key.seq);
    if attempt > MESSAGE_RETRIES {
        return false;
    }
    let text = crate::protocol::frame(&stream.head, key.seq, key.due_us, key.late_us);
    let delay = crate::backoff::jitter(RETRY_DELAY.saturating_mul(1 << attempt.min(6)));
    let user = user.clone();
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        user.send(text);
    });
    true
}

/// One in-flight message is settled (acknowledged or refused).
fn settle(user: &User) {
    let _ = user
        .inflight
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
}
