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
mod context;
mod fdlimit;
mod fleet;
mod frame;
mod http;
mod ledger;
mod pacer;
mod procs;
mod progress;
mod report;
mod scenario;
mod stats;
mod table;
mod target;
mod tokens;
mod traffic;

use clap::Parser;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use cli::Cli;
use context::Ctx;
use fdlimit::FdLimit;
use report::Report;
use target::{Dialer, Target};
use tokens::{MIN_SECRET_BYTES, Tokens};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = cli.common.threads {
        runtime.worker_threads(threads.max(1));
    }
    let runtime = match runtime.enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => return fail(&format!("cannot start the runtime: {e}")),
    };
    match runtime.block_on(run(cli)) {
        Ok(report) if report.verdict.passed => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(e) => fail(&e),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("chat-load: {message}");
    ExitCode::from(2)
}

async fn run(cli: Cli) -> Result<Report, String> {
    let started = Instant::now();
    let common = cli.common.clone();
    let secret = common.jwt_secret.clone().ok_or(
        "--jwt-secret (or CHAT_LOAD_JWT_SECRET) is required: the gateway's auth.jwt_secret",
    )?;
    if secret.len() < MIN_SECRET_BYTES {
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
    let tokens = Tokens::new(&secret, common.token_ttl);
    let ctx = Arc::new(Ctx::new(common, dialer, tokens));

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
