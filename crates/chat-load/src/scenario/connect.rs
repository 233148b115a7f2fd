//! `connect`: N idle connections opened at the ramp rate and held. Measures the handshake
//! rate and latency, the gateway's CPU per handshake, and its RSS per idle connection
//! (with `--group-size`, each user also a member of a group).

use std::sync::Arc;

use super::{cpu_watch, create_group, fit, memory, server_rss};
use crate::cli::ConnectArgs;
use crate::context::Ctx;
use crate::fleet::Fleet;
use crate::report::Outcome;

/// Runs the scenario.
pub async fn run(ctx: &Arc<Ctx>, args: &ConnectArgs, room: u64) -> Result<Outcome, String> {
    let (n, capped) = fit(args.connections, 1, room, "connections");
    let fleet = Fleet::new(ctx.clone(), n);
    if args.group_size > 0 {
        // The first user of each group creates it with the others.
        for users in fleet.users.chunks(args.group_size as usize) {
            let members: Vec<i64> = users[1..].iter().map(|u| u.id).collect();
            create_group(ctx, users[0].id, &members).await?;
        }
    }
    let before = server_rss(ctx);
    let cpu = cpu_watch(ctx);
    let opened = fleet.open(fleet.all(), 1).await;
    let cpu = cpu.finish();
    // Idle connections answer the server's pings (the reader does), so a hold longer than
    // the idle timeout is fine; the server ending any of them is counted.
    tokio::time::sleep(args.hold).await;
    // RSS is read at the end of the hold, when what the ramp allocated has settled.
    let loaded = server_rss(ctx);
    let open = ctx.stats.open_now();
    fleet.close().await;
    Ok(Outcome {
        users: u64::from(n),
        wanted: u64::from(args.connections),
        capped,
        opened,
        handshakes_measured: Some(opened.established),
        cpu: Some(cpu),
        memory: memory(&before, &loaded, open),
        ..Outcome::default()
    })
}
