//! `storm`: K clients, in groups each with one sender who stays connected, are dropped at
//! once; each comes back after a random delay up to `--jitter`, retrying with exponential
//! backoff, and resyncs. Meanwhile each sender sends `--messages` to its group, which every
//! client must then have (live if it was back in time, else from its resync). Measures
//! the time until all are back and resynced.

use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

use super::{cpu_watch, create_group, fit};
use crate::backoff::{Backoff, jitter};
use crate::cli::StormArgs;
use crate::context::Ctx;
use crate::fleet::Fleet;
use crate::ledger::{Conversation, Ledger};
use crate::protocol::Destination;
use crate::report::{Outcome, Percentiles, Sending, Storm};
use crate::stats::Recorder;

/// Runs the scenario.
pub async fn run(ctx: &Arc<Ctx>, args: &StormArgs, room: u64) -> Result<Outcome, String> {
    if let Some(at) = args.drop_at {
        check_drop_at(at)?;
    }
    let size = args.group_size.max(1);
    // Each group needs its sender's connection too.
    let per_client = 1.0 + 1.0 / f64::from(size);
    let room = (room as f64 / per_client) as u64;
    let (clients, capped) = fit(args.clients, 1, room, "clients");
    let groups = clients.div_ceil(size).max(1);
    // Senders are users 0..groups; clients follow.
    let fleet = Fleet::new(ctx.clone(), groups + clients);
    let mut ledger = Ledger::default();
    let mut streams = Vec::new();
    for g in 0..groups {
        let members: Vec<u32> =
            (groups + g * size..(groups + (g + 1) * size).min(groups + clients)).collect();
        let ids: Vec<i64> = members
            .iter()
            .map(|&m| fleet.users[m as usize].id)
            .collect();
        let sender = fleet.users[g as usize].id;
        let id = create_group(ctx, sender, &ids).await?;
        streams.push(ledger.add(
            g,
            &Destination::Group(id),
            Arc::from(members),
            Conversation::Group(g),
            &ctx.content,
            &ctx.tag,
        ));
    }
    ctx.set_ledger(ledger);

    let opened = fleet.open(fleet.all(), 3).await;
    fleet.start_reconnecting();
    // Leftovers of earlier runs are read now, not during the storm.
    fleet.sync(groups..groups + clients).await;

    if let Some(at) = args.drop_at {
        wait_until_wall_clock(at).await;
    }
    let cpu = cpu_watch(ctx);
    let dropped: Vec<u32> = (groups..groups + clients)
        .filter(|&i| fleet.users[i as usize].is_online())
        .collect();
    let t0 = Instant::now();
    for &idx in &dropped {
        fleet.users[idx as usize].drop_connection(ctx);
    }
    let sent_before = ctx.stats.sent.get();
    for _ in 0..args.messages {
        for &stream in &streams {
            crate::traffic::send(&fleet, stream, ctx.now_us());
        }
    }
    let messages = ctx.stats.sent.get() - sent_before;

    let mut returns = JoinSet::new();
    for &idx in &dropped {
        returns.spawn(come_back(fleet.clone(), idx, args.clone(), t0));
    }
    let resync = Recorder::default();
    let (mut reconnected, mut resynced) = (0, 0);
    let (mut last_back, mut last_synced) = (Duration::ZERO, Duration::ZERO);
    while let Some(done) = returns.join_next().await {
        let Ok((back, synced)) = done else { continue };
        if let Some(back) = back {
            reconnected += 1;
            last_back = last_back.max(back);
        }
        if let Some(synced) = synced {
            resynced += 1;
            last_synced = last_synced.max(synced);
            resync.record(0, synced.as_micros() as u64);
        }
    }
    let all = dropped.len() as u64;
    let storm = Storm {
        clients: all,
        reconnected,
        resynced,
        all_reconnected_s: (reconnected == all).then_some(last_back.as_secs_f64()),
        all_resynced_s: (resynced == all).then_some(last_synced.as_secs_f64()),
        resync_ms: Percentiles::of(&resync.total()),
        resync_histogram: Some(crate::stats::encode(&resync.total())),
        messages_during_storm: messages,
    };
    let send_s = t0.elapsed().as_secs_f64();
    let audit = fleet.drain().await;
    let cpu = cpu.finish();
    fleet.mark_read().await;
    fleet.close().await;
    Ok(Outcome {
        users: u64::from(groups + clients),
        wanted: u64::from(args.clients + args.clients.div_ceil(size)),
        handshakes_measured: Some(ctx.stats.reconnects.get()),
        capped,
        opened,
        sending: Some(Sending {
            rate: 0.0,
            send_s,
            scheduled: messages,
        }),
        audit: Some(audit),
        cpu: Some(cpu),
        unrecovered: all - resynced,
        storm: Some(storm),
        ..Outcome::default()
    })
}

fn unix_now() -> Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}

/// Refuses a `--drop-at` that cannot be meant: seconds instead of milliseconds, or more
/// than an hour away.
fn check_drop_at(unix_ms: u64) -> Result<(), String> {
    let at = Duration::from_millis(unix_ms);
    if unix_ms < 1_000_000_000_000 {
        return Err(format!(
            "--drop-at {unix_ms}: expected unix milliseconds (13 digits, as `date +%s%3N` prints)"
        ));
    }
    if at > unix_now() + Duration::from_secs(3600) {
        return Err(format!("--drop-at {unix_ms} is more than an hour away"));
    }
    Ok(())
}

/// Sleeps until the wall clock reads `unix_ms`; says so when that time has passed already
/// (the processes of one storm did not all get their clients up in time).
async fn wait_until_wall_clock(unix_ms: u64) {
    let now = unix_now();
    let at = Duration::from_millis(unix_ms);
    match at.checked_sub(now) {
        Some(wait) => tokio::time::sleep(wait).await,
        None => eprintln!(
            "--drop-at was {:.1} s ago when all clients were up: dropping now",
            (now - at).as_secs_f64()
        ),
    }
}

/// One dropped client coming back: when it reconnected and when it finished its resync,
/// measured from the drop (`None`: not before the timeout).
async fn come_back(
    fleet: Fleet,
    idx: u32,
    args: StormArgs,
    t0: Instant,
) -> (Option<Duration>, Option<Duration>) {
    let user = fleet.users[idx as usize].clone();
    let deadline = t0 + args.timeout;
    let mut backoff = Backoff::new(args.backoff_min, args.backoff_max);
    tokio::time::sleep(jitter(args.jitter)).await;
    loop {
        if Instant::now() >= deadline {
            return (None, None);
        }
        if user.connect(&fleet.ctx).await.is_ok() {
            break;
        }
        let pause = backoff
            .next_delay()
            .min(deadline.saturating_duration_since(Instant::now()));
        tokio::time::sleep(pause).await;
    }
    fleet.ctx.stats.reconnects.inc();
    let back = t0.elapsed();
    let left = deadline.saturating_duration_since(Instant::now());
    let synced = user.sync(left).await.then(|| t0.elapsed());
    (Some(back), synced)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_at_must_be_near_unix_milliseconds() {
        let now = unix_now().as_millis() as u64;
        assert!(check_drop_at(now + 30_000).is_ok());
        assert!(
            check_drop_at(now - 5_000).is_ok(),
            "late is allowed: drops at once"
        );
        assert!(
            check_drop_at(now / 1000)
                .unwrap_err()
                .contains("milliseconds")
        );
        assert!(check_drop_at(now + 7_200_000).unwrap_err().contains("hour"));
    }
}
