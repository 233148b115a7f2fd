use super::*;

struct Reason;

impl CloseLabel for Reason {
    fn close_code(&self) -> u16 {
        1013
    }
    fn label(&self) -> &'static str {
        "too_slow"
    }
}

#[test]
fn the_text_keeps_the_old_names_and_has_the_new_ones() {
    let metrics = Metrics::new();
    metrics.messages_stored.add(3);
    metrics.edge.stranger.inc();
    metrics.closed(Reason);
    metrics.ack.observe(Duration::from_millis(3));
    metrics.queued(5);
    store_batch_done(7, Duration::from_millis(2));
    let text = metrics.render(Snapshot {
        connections: 5,
        handshakes: 2,
        max_connections: 100,
        draining: true,
        ready: false,
        store_up: true,
        bus_up: false,
        bus: crate::bus::BusStats {
            resubscribes: 2,
            lagged: 7,
            slot_moves: 0,
        },
    });
    for line in [
        "chat_messages_stored_total 3",
        "chat_connections 5",
        "chat_max_connections 100",
        "chat_draining 1",
        "chat_ready 0",
        "chat_bus_connected 0",
        "chat_bus_resubscribes_total 2",
        "chat_bus_lagged_total 7",
        "chat_bus_slot_moves_total 0",
        "chat_edge_refusals_total{reason=\"stranger\"} 1",
        "chat_edge_refusals_total{reason=\"node_full\"} 0",
        "chat_closes_total{code=\"1013\",reason=\"too_slow\"} 1",
        "chat_connection_states{state=\"handshake\"} 2",
        "chat_dependency_up{dependency=\"bus\"} 0",
        "chat_ack_seconds_count 1",
        "chat_outbound_queue_frames_bucket{le=\"8.0\"} 1",
        "chat_ack_seconds_bucket{le=\"0.004\"} 1",
        "chat_store_batch_messages_count",
        "chat_store_batch_seconds_bucket",
        "chat_build_info{version=\"",
        "# TYPE process_cpu_seconds counter",
        "# TYPE process_open_fds gauge",
        "# EOF",
    ] {
        assert!(text.contains(line), "no {line:?} in\n{text}");
    }
}

#[test]
fn the_timestamp_of_a_frame() {
    assert_eq!(frame_ts(r#"{"code":2000,"ts":1733,"id":"x"}"#), Some(1733));
    assert_eq!(frame_ts(r#"{"content":"say \"ts\":5","ts": 42}"#), Some(42));
    assert_eq!(frame_ts(r#"{"code":2100}"#), None);
}

#[test]
fn process_readings_parse() {
    let stat = "1234 (chat gateway) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 7 0 1000 12345678 2000 18446744073709551615";
    let status = "Name:\tchat-gateway\nVmRSS:\t   20480 kB\nThreads:\t7\n";
    let boot = "cpu  1 2 3\nbtime 1700000000\n";
    let reading = process::parse(stat, status, boot).expect("a reading");
    assert_eq!(reading.cpu_seconds, 3.0);
    assert_eq!(reading.threads, 7);
    assert_eq!(reading.start_time_seconds, 1_700_000_010.0);
    assert_eq!(reading.resident_bytes, 20 * 1024 * 1024);
    let now = process::Reading::now().expect("/proc on Linux");
    assert!(now.open_fds > 0 && now.max_fds >= now.open_fds, "{now:?}");
}
