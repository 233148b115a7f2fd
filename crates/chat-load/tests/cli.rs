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
    for scenario in [
        "connect", "private", "group", "mixed", "storm", "run", "merge",
    ] {
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

#[test]
fn help_lists_the_thresholds() {
    let out = chat_load(&["--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--max-p99",
        "--max-p999",
        "--min-rate",
        "--max-lost",
        "--max-errors",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
    assert!(
        help.contains("--allow-skips") && help.contains("--workers"),
        "{help}"
    );
}

#[test]
fn bad_thresholds_are_refused_before_a_run() {
    let out = chat_load(&["--max-errors", "2", "private"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--max-errors is a fraction"));
    let out = chat_load(&["--max-p99", "fast", "private"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--max-p99"));
}

#[test]
fn a_bad_scenario_file_is_named_with_its_problem() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.toml");
    std::fs::write(&file, "scenario = \"private\"\n[private]\nspeed = 3\n").unwrap();
    let out = chat_load(&["run", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("s.toml") && stderr.contains("--speed"),
        "{stderr}"
    );

    let out = chat_load(&["run", "/nonexistent/s.toml"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("reading /nonexistent/s.toml"));
}

#[test]
fn merge_refuses_what_is_not_a_report() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("r.json");
    std::fs::write(&file, "{\"scenario\": \"private\"}").unwrap();
    let out = chat_load(&["merge", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("is not a chat-load JSON report"),
        "{stderr}"
    );
}
