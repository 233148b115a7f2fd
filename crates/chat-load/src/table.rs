//! The report as a table for people (stdout).

use std::fmt::Write;

use crate::report::{Percentiles, Report};

fn pct(p: &Option<Percentiles>) -> String {
    match p {
        Some(p) => format!(
            "n={:<9} p50 {:>8.3}  p90 {:>8.3}  p99 {:>8.3}  p99.9 {:>8.3}  max {:>8.3} ms",
            p.count, p.p50, p.p90, p.p99, p.p999, p.max
        ),
        None => "no samples".into(),
    }
}

fn kib(v: Option<u64>) -> String {
    v.map_or("?".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
}

fn opt(v: Option<f64>, unit: &str) -> String {
    v.map_or("n/a".into(), |v| format!("{v:.2}{unit}"))
}

/// Renders the report.
pub fn render(r: &Report) -> String {
    let mut out = String::new();
    let o = &mut out;
    let _ = writeln!(
        o,
        "chat-load {} · {} users · {:.1} s · run tag {}{}",
        r.scenario,
        r.users,
        r.duration_s,
        r.run_tag,
        if r.parts > 1 {
            format!(" · {} reports merged", r.parts)
        } else {
            String::new()
        }
    );
    let _ = writeln!(o, "  targets        {}", r.targets.join(", "));
    if !r.source_addrs.is_empty() {
        let _ = writeln!(o, "  source addrs   {}", r.source_addrs.join(", "));
    }
    let c = &r.connections;
    let _ = writeln!(
        o,
        "  fd limit       {} (hard {}){}",
        r.fd_limit.soft,
        r.fd_limit.hard,
        if c.capped_by_fd_limit {
            " — CAPPED this run's connections"
        } else {
            ""
        }
    );
    let _ = writeln!(o, "connections");
    let _ = writeln!(
        o,
        "  established    {} of {}   failed {}   peak open {}   reconnects {}   server disconnects {}",
        c.established, c.wanted, c.failed, c.peak_open, c.reconnects, c.server_disconnects
    );
    let _ = writeln!(
        o,
        "  ramp           {:.2} s   {:.1} handshakes/s",
        c.ramp_s, c.handshake_rate
    );
    let _ = writeln!(o, "  handshake      {}", pct(&c.handshake_ms));
    for (cause, n) in &c.failures_by_cause {
        let _ = writeln!(o, "  failed         {n} × {cause}");
    }
    for (reason, n) in &c.close_reasons {
        let _ = writeln!(o, "  server 1001    {n} × {reason}");
    }
    if let Some(m) = &r.messages {
        if m.target_rate > 0.0 {
            let _ = writeln!(
                o,
                "messages (sending {:.1} s at {:.0}/s offered; window {:.2} s from first send to \
                 last delivery, drain {:.2} s)",
                m.send_s, m.target_rate, m.window_s, m.drain_s
            );
        } else {
            let _ = writeln!(
                o,
                "messages (window {:.2} s, drain {:.2} s)",
                m.window_s, m.drain_s
            );
        }
        let _ = writeln!(
            o,
            "  sent           {:<10} {:>10.1}/s   of {} due; skipped: in-flight cap {}, tool behind {}, sender offline {}",
            m.sent,
            m.send_rate,
            m.scheduled,
            m.skipped_inflight,
            m.skipped_behind,
            m.skipped_offline
        );
        let _ = writeln!(
            o,
            "  acknowledged   {:<10} {:>10.1}/s   2101 (offline) {}   refused {}   unacked {}",
            m.acked, m.ack_rate, m.acked_offline, m.refused, m.unacked
        );
        let _ = writeln!(
            o,
            "  delivered      {:<10} {:>10.1}/s   live {}   by sync {}   ({:.1}/s offered)",
            m.delivered,
            m.delivery_rate,
            m.delivered_live,
            m.delivered_unread,
            m.offered_delivery_rate
        );
        let _ = writeln!(
            o,
            "  LOST           {:<10} of {} owed   duplicates {}   reordered {}   gaps {}   redelivered by sync {}   other runs' {}",
            m.lost,
            m.expected_deliveries,
            m.duplicates,
            m.reordered,
            m.gaps,
            m.redelivered,
            m.foreign
        );
        if m.owed_to_offline > 0 {
            let _ = writeln!(
                o,
                "  owed offline   {} (recipients offline at the end)",
                m.owed_to_offline
            );
        }
        for example in &m.lost_examples {
            let _ = writeln!(o, "  lost e.g.      {example}");
        }
        for behind in &m.behind {
            let _ = writeln!(o, "  BEHIND         {behind}");
        }
        let _ = writeln!(o, "  latency        {}", pct(&r.latency_ms));
        let _ = writeln!(o, "   from send     {}", pct(&r.latency_from_send_ms));
        let _ = writeln!(o, "  ack latency    {}", pct(&r.ack_latency_ms));
        let _ = writeln!(o, "  send lag       {}", pct(&r.send_lag_ms));
    }
    if let Some(s) = &r.storm {
        let _ = writeln!(o, "storm");
        let _ = writeln!(
            o,
            "  clients        {}   reconnected {}   resynced {}   messages meanwhile {}",
            s.clients, s.reconnected, s.resynced, s.messages_during_storm
        );
        let _ = writeln!(
            o,
            "  all back in    {}   all resynced in {}",
            opt(s.all_reconnected_s, " s"),
            opt(s.all_resynced_s, " s")
        );
        let _ = writeln!(o, "  drop → resync  {}", pct(&s.resync_ms));
    }
    let e = &r.errors;
    let codes: Vec<String> = e.by_code.iter().map(|(c, n)| format!("{c}: {n}")).collect();
    let _ = writeln!(
        o,
        "errors           {} of {} operations (rate {:.5})   frames by code: {}{}",
        e.total,
        e.operations,
        e.rate,
        if codes.is_empty() {
            "none".into()
        } else {
            codes.join(", ")
        },
        if e.retried > 0 {
            format!(" ({} retried, not counted)", e.retried)
        } else {
            String::new()
        }
    );
    if let Some(cpu) = &r.cpu {
        let _ = writeln!(o, "cpu (window {:.1} s)", cpu.report.window_s);
        for p in &cpu.report.processes {
            let _ = writeln!(
                o,
                "  {:<10} pid {:<8} {:>8} s  {:>6} cores  {:>6} of watched CPU  {:>5} in kernel",
                p.role,
                p.pid,
                p.cpu_s.map_or("?".into(), |c| format!("{c:.2}")),
                p.cores.map_or("?".into(), |c| format!("{c:.2}")),
                p.share
                    .map_or("?".into(), |s| format!("{:.1} %", s * 100.0)),
                match (p.kernel_s, p.cpu_s) {
                    (Some(k), Some(c)) if c > 0.0 => format!("{:.0} %", k / c * 100.0),
                    _ => "?".into(),
                },
            );
        }
        let costs: Vec<String> = [
            (cpu.gateway_us_per_message, "message"),
            (cpu.gateway_us_per_delivery, "delivery"),
            (cpu.gateway_us_per_connection, "handshake"),
        ]
        .iter()
        .filter_map(|(v, what)| v.map(|v| format!("{v:.2} µs per {what}")))
        .collect();
        if !costs.is_empty() {
            let _ = writeln!(o, "  gateway CPU    {}", costs.join("   "));
        }
    }
    for m in &r.memory {
        let _ = writeln!(
            o,
            "memory gateway pid {}: RSS {} → {}   {} per connection",
            m.pid,
            kib(m.rss_before_kib),
            kib(m.rss_loaded_kib),
            m.rss_per_connection_bytes
                .map_or("?".into(), |b| format!("{:.2} KiB", b / 1024.0)),
        );
    }
    let _ = writeln!(o, "load tool RSS    {}", kib(r.load_tool_rss_kib));
    if r.verdict.passed {
        let _ = writeln!(o, "verdict          PASS");
    } else {
        let _ = writeln!(o, "verdict          FAIL");
        for reason in &r.verdict.reasons {
            let _ = writeln!(o, "  missed         {reason}");
        }
    }
    out
}
