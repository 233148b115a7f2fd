//! `mixed`: every user has a private partner and a group; messages of both kinds in a
//! weighted mix from random online senders, while users drop and come back (resyncing) at
//! the churn rate. At the end every user is back online, so every acknowledged message is
//! owed to an online recipient: live, or by the resync after a reconnect.

use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{add_group, cpu_watch, fit, open_all, send_phase};
use crate::cli::MixedArgs;
use crate::context::Ctx;
use crate::fleet::Fleet;
use crate::ledger::{Conversation, Ledger};
use crate::pacer::Pacer;
use crate::protocol::Destination;
use crate::report::Outcome;

/// Runs the scenario.
pub async fn run(ctx: &Arc<Ctx>, args: &MixedArgs, room: u64) -> Result<Outcome, String> {
    let size = args.members.max(2);
    let wanted_groups = args.users.div_ceil(size).max(1);
    let (groups, capped) = fit(wanted_groups, u64::from(size), room, "groups");
    let users = groups * size;
    let fleet = Fleet::new(ctx.clone(), users);
    let pairs: Vec<(u32, u32)> = (0..users / 2).map(|p| (2 * p, 2 * p + 1)).collect();

    let mut ledger = Ledger::default();
    let mut private = Vec::new();
    for &(a, b) in &pairs {
        for (from, to) in [(a, b), (b, a)] {
            private.push(ledger.add(
                from,
                &Destination::User(fleet.users[to as usize].id),
                Arc::from(vec![to]),
                Conversation::Private(from),
                &ctx.content,
                &ctx.tag,
            ));
        }
    }
    let mut group = Vec::new();
    for g in 0..groups {
        group.extend(add_group(ctx, &fleet, &mut ledger, (g, size, size)).await?);
    }
    ctx.set_ledger(ledger);

    let opened = open_all(ctx, &fleet, &pairs).await?;

    let cpu = cpu_watch(ctx);
    let stop_churn = CancellationToken::new();
    let churn = tokio::spawn(churn(
        fleet.clone(),
        args.churn,
        args.offline_time,
        stop_churn.clone(),
    ));
    let total_weight = (args.private_weight + args.group_weight).max(1);
    let sending = send_phase(&fleet, args.rate, args.duration, || {
        let private_pick = rand::random_range(0..total_weight) < args.private_weight;
        let pool = if private_pick && !private.is_empty() {
            &private
        } else {
            &group
        };
        // A random stream of an online sender (a few tries: churn keeps some offline).
        let mut stream = pool[rand::random_range(0..pool.len())];
        for _ in 0..8 {
            let sender = ctx.ledger().streams[stream as usize].sender;
            if fleet.users[sender as usize].is_online() {
                break;
            }
            stream = pool[rand::random_range(0..pool.len())];
        }
        stream
    })
    .await;
    // Churned users come back (and resync) before anything is counted; so do any the
    // server dropped and the reconnector has not brought back yet.
    stop_churn.cancel();
    let _ = churn.await;
    let offline: Vec<u32> = fleet
        .all()
        .filter(|&i| !fleet.users[i as usize].is_online())
        .collect();
    let mut back = JoinSet::new();
    for idx in offline {
        back.spawn(fleet.clone().reconnect(idx, Duration::ZERO));
    }
    while back.join_next().await.is_some() {}
    let audit = fleet.drain().await;
    let cpu = cpu.finish();
    fleet.mark_read().await;
    fleet.close().await;
    Ok(Outcome {
        users: u64::from(users),
        wanted: u64::from(wanted_groups) * u64::from(size),
        capped,
        opened,
        sending: Some(sending),
        audit: Some(audit),
        cpu: Some(cpu),
        ..Outcome::default()
    })
}

/// Drops random online users at `rate` per second; each comes back after `offline` (±50 %).
/// Once `stop` is cancelled, waits for the dropped users to be back.
async fn churn(fleet: Fleet, rate: f64, offline: Duration, stop: CancellationToken) {
    let mut pacer = Pacer::new(rate);
    let mut returning = JoinSet::new();
    let n = fleet.users.len() as u32;
    loop {
        let due = tokio::select! {
            due = pacer.due() => due,
            _ = stop.cancelled() => None,
        };
        let Some(due) = due else { break };
        for _ in 0..due.count {
            let idx = rand::random_range(0..n);
            let user = &fleet.users[idx as usize];
            // Mid-sync too: each user is a device that confirms its pages, so a page lost
            // with its connection comes back on the next (per-device catch-up).
            if !user.is_online() {
                continue;
            }
            user.drop_connection(&fleet.ctx);
            let delay = offline.mul_f64(0.5 + rand::random::<f64>());
            returning.spawn(fleet.clone().reconnect(idx, delay));
        }
    }
    while returning.join_next().await.is_some() {}
}
