//! `private`: pairs of users exchanging private messages (both directions) at a total rate.
//! Measures end-to-end latency, throughput, losses, and the gateway's CPU per message.

use std::sync::Arc;

use super::{cpu_watch, fit, send_phase, setup_pairs};
use crate::cli::{PairSetup, PrivateArgs};
use crate::context::Ctx;
use crate::fleet::Fleet;
use crate::ledger::{Conversation, Ledger};
use crate::protocol::Destination;
use crate::report::Outcome;

/// Runs the scenario.
pub async fn run(ctx: &Arc<Ctx>, args: &PrivateArgs, room: u64) -> Result<Outcome, String> {
    let (pairs, capped) = fit(args.pairs, 2, room, "pairs");
    let fleet = Fleet::new(ctx.clone(), pairs * 2);
    let pair_list: Vec<(u32, u32)> = (0..pairs).map(|p| (2 * p, 2 * p + 1)).collect();
    let mut ledger = Ledger::default();
    for &(a, b) in &pair_list {
        for (from, to) in [(a, b), (b, a)] {
            ledger.add(
                from,
                &Destination::User(fleet.users[to as usize].id),
                Arc::from(vec![to]),
                Conversation::Private(from),
                &ctx.content,
                &ctx.tag,
            );
        }
    }
    let streams = ledger.streams.len() as u32;
    ctx.set_ledger(ledger);

    if ctx.opts.pair_setup == PairSetup::Follow {
        setup_pairs(&fleet, &pair_list, PairSetup::Follow).await?;
    }
    let opened = fleet.open(fleet.all(), 3).await;
    fleet.start_reconnecting();
    if ctx.opts.pair_setup == PairSetup::Exchange {
        setup_pairs(&fleet, &pair_list, PairSetup::Exchange).await?;
    }

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
        users: u64::from(pairs) * 2,
        wanted: 2 * u64::from(args.pairs),
        capped,
        opened,
        sending: Some((args.rate, send_s)),
        audit: Some(audit),
        cpu: Some(cpu),
        ..Outcome::default()
    })
}
