//! The `chat-gateway` binary as a process: what it does for itself at start-up.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::cluster::http_status;
use crate::support::services::{free_port, wait_until};

/// The process, killed when the test ends (even when it fails).
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

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
    let program = env!("CARGO_BIN_EXE_chat-gateway");
    // `exec`: the shell's process becomes the gateway, with the lowered soft limit.
    let child = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -Sn {start_soft} && exec '{program}'"))
        .env("CHAT__SERVER__BIND", format!("127.0.0.1:{port}"))
        .env(
            "CHAT__STORAGE__URL",
            format!("sqlite:{}/chat.db", dir.path().display()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawning the gateway");
    let child = Killed(child);
    wait_until("the gateway", Duration::from_secs(20), || {
        http_status(port, "/health/ready") == Some(200)
    });
    assert_eq!(open_files_limits(child.0.id()), (hard, hard));
}
