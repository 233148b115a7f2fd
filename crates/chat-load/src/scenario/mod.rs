//! The scenarios, and the steps they share: REST setup, the stranger-limit exemption of
//! private pairs, the paced sending phase, server memory samples.

mod connect;
mod group;
mod mixed;
mod private;
mod storm;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cli::{PairSetup, Scenario, Stage};
use crate::context::Ctx;
use crate::fdlimit::FdLimit;
use crate::fleet::{Fleet, Opened};
use crate::http::Http;
use crate::ledger::{Audit, Conversation, Ledger};
use crate::pacer::Pacer;
use crate::procs::{CpuReport, CpuWatch, rss_kib, watched};
use crate::protocol::{Destination, setup_frame};
use crate::report::{Outcome, Sending, ServerMemory};

/// How long the setup phase waits for its messages to be acknowledged.
const SETUP_TIMEOUT: Duration = Duration::from_secs(60);
/// Concurrent REST connections during setup.
const REST_WORKERS: usize = 8;

/// Connections the scenario needs.
pub fn connections_wanted(scenario: &Scenario) -> u64 {
    match scenario {
        Scenario::Connect(a) => u64::from(a.connections),
        Scenario::Private(a) => 2 * u64::from(a.pairs),
        Scenario::Group(a) => u64::from(a.groups) * u64::from(a.members),
        Scenario::Mixed(a) => u64::from(a.users) + u64::from(a.members),
        Scenario::Storm(a) => {
            u64::from(a.clients) + u64::from(a.clients.div_ceil(a.group_size.max(1)))
        }
        // Expanded or handled before a run.
        Scenario::Run(_) | Scenario::Merge(_) => 0,
    }
}

/// Runs `scenario`; what it hands to the report.
pub async fn run(ctx: &Arc<Ctx>, scenario: &Scenario, fd: &FdLimit) -> Result<Outcome, String> {
    let room = fd.max_connections();
    match scenario {
        Scenario::Connect(a) => connect::run(ctx, a, room).await,
        Scenario::Private(a) => private::run(ctx, a, room).await,
        Scenario::Group(a) => group::run(ctx, a, room).await,
        Scenario::Mixed(a) => mixed::run(ctx, a, room).await,
        Scenario::Storm(a) => storm::run(ctx, a, room).await,
        Scenario::Run(_) | Scenario::Merge(_) => {
            Err(format!("{} is not a scenario", scenario.name()))
        }
    }
}

/// A REST client for the first target.
fn rest(ctx: &Ctx) -> Http {
    let t = ctx.dialer.rest_target();
    Http::new(t.addr, &t.authority, t.tls.clone())
}

/// Most members a group may be created with (the gateway's `MAX_INITIAL_MEMBERS`); the
/// rest are added one by one.
const MAX_INITIAL_MEMBERS: usize = 10_000;

/// Creates a group owned by `owner` with `members`; its id.
async fn create_group(ctx: &Ctx, owner: i64, members: &[i64]) -> Result<String, String> {
    let token = ctx.tokens.mint(owner);
    let (initial, rest_of) = members.split_at(members.len().min(MAX_INITIAL_MEMBERS));
    let body = serde_json::json!({"name": format!("chat-load {}", ctx.tag), "members": initial});
    let mut http = rest(ctx);
    let (status, text) = http
        .post("/api/groups", Some(&token), &body.to_string())
        .await
        .map_err(|e| format!("creating a group: {e}"))?;
    if status != 201 {
        return Err(format!("creating a group: HTTP {status}: {text}"));
    }
    let id = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["id"].as_str().map(str::to_string))
        .ok_or_else(|| format!("creating a group: no id in {text}"))?;
    for member in rest_of {
        let path = format!("/api/groups/{id}/members");
        match http
            .post(&path, Some(&token), &format!(r#"{{"user_id":{member}}}"#))
            .await
        {
            Ok((201, _)) => {}
            Ok((status, text)) => return Err(format!("adding a member: HTTP {status}: {text}")),
            Err(e) => return Err(format!("adding a member: {e}")),
        }
    }
    Ok(id)
}

/// Makes each pair exempt from the stranger limit, as `--pair-setup` says. Pairs are user
/// indexes; `follow` runs before the users connect, `exchange` after.
async fn setup_pairs(fleet: &Fleet, pairs: &[(u32, u32)], how: PairSetup) -> Result<(), String> {
    match how {
        PairSetup::Follow => follow(fleet, pairs).await,
        PairSetup::Exchange => exchange(fleet, pairs).await,
    }
}

async fn follow(fleet: &Fleet, pairs: &[(u32, u32)]) -> Result<(), String> {
    let ctx = &fleet.ctx;
    let ids = |i: u32| fleet.users[i as usize].id;
    let mut follows: Vec<(i64, i64)> = pairs
        .iter()
        .flat_map(|&(a, b)| [(ids(a), ids(b)), (ids(b), ids(a))])
        .collect();
    let chunk = follows.len().div_ceil(REST_WORKERS).max(1);
    let mut tasks = tokio::task::JoinSet::new();
    while !follows.is_empty() {
        let batch: Vec<_> = follows.drain(..chunk.min(follows.len())).collect();
        let ctx = ctx.clone();
        tasks.spawn(async move {
            let mut http = rest(&ctx);
            for (who, whom) in batch {
                let body = format!(r#"{{"user_id":{whom}}}"#);
                match http
                    .post("/api/follows", Some(&ctx.tokens.mint(who)), &body)
                    .await
                {
                    Ok((200 | 201, _)) => {}
                    Ok((status, text)) => return Err(format!("follow: HTTP {status}: {text}")),
                    Err(e) => return Err(format!("follow: {e}")),
                }
            }
            Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| e.to_string())??;
    }
    Ok(())
}

/// One message from a to b, then (once all are acknowledged) one from b to a: after it,
/// each has answered the other.
async fn exchange(fleet: &Fleet, pairs: &[(u32, u32)]) -> Result<(), String> {
    let ctx = &fleet.ctx;
    let mut n = 0;
    for direction in 0..2 {
        for &(a, b) in pairs {
            let (from, to) = if direction == 0 { (a, b) } else { (b, a) };
            let to_id = fleet.users[to as usize].id;
            if fleet.users[from as usize].send(setup_frame(to_id, &ctx.tag, n)) {
                n += 1;
            }
        }
        let deadline = Instant::now() + SETUP_TIMEOUT;
        while ctx.stats.setup_acks.get() + ctx.stats.errors.total() < u64::from(n) {
            if Instant::now() >= deadline {
                return Err(format!(
                    "setup: {} of {n} exchange messages acknowledged after {SETUP_TIMEOUT:?}",
                    ctx.stats.setup_acks.get()
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(())
}

/// Opens every connection and starts bringing dropped ones back; the pairs are set up as
/// `--pair-setup` says, before the connections open (follows) or after (an exchange).
async fn open_all(ctx: &Ctx, fleet: &Fleet, pairs: &[(u32, u32)]) -> Result<Opened, String> {
    if ctx.opts.pair_setup == PairSetup::Follow {
        setup_pairs(fleet, pairs, PairSetup::Follow).await?;
    }
    let opened = fleet.open(fleet.all(), 3).await;
    fleet.start_reconnecting();
    if ctx.opts.pair_setup == PairSetup::Exchange {
        setup_pairs(fleet, pairs, PairSetup::Exchange).await?;
    }
    Ok(opened)
}

/// Creates group `g` of users `g * size .. (g + 1) * size` (the first owns it) and adds a
/// stream to the ledger for each of its first `senders` members; the streams' indexes.
async fn add_group(
    ctx: &Ctx,
    fleet: &Fleet,
    ledger: &mut Ledger,
    (g, size, senders): (u32, u32, u32),
) -> Result<Vec<u32>, String> {
    let members: Vec<u32> = (g * size..(g + 1) * size).collect();
    let ids: Vec<i64> = members
        .iter()
        .map(|&m| fleet.users[m as usize].id)
        .collect();
    let id = create_group(ctx, ids[0], &ids[1..]).await?;
    let mut streams = Vec::with_capacity(senders as usize);
    for &sender in &members[..senders.min(size) as usize] {
        let recipients: Vec<u32> = members.iter().copied().filter(|&m| m != sender).collect();
        streams.push(ledger.add(
            sender,
            &Destination::Group(id.clone()),
            Arc::from(recipients),
            Conversation::Group(g),
            &ctx.content,
            &ctx.tag,
        ));
    }
    Ok(streams)
}

/// The measured part of a scenario that sends to every stream in turn: sends at `rate`
/// for `duration`, waits for what is owed, then marks it read and closes. The sending
/// phase, the audit and the CPU used.
async fn round_robin(
    ctx: &Ctx,
    fleet: &Fleet,
    streams: u32,
    (rate, duration): (f64, Duration),
) -> (Sending, Audit, CpuReport) {
    let cpu = cpu_watch(ctx);
    let mut next = 0u32;
    let sending = send_phase(fleet, rate, duration, || {
        next = (next + 1) % streams.max(1);
        next
    })
    .await;
    let audit = fleet.drain().await;
    let cpu = cpu.finish();
    fleet.mark_read().await;
    fleet.close().await;
    (sending, audit, cpu)
}

/// Sends at `rate` for `duration` (or through the `--stage`s), each event on the stream
/// `pick` names and stamped with its due time. Events more than `--max-send-lag` overdue
/// are skipped (counted), never sent in a catch-up burst.
async fn send_phase(
    fleet: &Fleet,
    rate: f64,
    duration: Duration,
    mut pick: impl FnMut() -> u32,
) -> Sending {
    let ctx = &fleet.ctx;
    let plan = match ctx.opts.stages.as_slice() {
        [] => vec![Stage { duration, rate }],
        stages => stages.to_vec(),
    };
    let started = Instant::now();
    let mut scheduled = 0;
    for stage in &plan {
        // The stage's events are those due before its end: 0 .. ⌈duration × rate⌉.
        let events = (stage.duration.as_secs_f64() * stage.rate).ceil() as u64;
        if events == 0 {
            // A stage at rate 0 is a pause.
            tokio::time::sleep(stage.duration).await;
            continue;
        }
        let end = tokio::time::Instant::now() + stage.duration;
        let mut pacer = Pacer::with_max_lag(stage.rate, ctx.opts.max_send_lag);
        while pacer.scheduled() < events {
            let Some(due) = pacer.due().await else { break };
            let released = due.first.min(events)..(due.first + due.count).min(events);
            let skipped = due.first.min(events) - (due.first - due.skipped).min(events);
            ctx.stats.skipped_behind.add(skipped);
            for i in released {
                let due_us = ctx.us_at(pacer.due_at(i).into_std());
                crate::traffic::send(fleet, pick(), due_us);
            }
        }
        scheduled += events;
        // The stage lasts its whole duration, past its last event.
        tokio::time::sleep_until(end).await;
    }
    let planned: f64 = plan.iter().map(|s| s.duration.as_secs_f64()).sum();
    let offered: f64 = plan.iter().map(|s| s.rate * s.duration.as_secs_f64()).sum();
    Sending {
        rate: if planned > 0.0 {
            offered / planned
        } else {
            0.0
        },
        send_s: started.elapsed().as_secs_f64(),
        scheduled,
    }
}

/// Starts measuring the CPU of every watched process.
fn cpu_watch(ctx: &Ctx) -> CpuWatch {
    let o = &ctx.opts;
    CpuWatch::start(watched(&o.server_pid, &o.redis_pid, &o.mysql_pid))
}

/// RSS of each `--server-pid`, KiB.
fn server_rss(ctx: &Ctx) -> Vec<(u32, Option<u64>)> {
    ctx.opts
        .server_pid
        .iter()
        .map(|&pid| (pid, rss_kib(Some(pid))))
        .collect()
}

/// Memory per connection from RSS before and with `connections` open (spread evenly over
/// the watched servers).
fn memory(
    before: &[(u32, Option<u64>)],
    loaded: &[(u32, Option<u64>)],
    connections: u64,
) -> Vec<ServerMemory> {
    let per_server = connections as f64 / before.len().max(1) as f64;
    before
        .iter()
        .zip(loaded)
        .map(|(&(pid, b), &(_, l))| ServerMemory {
            pid,
            rss_before_kib: b,
            rss_loaded_kib: l,
            rss_per_connection_bytes: match (b, l) {
                (Some(b), Some(l)) if per_server > 0.0 => {
                    Some((l as f64 - b as f64) * 1024.0 / per_server)
                }
                _ => None,
            },
        })
        .collect()
}

/// Fits `wanted` units of `size` connections each into `room`; the count that fits and
/// whether the limit cut it (said on stderr).
fn fit(wanted: u32, size: u64, room: u64, what: &str) -> (u32, bool) {
    let total = u64::from(wanted) * size.max(1);
    if total <= room {
        return (wanted, false);
    }
    let fits = (room / size.max(1)) as u32;
    eprintln!(
        "chat-load: the file-descriptor limit allows {room} connections: running {fits} {what} \
         instead of {wanted}"
    );
    (fits, true)
}

/// The scenario's flags (and the stages, if any), for the report.
pub fn params(scenario: &Scenario, stages: &[Stage]) -> serde_json::Value {
    let value = match scenario {
        Scenario::Connect(a) => serde_json::to_value(a),
        Scenario::Private(a) => serde_json::to_value(a),
        Scenario::Group(a) => serde_json::to_value(a),
        Scenario::Mixed(a) => serde_json::to_value(a),
        Scenario::Storm(a) => serde_json::to_value(a),
        Scenario::Run(_) | Scenario::Merge(_) => Ok(serde_json::Value::Null),
    };
    let mut value = value.unwrap_or_default();
    if !stages.is_empty()
        && let Some(params) = value.as_object_mut()
    {
        let stages = serde_json::to_value(stages).unwrap_or_default();
        params.insert("stages".into(), stages);
    }
    value
}
