//! Command-line flags: the options every scenario shares, then one subcommand per scenario.
//! docs/load-testing.md describes each flag.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

use crate::thresholds::Thresholds;

/// `chat-load`: drives a chat-gateway (one node, several nodes, or a load balancer) with
/// real WebSocket clients and reports latency, throughput, errors, losses and server cost.
#[derive(Parser, Debug)]
#[command(
    name = "chat-load",
    version,
    max_term_width = 100,
    // A flag given again (on the command line after a scenario file's) overrides it.
    args_override_self = true
)]
pub struct Cli {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub thresholds: Thresholds,
    #[command(subcommand)]
    pub scenario: Scenario,
}

/// Options every scenario shares.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Common options (before or after the scenario)")]
pub struct Common {
    /// Gateway WebSocket URL (ws:// or wss://); repeat (or comma-separate) for several
    /// nodes, used round-robin.
    #[arg(
        long = "url",
        short = 'u',
        global = true,
        env = "CHAT_LOAD_URL",
        value_delimiter = ',',
        default_value = "ws://127.0.0.1:8080/ws"
    )]
    pub urls: Vec<String>,
    /// Certificates (PEM) to trust for wss:// besides the system's: a private CA's, or a
    /// test gateway's self-signed one.
    #[arg(long, global = true)]
    pub ca_file: Option<PathBuf>,
    /// The gateway's auth.jwt_secret: tokens are minted locally with it. Without it, tokens
    /// are fetched from the gateway's dev-token endpoint (a node on loopback with no secret
    /// configured, as `chat-gateway` starts with no configuration).
    #[arg(
        long,
        global = true,
        env = "CHAT_LOAD_JWT_SECRET",
        hide_env_values = true
    )]
    pub jwt_secret: Option<String>,
    /// Lifetime of the minted tokens.
    #[arg(long, global = true, default_value = "24h", value_parser = duration)]
    pub token_ttl: Duration,
    /// First user id of this run; a run uses consecutive ids from here.
    #[arg(long, global = true, default_value_t = 1_000_000)]
    pub user_base: i64,
    /// Loopback source addresses to spread connections over (127.0.0.1, 127.0.0.2, …);
    /// 0 = automatic: one per ~12,700 connections (45 % of the ephemeral port range), none
    /// (the kernel chooses) when one address is enough.
    #[arg(long, global = true, default_value_t = 0)]
    pub source_addrs: u32,
    /// Rate at which connections are opened, per second.
    #[arg(long, global = true, default_value_t = 2000.0)]
    pub ramp: f64,
    /// Most handshakes in progress at once.
    #[arg(long, global = true, default_value_t = 256)]
    pub handshake_concurrency: usize,
    /// Longest a handshake (TCP connect, upgrade, first frame) may take.
    #[arg(long, global = true, default_value = "10s", value_parser = duration)]
    pub handshake_timeout: Duration,
    /// Bytes of content per message (the client_msg_id comes on top).
    #[arg(long, global = true, default_value_t = 64)]
    pub message_bytes: usize,
    /// Most unacknowledged messages per sender; a send due while a sender is at the cap is
    /// skipped and counted.
    #[arg(long, global = true, default_value_t = 256)]
    pub inflight: u32,
    /// How pairs that exchange private messages get past the stranger limit: one message
    /// each way before measuring (`exchange`), or mutual follows over REST (`follow`).
    #[arg(long, global = true, value_enum, default_value_t = PairSetup::Exchange)]
    pub pair_setup: PairSetup,
    /// After sending stops, how long to wait for outstanding acks and deliveries before
    /// counting the missing ones as lost.
    #[arg(long, global = true, default_value = "10s", value_parser = duration)]
    pub drain: Duration,
    /// Do not mark received messages read at the end (left unread, a later run with the
    /// same user ids gets them back in its syncs).
    #[arg(long, global = true)]
    pub no_mark_read: bool,
    /// A gateway process to watch (CPU from /proc/PID/stat, RSS from /proc/PID/status);
    /// repeat for several nodes.
    #[arg(long, global = true)]
    pub server_pid: Vec<u32>,
    /// A redis-server process to include in the CPU split; repeatable.
    #[arg(long, global = true)]
    pub redis_pid: Vec<u32>,
    /// A mariadbd/mysqld process to include in the CPU split; repeatable.
    #[arg(long, global = true)]
    pub mysql_pid: Vec<u32>,
    /// Write the report as JSON to this file as well (with its HDR histograms, for
    /// `chat-load merge`).
    #[arg(long, global = true)]
    pub json: Option<PathBuf>,
    /// Write the time series as JSON lines to this file while the run goes, one line per
    /// second.
    #[arg(long, global = true)]
    pub series: Option<PathBuf>,
    /// A send more than this overdue (the tool fell behind its schedule) is skipped and
    /// counted, never sent in a catch-up burst.
    #[arg(long, global = true, default_value = "100ms", value_parser = duration)]
    pub max_send_lag: Duration,
    /// A stage of the sending phase, `DURATION:RATE` (`30s:1000`); repeat for a profile
    /// (`--stage 30s:1000 --stage 1m:5000 --stage 30s:0`). Stages replace the scenario's
    /// `--rate` and `--duration` (private, group, mixed).
    #[arg(long = "stage", global = true, value_parser = stage)]
    pub stages: Vec<Stage>,
    /// Run this many worker processes, each with its share of the scenario (users, rate,
    /// groups) and its own user ids, and report them merged as one run.
    #[arg(long, global = true, default_value_t = 1)]
    pub workers: u32,
    /// No live progress line on stderr.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// IO threads, each a single-threaded runtime; users' connections are dealt to them in
    /// turn (the run itself, pacer and progress, is on the main thread). Default: one per
    /// two cores.
    #[arg(long, global = true)]
    pub threads: Option<usize>,
}

/// How private pairs are exempted from the stranger limit.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairSetup {
    /// Each user of a pair sends the other one message, in turn, before the measured phase.
    Exchange,
    /// Both users follow each other (`POST /api/follows`).
    Follow,
}

/// The workload.
#[derive(Subcommand, Debug, Clone)]
pub enum Scenario {
    /// N idle connections opened at the ramp rate and held: handshake rate, server memory.
    Connect(ConnectArgs),
    /// Pairs of users exchanging private messages at a total rate.
    Private(PrivateArgs),
    /// G groups of S members, K senders in each: fan-out.
    Group(GroupArgs),
    /// Private and group messages in a weighted mix, with users disconnecting and
    /// reconnecting (and resyncing) all along.
    Mixed(MixedArgs),
    /// K clients dropped at once, reconnecting with jittered backoff: time until all are
    /// back and resynced, and whether what was sent meanwhile reached them.
    Storm(StormArgs),
    /// Runs the scenario a TOML file describes (its options and thresholds too); flags
    /// given on the command line override the file's.
    Run(RunArgs),
    /// Merges JSON reports (of workers, or of chat-load processes on several machines run
    /// at the same time) into one: counts added, HDR histograms merged, the window from the
    /// first send to the last delivery of any; judged by the thresholds given here.
    Merge(MergeArgs),
}

impl Scenario {
    /// The scenario's name, as on the command line.
    pub fn name(&self) -> &'static str {
        match self {
            Scenario::Connect(_) => "connect",
            Scenario::Private(_) => "private",
            Scenario::Group(_) => "group",
            Scenario::Mixed(_) => "mixed",
            Scenario::Storm(_) => "storm",
            Scenario::Run(_) => "run",
            Scenario::Merge(_) => "merge",
        }
    }
}

/// `run`.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// The scenario file (docs/load-testing.md, "Scenario files").
    pub file: PathBuf,
    /// Flags overriding the file's (the scenario's own among them: `--duration 1m`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub flags: Vec<std::ffi::OsString>,
}

/// `merge`.
#[derive(Args, Debug, Clone)]
pub struct MergeArgs {
    /// JSON reports written with `--json`.
    #[arg(required = true, num_args = 1..)]
    pub files: Vec<PathBuf>,
}

/// `connect`.
#[derive(Args, Debug, Clone, serde::Serialize)]
pub struct ConnectArgs {
    /// Connections to open (one user each).
    #[arg(long, short = 'n', default_value_t = 1000)]
    pub connections: u32,
    /// How long to hold them open once all are up.
    #[arg(long, default_value = "10s", value_parser = duration)]
    #[serde(with = "secs")]
    pub hold: Duration,
    /// Put the users in groups of this many before connecting (0: none), so that each
    /// connection holds a group subscription besides its own: the memory of a connection
    /// as a chat app's users have it.
    #[arg(long, default_value_t = 0)]
    pub group_size: u32,
}

/// `private`.
#[derive(Args, Debug, Clone, serde::Serialize)]
pub struct PrivateArgs {
    /// Pairs of users; both users of a pair send to each other.
    #[arg(long, default_value_t = 100)]
    pub pairs: u32,
    /// Total messages per second, over all senders.
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// How long to send.
    #[arg(long, short = 'd', default_value = "10s", value_parser = duration)]
    #[serde(with = "secs")]
    pub duration: Duration,
}

/// `group`.
#[derive(Args, Debug, Clone, serde::Serialize)]
pub struct GroupArgs {
    /// Number of groups.
    #[arg(long, default_value_t = 1)]
    pub groups: u32,
    /// Members per group (all connected); each message reaches members - 1 of them.
    #[arg(long, default_value_t = 100)]
    pub members: u32,
    /// Senders per group (the first members).
    #[arg(long, default_value_t = 1)]
    pub senders: u32,
    /// Total group messages per second, over all senders.
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// How long to send.
    #[arg(long, short = 'd', default_value = "10s", value_parser = duration)]
    #[serde(with = "secs")]
    pub duration: Duration,
}

/// `mixed`.
#[derive(Args, Debug, Clone, serde::Serialize)]
pub struct MixedArgs {
    /// Users (rounded up to whole pairs and whole groups); each has a private partner and
    /// belongs to one group.
    #[arg(long, default_value_t = 1000)]
    pub users: u32,
    /// Members per group.
    #[arg(long, default_value_t = 20)]
    pub members: u32,
    /// Total messages per second.
    #[arg(long, default_value_t = 500.0)]
    pub rate: f64,
    /// Relative weight of private messages in the mix.
    #[arg(long, default_value_t = 80)]
    pub private_weight: u32,
    /// Relative weight of group messages in the mix.
    #[arg(long, default_value_t = 20)]
    pub group_weight: u32,
    /// Users disconnected per second (each reconnects after --offline-time and resyncs).
    #[arg(long, default_value_t = 10.0)]
    pub churn: f64,
    /// How long a churned user stays offline (±50 % jitter).
    #[arg(long, default_value = "2s", value_parser = duration)]
    #[serde(with = "secs")]
    pub offline_time: Duration,
    /// How long to run.
    #[arg(long, short = 'd', default_value = "10s", value_parser = duration)]
    #[serde(with = "secs")]
    pub duration: Duration,
}

/// `storm`.
#[derive(Args, Debug, Clone, serde::Serialize)]
pub struct StormArgs {
    /// Clients dropped at once.
    #[arg(long, default_value_t = 1000)]
    pub clients: u32,
    /// Clients per group; each group also has one sender who stays connected.
    #[arg(long, default_value_t = 1000)]
    pub group_size: u32,
    /// Messages each group's sender sends right after the drop (they must reach every
    /// dropped member, live or by the resync).
    #[arg(long, default_value_t = 3)]
    pub messages: u32,
    /// Each client waits a random time up to this before its first reconnect attempt.
    #[arg(long, default_value = "2s", value_parser = duration)]
    #[serde(with = "secs")]
    pub jitter: Duration,
    /// First retry delay after a failed attempt (doubles, with full jitter).
    #[arg(long, default_value = "100ms", value_parser = duration)]
    #[serde(with = "secs")]
    pub backoff_min: Duration,
    /// Longest retry delay.
    #[arg(long, default_value = "5s", value_parser = duration)]
    #[serde(with = "secs")]
    pub backoff_max: Duration,
    /// Give up on clients not resynced this long after the drop.
    #[arg(long, default_value = "60s", value_parser = duration)]
    #[serde(with = "secs")]
    pub timeout: Duration,
    /// Drop at this wall-clock time (unix milliseconds) instead of as soon as everyone is
    /// connected: several chat-load processes given the same time drop their clients
    /// together (one storm larger than one process's file-descriptor limit).
    #[arg(long)]
    pub drop_at: Option<u64>,
}

/// A stage of the sending phase: this rate for this long.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Stage {
    /// How long, seconds in the report.
    #[serde(with = "secs")]
    pub duration: Duration,
    /// Messages per second, over all senders.
    pub rate: f64,
}

fn stage(s: &str) -> Result<Stage, String> {
    let (d, r) = s
        .split_once(':')
        .ok_or_else(|| format!("`{s}` is not DURATION:RATE (such as 30s:1000)"))?;
    let duration = humantime::parse_duration(d).map_err(|e| format!("`{d}`: {e}"))?;
    let rate: f64 = r.parse().map_err(|_| format!("`{r}` is not a rate"))?;
    if !rate.is_finite() || rate < 0.0 {
        return Err(format!("`{r}` is not a rate of 0 or more"));
    }
    Ok(Stage { duration, rate })
}

/// A humantime duration (`500ms`, `10s`, `2m`).
pub use crate::units::duration;

/// Durations as fractional seconds in the JSON report.
mod secs {
    use serde::Serializer;
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_parse() {
        let s = stage("1m30s:2500.5").unwrap();
        assert_eq!((s.duration, s.rate), (Duration::from_secs(90), 2500.5));
        assert_eq!(stage("10s:0").unwrap().rate, 0.0);
        for bad in ["10s", "10s:fast", "ten:5", "10s:-1", "10s:inf"] {
            assert!(stage(bad).is_err(), "{bad}");
        }
    }
}
