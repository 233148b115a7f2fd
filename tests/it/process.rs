//! A node on its machine: what it asks of the operating system at start-up (file
//! descriptors, the listen backlog).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::cluster::http_status;
use crate::support::guarded::{Guarded, Spawn};
use crate::support::services::{binary, free_port};
use crate::support::{Backend, TestApp, eventually_blocking};

/// The soft and hard "Max open files" of a process, from /proc.
fn open_files_limits(pid: u32) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("/proc limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("a Max open files line");
    let mut numbers = line
        .split_whitespace()
        .filter_map(|w| w.parse::<u64>().ok());
    let soft = numbers.next().expect("soft limit");
    let hard = numbers.next().expect("hard limit");
    (soft, hard)
}

/// Started with the usual low soft limit, a node raises it to the hard limit: each
/// connection holds a descriptor, and 1,024 would cap the node at about a thousand.
#[test]
fn a_node_raises_its_file_descriptor_limit_to_the_hard_limit() {
    let (_, hard) = open_files_limits(std::process::id());
    let start_soft = 256;
    assert!(
        hard > start_soft,
        "this machine's hard limit ({hard}) leaves nothing to raise"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let program = Path::new(env!("CARGO_BIN_EXE_chat-gateway"));
    let env = [
        ("CHAT__SERVER__BIND".into(), format!("127.0.0.1:{port}")),
        (
            "CHAT__STORAGE__URL".into(),
            format!("sqlite:{}/chat.db", dir.path().display()),
        ),
    ];
    // The shell lowers its soft limit; the gateway it starts inherits it.
    let setup = format!("ulimit -Sn {start_soft}");
    let spawn = Spawn {
        env: &env,
        setup: Some(&setup),
    };
    let node = Guarded::spawn_with(program, &[], &dir.path().join("gateway.log"), spawn);
    eventually_blocking(Duration::from_secs(20), "the gateway ready", || {
        http_status(port, "/health/ready") == Some(200)
    });
    assert_eq!(open_files_limits(node.pid()), (hard, hard));
}

/// The listening socket queues up to `net.core.somaxconn` connections (tokio's default,
/// 1,024, overflowed under handshake bursts: each dropped SYN costs its client a second).
#[tokio::test]
async fn the_listen_backlog_is_as_deep_as_the_kernel_allows() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let somaxconn: u32 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .expect("somaxconn")
        .trim()
        .parse()
        .expect("a number");
    // For a listening socket, `ss` shows the backlog as Send-Q.
    let out = Command::new(binary("ss", "iproute2"))
        .args(["-ltnH", &format!("sport = :{}", app.addr.port())])
        .output()
        .expect("running ss");
    let text = String::from_utf8_lossy(&out.stdout);
    let backlog: u32 = text
        .split_whitespace()
        .nth(2)
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no listening socket in {text:?}"));
    assert_eq!(backlog, somaxconn.min(65_535));
}
