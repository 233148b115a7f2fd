//! `chat-load merge`: several JSON reports (the workers of one command, or chat-load
//! processes on several machines run together) as one run. Counts add up; percentiles come
//! from the merged HDR histograms, never from averaging percentiles; the window runs from
//! the first send of any part to the last delivery of any (wall-clock times: the machines'
//! clocks must agree, as NTP keeps them, to a few milliseconds); the verdict is judged again
//! by the thresholds given to `merge`.

use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::path::Path;

use crate::report::{Histograms, Percentiles, Report, Verdict};
use crate::series;
use crate::stats::{decode, encode, histogram};
use crate::thresholds::Thresholds;

/// Reads a report written with `--json`.
pub fn read(path: &Path) -> Result<Report, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| {
        format!(
            "{} is not a chat-load JSON report (of this version): {e}",
            path.display()
        )
    })
}

/// Adds the histograms `pick` chooses of every part.
fn merged(parts: &[Report], pick: impl Fn(&Histograms) -> &str) -> Result<Histogram<u64>, String> {
    let mut all = histogram();
    for part in parts {
        let text = pick(&part.histograms);
        if text.is_empty() {
            return Err(format!(
                "the report of run {} holds no histograms (written by an older chat-load?)",
                part.run_tag
            ));
        }
        all.add(decode(text)?)
            .map_err(|e| format!("merging histograms: {e:?}"))?;
    }
    Ok(all)
}

fn sum_maps(maps: impl Iterator<Item = BTreeMap<String, u64>>) -> BTreeMap<String, u64> {
    let mut all = BTreeMap::new();
    for map in maps {
        for (k, n) in map {
            *all.entry(k).or_default() += n;
        }
    }
    all
}

fn earliest(values: impl Iterator<Item = Option<u64>>) -> Option<u64> {
    values.flatten().min()
}

fn latest(values: impl Iterator<Item = Option<u64>>) -> Option<u64> {
    values.flatten().max()
}

/// One report of `parts`, judged by `thresholds`.
pub fn merge(parts: Vec<Report>, thresholds: &Thresholds) -> Result<Report, String> {
    let Some(first) = parts.first() else {
        return Err("nothing to merge".into());
    };
    if let Some(other) = parts.iter().find(|p| p.scenario != first.scenario) {
        return Err(format!(
            "cannot merge a {} run with a {} run",
            first.scenario, other.scenario
        ));
    }
    let latency = merged(&parts, |h| &h.latency)?;
    let from_send = merged(&parts, |h| &h.latency_from_send)?;
    let ack = merged(&parts, |h| &h.ack_latency)?;
    let lag = merged(&parts, |h| &h.send_lag)?;
    let handshake = merged(&parts, |h| &h.handshake)?;
    let mut out = first.clone();
    let sum = |f: fn(&Report) -> u64| parts.iter().map(f).sum::<u64>();
    out.run_tag = parts
        .iter()
        .map(|p| p.run_tag.as_str())
        .collect::<Vec<_>>()
        .join(",");
    out.targets = dedup(parts.iter().flat_map(|p| p.targets.clone()));
    out.source_addrs = dedup(parts.iter().flat_map(|p| p.source_addrs.clone()));
    out.users = sum(|p| p.users);
    out.duration_s = parts.iter().map(|p| p.duration_s).fold(0.0, f64::max);
    out.parts = sum(|p| p.parts);

    let c = &mut out.connections;
    c.wanted = sum(|p| p.connections.wanted);
    c.capped_by_fd_limit = parts.iter().any(|p| p.connections.capped_by_fd_limit);
    c.established = sum(|p| p.connections.established);
    c.failed = sum(|p| p.connections.failed);
    c.failures_by_cause = sum_maps(
        parts
            .iter()
            .map(|p| p.connections.failures_by_cause.clone()),
    );
    c.ramp_s = parts
        .iter()
        .map(|p| p.connections.ramp_s)
        .fold(0.0, f64::max);
    c.handshake_rate = parts.iter().map(|p| p.connections.handshake_rate).sum();
    c.handshake_ms = Percentiles::of(&handshake);
    c.peak_open = parts.iter().map(|p| p.connections.peak_open).sum();
    c.reconnects = sum(|p| p.connections.reconnects);
    c.server_disconnects = sum(|p| p.connections.server_disconnects);
    c.close_reasons = sum_maps(parts.iter().map(|p| p.connections.close_reasons.clone()));

    if let Some(m) = &mut out.messages {
        let all: Vec<_> = parts.iter().filter_map(|p| p.messages.as_ref()).collect();
        let add = |f: fn(&crate::report::Messages) -> u64| all.iter().map(|m| f(m)).sum::<u64>();
        m.target_rate = all.iter().map(|m| m.target_rate).sum();
        m.send_s = all.iter().map(|m| m.send_s).fold(0.0, f64::max);
        m.scheduled = add(|m| m.scheduled);
        m.sent = add(|m| m.sent);
        m.skipped_inflight = add(|m| m.skipped_inflight);
        m.skipped_behind = add(|m| m.skipped_behind);
        m.skipped_offline = add(|m| m.skipped_offline);
        m.first_send_unix_ms = earliest(all.iter().map(|m| m.first_send_unix_ms));
        m.last_send_unix_ms = latest(all.iter().map(|m| m.last_send_unix_ms));
        m.last_ack_unix_ms = latest(all.iter().map(|m| m.last_ack_unix_ms));
        m.last_delivery_unix_ms = latest(all.iter().map(|m| m.last_delivery_unix_ms));
        m.acked = add(|m| m.acked);
        m.acked_offline = add(|m| m.acked_offline);
        m.refused = add(|m| m.refused);
        m.unacked = add(|m| m.unacked);
        m.delivered = add(|m| m.delivered);
        m.delivered_live = add(|m| m.delivered_live);
        m.delivered_unread = add(|m| m.delivered_unread);
        m.expected_deliveries = add(|m| m.expected_deliveries);
        m.lost = add(|m| m.lost);
        m.owed_to_offline = add(|m| m.owed_to_offline);
        m.duplicates = add(|m| m.duplicates);
        m.reordered = add(|m| m.reordered);
        m.gaps = add(|m| m.gaps);
        m.redelivered = add(|m| m.redelivered);
        m.foreign = add(|m| m.foreign);
        m.syncs = add(|m| m.syncs);
        m.lost_examples = all
            .iter()
            .flat_map(|m| m.lost_examples.clone())
            .take(10)
            .collect();
        m.derive();
    }
    out.latency_ms = Percentiles::of(&latency);
    out.latency_from_send_ms = Percentiles::of(&from_send);
    out.ack_latency_ms = Percentiles::of(&ack);
    out.send_lag_ms = Percentiles::of(&lag);

    let e = &mut out.errors;
    e.by_code = sum_maps(parts.iter().map(|p| p.errors.by_code.clone()));
    e.frames = sum(|p| p.errors.frames);
    e.retried = sum(|p| p.errors.retried);
    e.bad_frames = sum(|p| p.errors.bad_frames);
    e.total = sum(|p| p.errors.total);
    e.operations = sum(|p| p.errors.operations);
    e.rate = if e.operations > 0 {
        e.total as f64 / e.operations as f64
    } else {
        0.0
    };

    merge_cpu(&mut out, &parts);
    out.memory = {
        let mut by_pid = BTreeMap::new();
        for m in parts.iter().flat_map(|p| p.memory.clone()) {
            by_pid.entry(m.pid).or_insert(m);
        }
        by_pid.into_values().collect()
    };
    out.load_tool_rss_kib = parts.iter().filter_map(|p| p.load_tool_rss_kib).max();
    merge_storm(&mut out, &parts)?;
    out.series = series::merge(&parts.iter().map(|p| p.series.clone()).collect::<Vec<_>>());
    out.histograms = Histograms {
        latency: encode(&latency),
        latency_from_send: encode(&from_send),
        ack_latency: encode(&ack),
        send_lag: encode(&lag),
        handshake: encode(&handshake),
    };
    out.verdict = Verdict {
        passed: true,
        reasons: Vec::new(),
    };
    thresholds.apply(&mut out);
    Ok(out)
}

fn dedup(items: impl Iterator<Item = String>) -> Vec<String> {
    let mut seen = Vec::new();
    for item in items {
        if !seen.contains(&item) {
            seen.push(item);
        }
    }
    seen
}

/// Processes watched by several parts (the same gateway, watched by every worker on its
/// machine) count once: the part with the longest window has the most of their CPU. The
/// per-unit costs are over all the parts' work.
fn merge_cpu(out: &mut Report, parts: &[Report]) {
    let mut by_process = BTreeMap::new();
    let mut window_s: f64 = 0.0;
    for cpu in parts.iter().filter_map(|p| p.cpu.as_ref()) {
        window_s = window_s.max(cpu.report.window_s);
        for p in &cpu.report.processes {
            let key = (p.role.clone(), p.pid);
            let keep = by_process
                .get(&key)
                .is_none_or(|k: &crate::procs::ProcCpu| k.cpu_s < p.cpu_s);
            if keep {
                by_process.insert(key, p.clone());
            }
        }
    }
    let Some(cpu) = &mut out.cpu else { return };
    let mut processes: Vec<_> = by_process.into_values().collect();
    let total: f64 = processes.iter().filter_map(|p| p.cpu_s).sum();
    for p in &mut processes {
        p.cores = p.cpu_s.map(|c| c / window_s.max(1e-9));
        p.share = p.cpu_s.map(|c| if total > 0.0 { c / total } else { 0.0 });
    }
    cpu.report.window_s = window_s;
    cpu.report.processes = processes;
    let gateway = cpu.report.seconds_of("gateway");
    let per = |n: u64| gateway.filter(|_| n > 0).map(|g| g * 1e6 / n as f64);
    let messages = out.messages.as_ref();
    let paced = messages.is_some_and(|m| m.target_rate > 0.0);
    cpu.gateway_us_per_message = per(messages.map_or(0, |m| m.acked)).filter(|_| paced);
    cpu.gateway_us_per_delivery = per(messages.map_or(0, |m| m.delivered)).filter(|_| paced);
    if cpu.gateway_us_per_connection.is_some() {
        let handshakes = match out.scenario.as_str() {
            "storm" => out.connections.reconnects,
            _ => out.connections.established,
        };
        cpu.gateway_us_per_connection = per(handshakes);
    }
}

fn merge_storm(out: &mut Report, parts: &[Report]) -> Result<(), String> {
    let Some(storm) = &mut out.storm else {
        return Ok(());
    };
    let all: Vec<_> = parts.iter().filter_map(|p| p.storm.as_ref()).collect();
    storm.clients = all.iter().map(|s| s.clients).sum();
    storm.reconnected = all.iter().map(|s| s.reconnected).sum();
    storm.resynced = all.iter().map(|s| s.resynced).sum();
    storm.messages_during_storm = all.iter().map(|s| s.messages_during_storm).sum();
    // Every part's drop is the same instant (`--drop-at`): the storm ends with the last.
    let slowest = |f: fn(&crate::report::Storm) -> Option<f64>| {
        all.iter()
            .map(|s| f(s))
            .try_fold(0.0, |worst: f64, v| v.map(|v| worst.max(v)))
    };
    storm.all_reconnected_s = slowest(|s| s.all_reconnected_s);
    storm.all_resynced_s = slowest(|s| s.all_resynced_s);
    let mut resync = histogram();
    for s in &all {
        if let Some(text) = &s.resync_histogram {
            resync
                .add(decode(text)?)
                .map_err(|e| format!("merging histograms: {e:?}"))?;
        }
    }
    storm.resync_ms = Percentiles::of(&resync);
    storm.resync_histogram = Some(encode(&resync));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal report of a private run whose deliveries took `latencies` µs.
    fn part(tag: &str, latencies: &[u64], (first, last): (u64, u64), lost: u64) -> Report {
        let mut h = histogram();
        for &us in latencies {
            h.record(us).unwrap();
        }
        let connections = serde_json::json!({"wanted": 2, "capped_by_fd_limit": false, "established": 2,
                "failed": 0, "failures_by_cause": {}, "ramp_s": 0.1, "handshake_rate": 20.0,
                "handshake_ms": null, "peak_open": 2, "reconnects": 0, "server_disconnects": 0,
                "close_reasons": {}});
        let messages = serde_json::json!({"target_rate": 10.0, "send_s": 1.0, "scheduled": 10, "sent": 10,
                "send_rate": 10.0, "skipped_inflight": 0, "skipped_behind": 0,
                "skipped_offline": 0, "first_send_unix_ms": first, "last_send_unix_ms": last,
                "last_ack_unix_ms": last, "last_delivery_unix_ms": last, "window_s": 0.0,
                "drain_s": 0.0, "acked": 10, "ack_rate": 0.0, "acked_offline": 0, "refused": 0,
                "unacked": 0, "delivered": latencies.len(), "delivered_live": latencies.len(),
                "delivered_unread": 0, "delivery_rate": 0.0, "offered_delivery_rate": 0.0,
                "expected_deliveries": 10, "lost": lost, "owed_to_offline": 0, "duplicates": 0,
                "reordered": 0, "gaps": 0, "redelivered": 0, "foreign": 0, "syncs": 0,
                "lost_examples": [], "kept_up": true, "behind": []});
        let json = serde_json::json!({
            "scenario": "private", "params": {}, "run_tag": tag, "targets": ["ws://a/ws"],
            "source_addrs": [], "fd_limit": {"initial": 1, "soft": 1, "hard": 1},
            "users": 2, "duration_s": 3.0, "connections": connections, "messages": messages,
            "latency_ms": null, "latency_from_send_ms": null, "ack_latency_ms": null,
            "send_lag_ms": null,
            "errors": {"by_code": {"5000": 1}, "frames": 1, "retried": 1, "bad_frames": 0,
                "total": 0, "operations": 12, "rate": 0.0},
            "cpu": null, "memory": [], "load_tool_rss_kib": 100, "storm": null,
            "histograms": {"latency": encode(&h), "latency_from_send": encode(&h),
                "ack_latency": encode(&h), "send_lag": encode(&histogram()),
                "handshake": encode(&histogram())},
            "verdict": {"passed": true, "reasons": []}
        });
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn percentiles_come_from_the_merged_histograms() {
        // One part all fast, one all slow: the merged p50 is neither part's p50 averaged
        // with the other's, and the p99 is the slow part's.
        let fast = part("a", &[1_000; 10], (1_000, 2_000), 0);
        let slow = part("b", &[100_000; 10], (1_500, 4_000), 0);
        let m = merge(vec![fast, slow], &Thresholds::default()).unwrap();
        let latency = m.latency_ms.as_ref().unwrap();
        assert_eq!(latency.count, 20);
        assert!((latency.p99 - 100.0).abs() < 0.1, "{latency:?}");
        assert!(latency.p50 < 1.01, "{latency:?}");
        let msgs = m.messages.as_ref().unwrap();
        assert_eq!(msgs.sent, 20);
        // The window spans both parts: first send of one to last delivery of the other.
        assert!((msgs.window_s - 3.0).abs() < 1e-9, "{}", msgs.window_s);
        assert!((msgs.delivery_rate - 20.0 / 3.0).abs() < 1e-9);
        assert_eq!(m.errors.by_code["5000"], 2);
        assert_eq!(m.parts, 2);
        assert!(m.verdict.passed, "{:?}", m.verdict);
    }

    #[test]
    fn the_merged_run_is_judged_again() {
        let a = part("a", &[1_000; 10], (1_000, 2_000), 0);
        let b = part("b", &[80_000; 10], (1_000, 2_000), 3);
        let thresholds = Thresholds {
            max_p99: Some(std::time::Duration::from_millis(50)),
            ..Thresholds::default()
        };
        let m = merge(vec![a, b], &thresholds).unwrap();
        assert!(!m.verdict.passed);
        let reasons = m.verdict.reasons.join("; ");
        assert!(reasons.contains("--max-p99 50ms"), "{reasons}");
        assert!(
            reasons.contains("--max-lost 0: 3 messages lost"),
            "{reasons}"
        );
    }

    #[test]
    fn unlike_runs_do_not_merge() {
        let a = part("a", &[1_000], (1, 2), 0);
        let mut b = part("b", &[1_000], (1, 2), 0);
        b.scenario = "group".into();
        assert!(merge(vec![a, b], &Thresholds::default()).is_err());
        assert!(merge(Vec::new(), &Thresholds::default()).is_err());
    }
}
