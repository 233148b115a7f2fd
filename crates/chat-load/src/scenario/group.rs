//! `group`: G groups of S members, all connected, K senders in each sending at a total
//! rate. Measures fan-out: deliveries per second, latency to every member, losses, and the
//! gateway's CPU per delivery.

use std::sync::Arc;

use super::{cpu_watch, create_group, fit, send_phase};
use crate::cli::GroupArgs;
use crate::context::Ctx;
use crate::fleet::Fleet;
use crate::ledger::{Conversation, Ledger};
use crate::protocol::Destination;
use crate::report::Outcome;

/// Runs the scenario.
pub async fn run(ctx: &Arc<Ctx>, args: &GroupArgs, room: u64) -> Result<Outcome, String> {
    if args.members < 2 {
        return Err("--members must be at least 2".into());
    }
    let size = args.members;
    let (groups, capped) = if args.groups == 1 {
        // One group: the limit shrinks the group itself.
        let (members, capped) = fit(size, 1, room, "members");
        return run_with(ctx, args, 1, members.max(2), capped).await;
    } else {
        fit(args.groups, u64::from(size), room, "groups")
    };
    run_with(ctx, args, groups, size, capped).await
}

async fn run_with(
    ctx: &Arc<Ctx>,
    args: &GroupArgs,
    groups: u32,
    size: u32,
    capped: bool,
) -> Result<Outcome, String> {
    let senders = args.senders.clamp(1, size);
    let fleet = Fleet::new(ctx.clone(), groups * size);
    let mut ledger = Ledger::default();
    for g in 0..groups {
        let members: Vec<u32> = (g * size..(g + 1) * size).collect();
        let ids: Vec<i64> = members
            .iter()
            .map(|&m| fleet.users[m as usize].id)
            .collect();
        let id = create_group(ctx, ids[0], &ids[1..]).await?;
        for &sender in &members[..senders as usize] {
            let recipients: Vec<u32> = members.iter().copied().filter(|&m| m != sender).collect();
            ledger.add(
                sender,
                &Destination::Group(id.clone()),
                Arc::from(recipients),
                Conversation::Group(g),
                &ctx.content,
                &ctx.tag,
            );
        }
    }
    let streams = ledger.streams.len() as u32;
    ctx.set_ledger(ledger);

    let opened = fleet.open(fleet.all(), 3).await;
    fleet.start_reconnecting();
    let cpu = cpu_watch(ctx);
    let mut next = 0u32;
    let send_s = send_phase(&fleet, args.rate, args.duration, || {
        next = (next + 1) % streams.max(1);
        next
    })
    .await;
    let audit = fleet.drain().await;
    let cpu = cpu.finish();
    fleet.mark_read().await;
    fleet.close().await;
    Ok(Outcome {
        users: u64::from(groups * size),
        wanted: u64::from(args.groups) * u64::from(args.members),
        capped,
        opened,
        sending: Some((args.rate, send_s)),
        audit: Some(audit),
        cpu: Some(cpu),
        ..Outcome::default()
    })
}
