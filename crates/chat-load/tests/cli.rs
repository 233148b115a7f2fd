//! The chat-load command line from outside: its help, a usage error, and a run that cannot
//! start. (Runs against a real gateway are in the gateway's tests, tests/it/load_tool.rs,
//! which use the binary cargo builds for these tests.)

use std::process::{Command, Output};

fn chat_load(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chat-load"))
        .args(args)
        .env_remove("CHAT_LOAD_JWT_SECRET")
        .output()
        .expect("chat-load starts")
}

#[test]
fn help_names_every_scenario() {
    let out = chat_load(&["--help"]);
    assert!(out.status.success(), "{out:?}");
    let help = String::from_utf8_lossy(&out.stdout);
    for scenario in ["connect", "private", "group", "mixed", "storm"] {
        assert!(help.contains(scenario), "{scenario} missing from:\n{help}");
    }
}

#[test]
fn an_unknown_scenario_is_a_usage_error() {
    let out = chat_load(&["gossip"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("gossip"));
}

#[test]
fn no_gateway_is_a_run_that_cannot_start() {
    // Port 1 on loopback: nothing listens, the connection is refused at once.
    let out = chat_load(&[
        "--url",
        "ws://127.0.0.1:1/ws",
        "--quiet",
        "private",
        "--pairs",
        "1",
        "--duration",
        "1s",
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("dev-token endpoint did not answer"),
        "{stderr}"
    );
}
