//! `chat-load`: the load tool of chat-gateway. Opens real WebSocket connections to one or
//! more gateways, runs a scenario (connect, private, group, mixed, storm), and reports
//! latency, throughput, errors, lost and duplicate messages, and the CPU and memory the
//! gateway spent. docs/load-testing.md is its manual.
//!
//! Exit status: 0 when the run passed, 1 when it failed its checks (lost messages,
//! duplicates, error rate above `--max-errors`), 2 when it could not run.

mod backoff;
mod cli;
mod client;
mod conn;
mod context;
mod fdlimit;
mod fleet;
mod http;
mod ledger;
mod pacer;
mod procs;
mod progress;
mod protocol;
mod report;
mod scenario;
mod shards;
mod stats;
mod table;
mod target;
mod tokens;
mod traffic;
mod ws;

use clap::Parser;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use cli::Cli;
use context::Ctx;
use fdlimit::FdLimit;
use report::Report;
use shards::Shards;
use target::{Dialer, Target};
use tokens::{MIN_SECRET_BYTES, Tokens};

/// The same allocator as the gateway: the tool shares the machine it measures.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Connections live on IO threads, each a current-thread runtime (shards.rs); the run
    // itself (scenario, pacer, progress) on this thread's own.
    let threads = cli.common.threads.unwrap_or_else(shards::default_count);
    let shards = match Shards::start(threads) {
        Ok(shards) => shards,
        Err(e) => return fail(&format!("cannot start the IO threads: {e}")),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(&format!("cannot start the runtime: {e}")),
    };
    let result = runtime.block_on(run(cli, shards.handles()));
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    shards.stop();
    match result {
        Ok(report) if report.verdict.passed => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(e) => fail(&e),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("chat-load: {message}");
    ExitCode::from(2)
}

async fn run(cli: Cli, io: Vec<tokio::runtime::Handle>) -> Result<Report, String> {
    let started = Instant::now();
    let mut common = cli.common.clone();
    // An empty CHAT_LOAD_JWT_SECRET (as `CHAT_LOAD_JWT_SECRET= chat-load …` leaves it) is none.
    common.jwt_secret = common.jwt_secret.filter(|s| !s.is_empty());
    if let Some(secret) = &common.jwt_secret
        && secret.len() < MIN_SECRET_BYTES
    {
        eprintln!(
            "chat-load: warning: the secret is shorter than {MIN_SECRET_BYTES} bytes; the gateway refuses such secrets"
        );
    }
    if !(0.0..=1.0).contains(&common.max_errors) {
        return Err("--max-errors is a fraction from 0 to 1".into());
    }
    let targets = common
        .urls
        .iter()
        .map(|u| Target::parse(u.trim()))
        .collect::<Result<Vec<_>, _>>()?;
    if targets.is_empty() {
        return Err("no --url given".into());
    }

    let fd = FdLimit::raise();
    let wanted = scenario::connections_wanted(&cli.scenario);
    if let Some(message) = fd.cap_message(wanted) {
        eprintln!("chat-load: {message}");
    }
    let sources = target::plan_sources(
        common.source_addrs,
        wanted.min(fd.max_connections()),
        &targets,
    );
    let dialer = Dialer::new(targets, sources, common.handshake_timeout);
    let tokens = match &common.jwt_secret {
        Some(secret) => Tokens::new(secret, common.token_ttl),
        None => {
            let rest = dialer.rest_target();
            if !common.quiet {
                eprintln!(
                    "chat-load: no --jwt-secret: fetching {wanted} dev tokens from {} (POST /api/dev/token)",
                    rest.authority
                );
            }
            Tokens::fetch(rest.addr, &rest.authority, common.user_base, wanted, common.token_ttl)
                .await
                .map_err(|e| {
                    format!(
                        "no --jwt-secret (or CHAT_LOAD_JWT_SECRET) was given, and {e}; pass the gateway's auth.jwt_secret"
                    )
                })?
        }
    };
    let ctx = Arc::new(Ctx::new(common, dialer, tokens, io));

    let progress = (!ctx.opts.quiet).then(|| progress::spawn(ctx.clone()));
    let outcome = scenario::run(&ctx, &cli.scenario, &fd).await;
    if let Some(progress) = progress {
        progress.abort();
    }
    let report = Report::build(
        &ctx,
        cli.scenario.name(),
        scenario::params(&cli.scenario),
        fd,
        started.elapsed().as_secs_f64(),
        outcome?,
    );
    print!("{}", table::render(&report));
    if let Some(path) = &ctx.opts.json {
        let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        std::fs::write(path, json + "\n")
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    Ok(report)
}
