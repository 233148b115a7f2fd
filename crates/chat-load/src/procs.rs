//! Processes watched during a run: CPU time from /proc/PID/stat (utime + stime, all
//! threads) and resident memory from /proc/PID/status (VmRSS), for the gateway nodes,
//! Redis, MariaDB and the load tool itself.

use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Clock ticks per second of /proc/PID/stat times: Linux's USER_HZ, 100 on every
/// architecture this runs on.
const TICKS_PER_SECOND: f64 = 100.0;

/// A process to watch.
#[derive(Debug, Clone, Copy)]
pub struct Watched {
    /// `gateway`, `redis`, `mysql` or `load-tool`.
    pub role: &'static str,
    /// The process id (`None`: this process).
    pub pid: Option<u32>,
}

/// CPU used by one process over the measured window.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcCpu {
    /// What the process is.
    pub role: String,
    /// Its pid.
    pub pid: u32,
    /// CPU seconds (user + system) used in the window; null when /proc could not be read.
    pub cpu_s: Option<f64>,
    /// Of those, seconds in the kernel (system time: syscalls, and on loopback also the
    /// receiving side's TCP processing, which runs in the sender's system call).
    pub kernel_s: Option<f64>,
    /// Average cores busy: cpu_s / window.
    pub cores: Option<f64>,
    /// Fraction of all the watched processes' CPU.
    pub share: Option<f64>,
}

/// CPU over a window, per process.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CpuReport {
    /// Length of the window, seconds.
    pub window_s: f64,
    /// Each watched process.
    pub processes: Vec<ProcCpu>,
}

impl CpuReport {
    /// CPU seconds of every process in `role`.
    pub fn seconds_of(&self, role: &str) -> Option<f64> {
        let of_role: Vec<f64> = self
            .processes
            .iter()
            .filter(|p| p.role == role)
            .filter_map(|p| p.cpu_s)
            .collect();
        (!of_role.is_empty()).then(|| of_role.iter().sum())
    }
}

/// CPU counters at the start of a window.
pub struct CpuWatch {
    watched: Vec<Watched>,
    start: Vec<Option<Ticks>>,
    started: Instant,
}

/// The processes named on the command line, then this one.
pub fn watched(servers: &[u32], redis: &[u32], mysql: &[u32]) -> Vec<Watched> {
    let with = |role, pids: &[u32]| {
        pids.iter()
            .map(move |&pid| Watched {
                role,
                pid: Some(pid),
            })
            .collect::<Vec<_>>()
    };
    let mut all = with("gateway", servers);
    all.extend(with("redis", redis));
    all.extend(with("mysql", mysql));
    all.push(Watched {
        role: "load-tool",
        pid: None,
    });
    all
}

impl CpuWatch {
    /// Starts a window now.
    pub fn start(watched: Vec<Watched>) -> CpuWatch {
        let start = watched.iter().map(|w| cpu_ticks(w.pid)).collect();
        CpuWatch {
            watched,
            start,
            started: Instant::now(),
        }
    }

    /// The CPU each process used since `start`.
    pub fn finish(&self) -> CpuReport {
        let window_s = self.started.elapsed().as_secs_f64();
        let mut processes: Vec<ProcCpu> = self
            .watched
            .iter()
            .zip(&self.start)
            .map(|(w, start)| {
                let used = match (start, cpu_ticks(w.pid)) {
                    (Some(a), Some(b)) => Some(b.since(a)),
                    _ => None,
                };
                let cpu_s = used.map(|t| (t.user + t.system) as f64 / TICKS_PER_SECOND);
                ProcCpu {
                    role: w.role.to_string(),
                    pid: w.pid.unwrap_or_else(std::process::id),
                    cpu_s,
                    kernel_s: used.map(|t| t.system as f64 / TICKS_PER_SECOND),
                    cores: cpu_s.map(|c| c / window_s.max(1e-9)),
                    share: None,
                }
            })
            .collect();
        let total: f64 = processes.iter().filter_map(|p| p.cpu_s).sum();
        for p in &mut processes {
            p.share = p.cpu_s.map(|c| if total > 0.0 { c / total } else { 0.0 });
        }
        CpuReport {
            window_s,
            processes,
        }
    }
}

/// CPU time of a process, in ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticks {
    /// utime.
    pub user: u64,
    /// stime.
    pub system: u64,
}

impl Ticks {
    fn since(self, start: &Ticks) -> Ticks {
        Ticks {
            user: self.user.saturating_sub(start.user),
            system: self.system.saturating_sub(start.system),
        }
    }
}

/// utime and stime of a process.
pub fn cpu_ticks(pid: Option<u32>) -> Option<Ticks> {
    let text = std::fs::read_to_string(proc_path(pid, "stat")).ok()?;
    parse_stat(&text)
}

/// Resident memory of a process, in KiB.
pub fn rss_kib(pid: Option<u32>) -> Option<u64> {
    let text = std::fs::read_to_string(proc_path(pid, "status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

fn proc_path(pid: Option<u32>, file: &str) -> String {
    match pid {
        Some(pid) => format!("/proc/{pid}/{file}"),
        None => format!("/proc/self/{file}"),
    }
}

/// Fields 14 and 15 of /proc/PID/stat, counted after the command name (which may hold
/// spaces and parentheses, so the split starts at the last ')').
fn parse_stat(text: &str) -> Option<Ticks> {
    let after = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    Some(Ticks {
        user: fields.get(11)?.parse().ok()?,
        system: fields.get(12)?.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat() {
        let line = "1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 40 0 0 20 0 8 0";
        assert_eq!(
            parse_stat(line),
            Some(Ticks {
                user: 250,
                system: 40
            })
        );
    }

    #[test]
    fn reads_own_process() {
        assert!(cpu_ticks(None).is_some());
        assert!(rss_kib(None).unwrap() > 0);
    }
}
