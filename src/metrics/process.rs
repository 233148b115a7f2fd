//! The process metrics Prometheus' own clients export (`process_cpu_seconds_total`,
//! `process_resident_memory_bytes`, `process_open_fds`, `process_max_fds`,
//! `process_start_time_seconds`, `process_threads`), read from `/proc/self` at each scrape.
//! On a system without `/proc` they are left out.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Unit;

/// Clock ticks per second of `/proc/<pid>/stat`'s times (`USER_HZ`): 100 on every Linux
/// architecture the gateway builds for (the kernel's own `HZ` is hidden behind it).
const TICKS_PER_SECOND: f64 = 100.0;

/// Reads `/proc/self` when scraped.
#[derive(Debug)]
pub(super) struct ProcessCollector;

/// One reading of the process.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Reading {
    pub cpu_seconds: f64,
    pub start_time_seconds: f64,
    pub threads: i64,
    pub resident_bytes: i64,
    pub open_fds: i64,
    pub max_fds: i64,
}

impl Reading {
    /// The process now, or `None` without `/proc`.
    pub fn now() -> Option<Reading> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let boot = std::fs::read_to_string("/proc/stat").ok()?;
        let mut reading = parse(&stat, &status, &boot)?;
        reading.open_fds = std::fs::read_dir("/proc/self/fd")
            .map(|entries| entries.count() as i64)
            .unwrap_or(0);
        reading.max_fds = rlimit::Resource::NOFILE
            .get()
            .map(|(soft, _)| i64::try_from(soft).unwrap_or(i64::MAX))
            .unwrap_or(0);
        Some(reading)
    }
}

/// CPU time, threads and start time from `/proc/self/stat`, the resident set from
/// `/proc/self/status`, the boot time from `/proc/stat`.
pub(super) fn parse(stat: &str, status: &str, boot: &str) -> Option<Reading> {
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let number = |field: usize| -> Option<f64> { fields.get(field - 3)?.parse().ok() };
    let utime = number(14)?;
    let stime = number(15)?;
    let threads = number(20)? as i64;
    let start_ticks = number(22)?;
    let boot_time: f64 = boot
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    let resident_kib: i64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(Reading {
        cpu_seconds: (utime + stime) / TICKS_PER_SECOND,
        start_time_seconds: boot_time + start_ticks / TICKS_PER_SECOND,
        threads,
        resident_bytes: resident_kib * 1024,
        ..Reading::default()
    })
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(now) = Reading::now() else {
            return Ok(());
        };
        let cpu = ConstCounter::new(now.cpu_seconds);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu",
            "Total user and system CPU time spent",
            Some(&Unit::Seconds),
            cpu.metric_type(),
        )?)?;
        let gauges: [(&str, &str, Option<&Unit>, ConstGauge<f64>); 5] = [
            (
                "process_resident_memory",
                "Resident memory size",
                Some(&Unit::Bytes),
                ConstGauge::new(now.resident_bytes as f64),
            ),
            (
                "process_start_time",
                "Start time of the process since the Unix epoch",
                Some(&Unit::Seconds),
                ConstGauge::new(now.start_time_seconds),
            ),
            (
                "process_open_fds",
                "Open file descriptors",
                None,
                ConstGauge::new(now.open_fds as f64),
            ),
            (
                "process_max_fds",
                "The soft limit of open file descriptors",
                None,
                ConstGauge::new(now.max_fds as f64),
            ),
            (
                "process_threads",
                "OS threads of the process",
                None,
                ConstGauge::new(now.threads as f64),
            ),
        ];
        for (name, help, unit, gauge) in gauges {
            gauge.encode(encoder.encode_descriptor(name, help, unit, gauge.metric_type())?)?;
        }
        Ok(())
    }
}
