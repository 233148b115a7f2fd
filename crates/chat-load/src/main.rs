//! `chat-load`: the load tool of chat-gateway. Opens real WebSocket connections to one or
//! more gateways, runs a scenario (connect, private, group, mixed, storm; from flags or a
//! scenario file), and reports latency (from the due time, and from the actual send),
//! throughput over the real window, errors, lost, duplicate, reordered and skipped
//! messages, and the CPU and memory the gateway spent. It merges reports of several
//! processes (`merge`, `--workers`). docs/load-testing.md is its manual.
//!
//! Exit status: 0 when the run passed, 1 when it missed a threshold (each named), 2 when
//! it could not run.

mod backoff;
mod cli;
mod client;
mod conn;
mod context;
mod fdlimit;
mod fleet;
mod http;
mod ledger;
mod merge;
mod pacer;
mod procs;
mod protocol;
mod report;
mod scenario;
mod scenario_file;
mod series;
mod shards;
mod stats;
mod table;
mod target;
mod thresholds;
mod tls;
mod tokens;
mod traffic;
mod units;
mod verdict;
mod workers;
mod ws;

use clap::Parser;
use std::ffi::OsString;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use cli::{Cli, Scenario};
use context::Ctx;
use fdlimit::FdLimit;
use report::Report;
use series::Sampler;
use shards::Shards;
use target::{Dialer, Target};
use tokens::{MIN_SECRET_BYTES, Tokens};

/// The same allocator as the gateway: the tool shares the machine it measures.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let (cli, argv) = parse();
    if let Err(e) = cli.thresholds.validate() {
        return fail(&e);
    }
    let outcome = match &cli.scenario {
        Scenario::Merge(m) => merged(&cli, m),
        _ if cli.common.workers > 1 => with_workers(&cli, &argv),
        _ => run_here(cli),
    };
    match outcome {
        Ok(report) if report.verdict.passed => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(e) => fail(&e),
    }
}

/// The command line, with a scenario file (`run FILE`) expanded into the flags it stands
/// for; and the expanded arguments, for workers. A usage error exits here (status 2).
fn parse() -> (Cli, Vec<OsString>) {
    let argv: Vec<OsString> = std::env::args_os().collect();
    let cli = Cli::parse_from(&argv);
    let Scenario::Run(run) = &cli.scenario else {
        return (cli, argv);
    };
    let from_file = match scenario_file::args(&run.file) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("chat-load: {e}");
            std::process::exit(2);
        }
    };
    // `run FILE` out, the file's flags in: the command line's other flags come after them
    // and so override them.
    let file = run.file.as_os_str();
    let at = argv
        .windows(2)
        .position(|w| w[0] == "run" && w[1] == file)
        .unwrap_or(argv.len());
    let mut expanded = vec![argv[0].clone()];
    expanded.extend(from_file);
    expanded.extend(argv[1..at].iter().cloned());
    expanded.extend(argv.iter().skip(at + 2).cloned());
    match Cli::try_parse_from(&expanded) {
        Ok(cli) => (cli, expanded),
        Err(e) => {
            eprintln!("chat-load: in {} (as flags):", run.file.display());
            e.exit()
        }
    }
}

/// `chat-load merge`: the reports merged, printed, and judged.
fn merged(cli: &Cli, args: &cli::MergeArgs) -> Result<Report, String> {
    let parts = args
        .files
        .iter()
        .map(|f| merge::read(f))
        .collect::<Result<Vec<_>, _>>()?;
    let report = merge::merge(parts, &cli.thresholds)?;
    output(&report, &cli.common)?;
    Ok(report)
}

/// `--workers N`: N processes of this program, their reports merged.
fn with_workers(cli: &Cli, argv: &[OsString]) -> Result<Report, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let report = runtime.block_on(workers::run(cli, argv))?;
    output(&report, &cli.common)?;
    Ok(report)
}

/// Prints the report and writes its JSON file, if asked.
fn output(report: &Report, common: &cli::Common) -> Result<(), String> {
    print!("{}", table::render(report));
    if let Some(path) = &common.json {
        let json = serde_json::to_string_pretty(report).map_err(|e| e.to_string())?;
        std::fs::write(path, json + "\n")
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    Ok(())
}

/// One process's run (a worker's share of one, when `CHAT_LOAD_WORKER` says so).
fn run_here(mut cli: Cli) -> Result<Report, String> {
    if let Some((i, n)) = workers::this_worker()? {
        let share = workers::share(&cli.scenario, i, n)?;
        let fraction = workers::fraction(&cli.scenario, &share);
        for stage in &mut cli.common.stages {
            stage.rate *= fraction;
        }
        cli.scenario = share;
    }
    // Connections live on IO threads, each a current-thread runtime (shards.rs); the run
    // itself (scenario, pacer, progress) on this thread's own.
    let threads = cli.common.threads.unwrap_or_else(shards::default_count);
    let shards = Shards::start(threads).map_err(|e| format!("cannot start the IO threads: {e}"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let result = runtime.block_on(run(cli, shards.handles()));
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    shards.stop();
    result
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
    if common.workers == 0 {
        return Err("--workers is 1 or more".into());
    }
    // TLS only when a target needs it (reading the system's roots takes a moment).
    let tls = match common.urls.iter().any(|u| u.trim().starts_with("wss://")) {
        true => Some(tls::client_config(common.ca_file.as_deref())?),
        false => None,
    };
    let targets = common
        .urls
        .iter()
        .map(|u| Target::parse(u.trim(), tls.as_ref()))
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
            Tokens::fetch(rest, common.user_base, wanted, common.token_ttl)
                .await
                .map_err(|e| {
                    format!(
                        "no --jwt-secret (or CHAT_LOAD_JWT_SECRET) was given, and {e}; pass the gateway's auth.jwt_secret"
                    )
                })?
        }
    };
    let ctx = Arc::new(Ctx::new(common, dialer, tokens, io));

    let sampler = Sampler::start(ctx.clone())?;
    let outcome = scenario::run(&ctx, &cli.scenario, &fd).await;
    let series = sampler.stop().await;
    let mut report = Report::build(
        &ctx,
        (
            cli.scenario.name(),
            scenario::params(&cli.scenario, &ctx.opts.stages),
        ),
        fd,
        (started.elapsed().as_secs_f64(), series),
        outcome?,
    );
    cli.thresholds.apply(&mut report);
    output(&report, &ctx.opts)?;
    Ok(report)
}
