//! `--workers N`: one command, N chat-load processes. Each worker is this binary again,
//! given the same command line, its share of the scenario (`CHAT_LOAD_WORKER=i/N`), its
//! own user ids and its own JSON report; the parent waits for them and merges the reports
//! (merge.rs). One process is bound by one core for its pacer and by its descriptor
//! limit; workers are not.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Stdio;

use crate::cli::{Cli, Scenario};
use crate::merge;
use crate::report::Report;

/// The environment variable that makes a process worker `i` of `n`: `i/n`.
pub const WORKER_VAR: &str = "CHAT_LOAD_WORKER";

/// How long from now a storm split over workers drops its clients, when `--drop-at` is
/// not given: time for every worker to connect its share.
const STORM_LEAD_MS: u64 = 30_000;

/// `i` and `n` from `CHAT_LOAD_WORKER`, when this process is a worker.
pub fn this_worker() -> Result<Option<(u32, u32)>, String> {
    let Some(value) = std::env::var_os(WORKER_VAR) else {
        return Ok(None);
    };
    let value = value.to_string_lossy();
    value
        .split_once('/')
        .and_then(|(i, n)| Some((i.parse().ok()?, n.parse().ok()?)))
        .filter(|&(i, n)| i < n)
        .map(Some)
        .ok_or_else(|| format!("{WORKER_VAR}={value} is not `i/n` with i < n"))
}

/// `i`'s share of `total` split `n` ways (the first ones take the remainder).
fn part(total: u32, i: u32, n: u32) -> u32 {
    total / n + u32::from(i < total % n)
}

/// Worker `i` of `n`'s share of `scenario`: its part of the users, groups or clients,
/// and the same part of the rate.
pub fn share(scenario: &Scenario, i: u32, n: u32) -> Result<Scenario, String> {
    let too_few = |what: &str, have: u32| {
        Err(format!(
            "--workers {n} needs at least {n} {what} to share out (there are {have})"
        ))
    };
    let scaled = |x: f64, mine: u32, all: u32| x * f64::from(mine) / f64::from(all.max(1));
    Ok(match scenario {
        Scenario::Connect(a) => {
            let mut a = a.clone();
            a.connections = part(a.connections, i, n);
            Scenario::Connect(a)
        }
        Scenario::Private(a) if a.pairs < n => return too_few("pairs", a.pairs),
        Scenario::Private(a) => {
            let mut a = a.clone();
            a.pairs = part(a.pairs, i, n);
            a.rate = scaled(a.rate, a.pairs, scenario_pairs(scenario));
            Scenario::Private(a)
        }
        Scenario::Group(a) if a.groups < n => return too_few("groups", a.groups),
        Scenario::Group(a) => {
            let mut a = a.clone();
            a.groups = part(a.groups, i, n);
            a.rate = scaled(a.rate, a.groups, scenario_groups(scenario));
            Scenario::Group(a)
        }
        Scenario::Mixed(a) if a.users / a.members.max(2) < n => {
            return too_few("groups of --members", a.users / a.members.max(2));
        }
        Scenario::Mixed(a) => {
            let mut a = a.clone();
            let all = a.users;
            a.users = part(a.users, i, n);
            a.rate = scaled(a.rate, a.users, all);
            a.churn = scaled(a.churn, a.users, all);
            Scenario::Mixed(a)
        }
        Scenario::Storm(a) if a.clients < n => return too_few("clients", a.clients),
        Scenario::Storm(a) => {
            let mut a = a.clone();
            a.clients = part(a.clients, i, n);
            Scenario::Storm(a)
        }
        Scenario::Run(_) | Scenario::Merge(_) => scenario.clone(),
    })
}

/// The fraction of the whole that a share of it is (by pairs, groups, users or clients):
/// what a worker scales the `--stage` rates by.
pub fn fraction(whole: &Scenario, share: &Scenario) -> f64 {
    let ratio = |a: u32, b: u32| f64::from(a) / f64::from(b.max(1));
    match (whole, share) {
        (Scenario::Private(w), Scenario::Private(s)) => ratio(s.pairs, w.pairs),
        (Scenario::Group(w), Scenario::Group(s)) => ratio(s.groups, w.groups),
        (Scenario::Mixed(w), Scenario::Mixed(s)) => ratio(s.users, w.users),
        (Scenario::Connect(w), Scenario::Connect(s)) => ratio(s.connections, w.connections),
        (Scenario::Storm(w), Scenario::Storm(s)) => ratio(s.clients, w.clients),
        _ => 1.0,
    }
}

fn scenario_pairs(s: &Scenario) -> u32 {
    match s {
        Scenario::Private(a) => a.pairs,
        _ => 1,
    }
}

fn scenario_groups(s: &Scenario) -> u32 {
    match s {
        Scenario::Group(a) => a.groups,
        _ => 1,
    }
}

/// Runs `cli` as `--workers` processes (`argv` is its command line, a scenario file
/// already expanded) and merges their reports.
pub async fn run(cli: &Cli, argv: &[OsString]) -> Result<Report, String> {
    let n = cli.common.workers;
    // Every worker's share must be possible before any starts.
    for i in 0..n {
        share(&cli.scenario, i, n)?;
    }
    let exe = std::env::current_exe().map_err(|e| format!("finding this program: {e}"))?;
    let dir = std::env::temp_dir().join(format!(
        "chat-load-workers-{}-{}",
        std::process::id(),
        crate::protocol::run_tag()
    ));
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    // Users of worker i start at base + i × stride: the whole scenario's users fit in one
    // stride, so a share's do too.
    let stride = crate::scenario::connections_wanted(&cli.scenario).max(1) as i64;
    let drop_at = match &cli.scenario {
        Scenario::Storm(a) if a.drop_at.is_none() => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            Some(now + STORM_LEAD_MS)
        }
        _ => None,
    };
    let mut children = Vec::new();
    let mut reports = Vec::new();
    for i in 0..n {
        let json = dir.join(format!("worker-{i}.json"));
        let mut command = tokio::process::Command::new(&exe);
        command
            .args(&argv[1..])
            .arg("--workers=1")
            .arg("--json")
            .arg(&json)
            .arg(format!(
                "--user-base={}",
                cli.common.user_base + i64::from(i) * stride
            ))
            .env(WORKER_VAR, format!("{i}/{n}"))
            .stdout(Stdio::null())
            .kill_on_drop(true);
        // Worker 0's progress line stands for the run's (its share of it).
        if i > 0 {
            command.arg("--quiet");
        }
        if let Some(series) = &cli.common.series {
            command.arg("--series").arg(worker_file(series, i));
        }
        if let Some(at) = drop_at {
            command.arg(format!("--drop-at={at}"));
        }
        let child = command
            .spawn()
            .map_err(|e| format!("starting worker {i}: {e}"))?;
        children.push(child);
        reports.push(json);
    }
    let mut failed = Vec::new();
    for (i, child) in children.iter_mut().enumerate() {
        let status = child
            .wait()
            .await
            .map_err(|e| format!("waiting for worker {i}: {e}"))?;
        // 0 and 1 are runs that happened (passed or not); anything else could not run.
        if !matches!(status.code(), Some(0 | 1)) {
            failed.push(format!("worker {i} ({status})"));
        }
    }
    if !failed.is_empty() {
        return Err(format!(
            "{} could not run (see their messages above)",
            failed.join(", ")
        ));
    }
    let parts = reports
        .iter()
        .map(|path| merge::read(path))
        .collect::<Result<Vec<_>, _>>()?;
    let _ = std::fs::remove_dir_all(&dir);
    let mut report = merge::merge(parts, &cli.thresholds)?;
    // The whole scenario's flags, not worker 0's share of them.
    report.params = crate::scenario::params(&cli.scenario, &cli.common.stages);
    Ok(report)
}

/// `FILE` for worker `i`: `FILE.i`.
fn worker_file(path: &std::path::Path, i: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{i}"));
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn scenario(args: &[&str]) -> Scenario {
        let mut argv = vec!["chat-load"];
        argv.extend(args);
        Cli::parse_from(argv).scenario
    }

    #[test]
    fn shares_add_up_to_the_whole() {
        let private = scenario(&["private", "--pairs", "10", "--rate", "1000"]);
        let (mut pairs, mut rate) = (0, 0.0);
        for i in 0..3 {
            let Scenario::Private(a) = share(&private, i, 3).unwrap() else {
                panic!()
            };
            pairs += a.pairs;
            rate += a.rate;
        }
        assert_eq!(pairs, 10);
        assert!((rate - 1000.0).abs() < 1e-6, "{rate}");
        let first = share(&private, 0, 3).unwrap();
        assert!((fraction(&private, &first) - 0.4).abs() < 1e-9);
        let group = scenario(&["group", "--groups", "1"]);
        let err = share(&group, 0, 2).unwrap_err();
        assert!(err.contains("--workers 2 needs at least 2 groups"), "{err}");
    }

    #[test]
    fn the_worker_variable() {
        assert_eq!(part(7, 0, 3), 3);
        assert_eq!(part(7, 2, 3), 2);
        assert_eq!(
            worker_file(std::path::Path::new("/x/s.jsonl"), 2),
            PathBuf::from("/x/s.jsonl.2")
        );
    }
}
