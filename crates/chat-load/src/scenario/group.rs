//! `group`: G groups of S members, all connected, K senders in each sending at a total
//! rate. Measures fan-out: deliveries per second, latency to every member, losses, and the
//! gateway's CPU per delivery.

use std::sync::Arc;

use super::{add_group, fit, open_all, round_robin};
use crate::cli::GroupArgs;
use crate::context::Ctx;
use crate::fleet::Fleet;
use crate::ledger::Ledger;
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
        add_group(ctx, &fleet, &mut ledger, (g, size, senders)).await?;
    }
    let streams = ledger.streams.len() as u32;
    ctx.set_ledger(ledger);

    let opened = open_all(ctx, &fleet, &[]).await?;
    let (sending, audit, cpu) = round_robin(ctx, &fleet, streams, (args.rate, args.duration)).await;
    Ok(Outcome {
        users: u64::from(groups * size),
        wanted: u64::from(args.groups) * u64::from(args.members),
        capped,
        opened,
        sending: Some(sending),
        audit: Some(audit),
        cpu: Some(cpu),
        ..Outcome::default()
    })
}
