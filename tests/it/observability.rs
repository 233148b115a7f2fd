//! What a node tells Prometheus: the histograms move under traffic, and every metric the
//! shipped alerts, dashboard and autoscaling rule name is one the node exports.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use crate::support::client::WAIT;
use crate::support::{Backend, Client, TestApp, eventually};

/// The value of one sample (`name` with its labels, as printed) in an exposition.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_histograms_move_under_traffic() {
    let app = TestApp::spawn_with(Backend::MySql, |s| {
        s.server.metrics_bind = Some("127.0.0.1:0".parse().unwrap());
        // The sweep samples the outbound queues: every connection once a second.
        s.server.ping_interval = Duration::from_secs(1);
    })
    .await;
    let before = app.metrics().await;
    for series in [
        "chat_ack_seconds_count",
        "chat_publish_seconds_count",
        "chat_delivery_lag_seconds_count",
    ] {
        assert_eq!(sample(&before, series), 0.0, "{series}");
    }
    // The batch histograms are the process's (other tests' nodes write too).
    let batches = sample(&before, "chat_store_batch_seconds_count");
    let mut alice = Client::connect(&app, 1).await;
    let mut bob = Client::connect(&app, 2).await;
    // A conversation (so the stranger limit stays out of it): 20 messages.
    let sent = 20;
    for i in 0..sent / 2 {
        alice.stored(2, &format!("to bob {i}")).await;
        assert_eq!(bob.expect(2000).await["content"], format!("to bob {i}"));
        bob.stored(1, &format!("to alice {i}")).await;
        assert_eq!(alice.expect(2000).await["content"], format!("to alice {i}"));
    }
    drop(bob);
    app.wait_offline(2, 1).await;
    let after = app.metrics().await;
    assert_eq!(sample(&after, "chat_ack_seconds_count"), sent as f64);
    assert!(sample(&after, "chat_ack_seconds_sum") > 0.0);
    // Every acknowledgement took less than 16 s: all in the buckets below +Inf.
    assert_eq!(
        sample(&after, "chat_ack_seconds_bucket{le=\"16.384\"}"),
        sent as f64
    );
    assert!(sample(&after, "chat_publish_seconds_count") >= sent as f64);
    assert_eq!(
        sample(&after, "chat_delivery_lag_seconds_count"),
        sent as f64
    );
    assert!(sample(&after, "chat_store_batch_seconds_count") > batches);
    assert!(sample(&after, "chat_store_batch_messages_sum") >= sent as f64);
    assert_eq!(sample(&after, "chat_messages_stored_total"), sent as f64);
    assert_eq!(sample(&after, "chat_connections"), 1.0);
    assert_eq!(
        sample(&after, "chat_connection_states{state=\"open\"}"),
        1.0
    );
    assert_eq!(sample(&after, "chat_ready"), 1.0);
    assert_eq!(sample(&after, "chat_draining"), 0.0);
    assert_eq!(sample(&after, "chat_bus_connected"), 1.0);
    assert_eq!(
        sample(&after, "chat_closes_total{code=\"1000\",reason=\"ended\"}"),
        1.0
    );
    assert!(sample(&after, "process_open_fds") > 0.0);
    assert!(sample(&after, "process_max_fds") >= sample(&after, "process_open_fds"));
    assert!(sample(&after, "process_resident_memory_bytes") > 1e6);
    assert!(after.contains("chat_build_info{version=\""), "{after}");
    // alice's queue, sampled by the sweep within a ping interval.
    eventually(WAIT, "the outbound queue sampled", async || {
        let text = app.metrics().await;
        let sampled = sample(&text, "chat_outbound_queue_frames_count");
        if sampled > 0.0 { Ok(()) } else { Err(sampled) }
    })
    .await;
}

/// The sample names an exposition can hold: every sample printed, and for each family
/// declared the names its type gives its samples (a family with no series yet prints
/// none).
fn exported(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        if let Some(declared) = line.strip_prefix("# TYPE ") {
            let mut parts = declared.split_whitespace();
            let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
                continue;
            };
            let suffixes: &[&str] = match kind {
                "counter" => &["_total"],
                "histogram" => &["_bucket", "_count", "_sum"],
                "info" => &["_info"],
                _ => &[""],
            };
            names.extend(suffixes.iter().map(|s| format!("{name}{s}")));
        } else if !line.starts_with('#') {
            let name = line.split(['{', ' ']).next().unwrap_or_default();
            names.insert(name.to_string());
        }
    }
    names
}

/// The metric names (`chat_…`, `process_…`) written anywhere in `text`.
fn named_in(text: &str) -> BTreeSet<String> {
    let is_name = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_';
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find(|c: char| c.is_ascii_lowercase()) {
        let preceded = rest[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        let word: String = rest[at..].chars().take_while(|&c| is_name(c)).collect();
        if !preceded && (word.starts_with("chat_") || word.starts_with("process_")) {
            names.insert(word.clone());
        }
        rest = &rest[at + word.len().max(1)..];
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_alerts_and_dashboard_name_is_exported() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let mut alice = Client::connect(&app, 1).await;
    alice.stored(2, "hello").await;
    // A closed connection, so the close counters have a series.
    drop(Client::connect(&app, 3).await);
    app.wait_offline(3, 1).await;
    // Counted once the connection's task has finished closing, a little after it is offline.
    let text = crate::support::eventually(
        std::time::Duration::from_secs(10),
        "the close counted",
        async || {
            let text = app.metrics().await;
            if text.contains("chat_closes_total{") {
                Ok(text)
            } else {
                Err(())
            }
        },
    )
    .await;
    let exported = exported(&text);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/monitoring");
    let files = [
        "rules/chat-gateway.rules.yaml",
        "prometheusrule.yaml",
        "grafana/chat-gateway.json",
        "prometheus-adapter.yaml",
    ];
    let mut checked = 0;
    for file in files {
        let text = std::fs::read_to_string(root.join(file)).expect(file);
        let named = named_in(&text);
        assert!(!named.is_empty(), "{file} names no metric");
        let missing: Vec<_> = named.difference(&exported).collect();
        assert!(
            missing.is_empty(),
            "{file} names metrics the node does not export: {missing:?}\nexported: {exported:?}"
        );
        checked += named.len();
    }
    assert!(checked > 20, "{checked}");
}

#[test]
fn names_are_found_as_words() {
    let text = "rate(chat_ack_seconds_bucket[5m]) / process_max_fds, xchat_no, Chat_no chat_closes_total{code}";
    let found: Vec<_> = named_in(text).into_iter().collect();
    assert_eq!(
        found,
        [
            "chat_ack_seconds_bucket",
            "chat_closes_total",
            "process_max_fds"
        ]
    );
}
