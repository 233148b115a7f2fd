//! `private`: pairs of users exchanging private messages (both directions) at a total rate.
//! Measures end-to-end latency, throughput, losses, and the gateway's CPU per message.

use std::sync::Arc;

use super::{fit, open_all, round_robin};
use crate::cli::PrivateArgs;
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

    let opened = open_all(ctx, &fleet, &pair_list).await?;
    let (sending, audit, cpu) = round_robin(ctx, &fleet, streams, (args.rate, args.duration)).await;
    Ok(Outcome {
        users: u64::from(pairs) * 2,
        wanted: 2 * u64::from(args.pairs),
        capped,
        opened,
        sending: Some(sending),
        audit: Some(audit),
        cpu: Some(cpu),
        ..Outcome::default()
    })
}
