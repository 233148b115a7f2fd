//! The load tool against a real gateway: a tiny `private` run of the real `chat-load`
//! binary must pass, with messages delivered and none lost.

use std::path::PathBuf;
use std::time::Duration;

use crate::support::app::SECRET;
use crate::support::{Backend, TestApp};

/// Names the `chat-load` binary to run instead of the one built next to this test.
const BIN_VAR: &str = "CHAT_LOAD_BIN";

/// The built `chat-load` binary. It belongs to another package of the workspace (the member
/// crate crates/chat-load), so cargo does not hand its path to these tests as it does
/// for the gateway's own binaries: it is looked for where cargo puts it for the profile this
/// test was built with, next to the `deps` directory that holds this test executable.
fn chat_load_bin() -> PathBuf {
    if let Some(path) = std::env::var_os(BIN_VAR) {
        return PathBuf::from(path);
    }
    let test = std::env::current_exe().expect("the test executable's path");
    let profile_dir = test
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test executable lives in target/<profile>/deps");
    let bin = profile_dir.join(format!("chat-load{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "{} is missing: run the tests with `cargo test --workspace` (which \
         builds it for chat-load's own tests; ./scripts/test does), build it with `cargo build \
         -p chat-load` in the same profile, or name a binary in {BIN_VAR}",
        bin.display()
    );
    bin
}

/// Runs the real `chat-load` binary against `app`: a tiny `private` run, with the gateway's
/// secret or without one; its exit status must be success. The JSON report and stdout.
async fn private_run(app: &TestApp, secret: Option<&str>) -> (serde_json::Value, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let json = dir.path().join("report.json");
    let mut command = tokio::process::Command::new(chat_load_bin());
    command
        .arg("--url")
        .arg(app.ws_url())
        .arg("--json")
        .arg(&json)
        .args(["--quiet", "--threads", "1", "--drain", "5s"])
        .args([
            "private",
            "--pairs",
            "3",
            "--rate",
            "30",
            "--duration",
            "2s",
        ])
        .env_remove("CHAT_LOAD_JWT_SECRET")
        .kill_on_drop(true);
    if let Some(secret) = secret {
        command.env("CHAT_LOAD_JWT_SECRET", secret);
    }
    let output = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("chat-load finished within 60 s")
        .expect("chat-load started");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "chat-load failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("the JSON report"))
            .expect("the report is JSON");
    (report, stdout)
}

/// What a passing tiny run reports.
fn assert_all_delivered(report: &serde_json::Value, stdout: &str) {
    let messages = &report["messages"];
    assert_eq!(messages["lost"], 0, "{report:#}");
    assert_eq!(messages["duplicates"], 0, "{report:#}");
    assert!(messages["sent"].as_u64().unwrap_or(0) > 0, "{report:#}");
    assert!(
        messages["delivered"].as_u64().unwrap_or(0) > 0,
        "{report:#}"
    );
    assert_eq!(messages["acked"], messages["sent"], "{report:#}");
    assert_eq!(report["connections"]["established"], 6, "{report:#}");
    assert_eq!(report["verdict"]["passed"], true, "{report:#}");
    assert!(stdout.contains("verdict          PASS"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_run_delivers_everything() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (report, stdout) = private_run(&app, Some(SECRET)).await;
    assert_all_delivered(&report, &stdout);
}

/// Without a secret, the tool fetches its tokens from a gateway in dev mode (a node on
/// loopback starts so): the zero-configuration gateway can be load-tested as it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_secret_the_run_uses_the_gateways_dev_tokens() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    assert!(
        app.settings.dev_tokens(),
        "a loopback test node has dev tokens"
    );
    let (report, stdout) = private_run(&app, None).await;
    assert_all_delivered(&report, &stdout);
}

/// An empty `CHAT_LOAD_JWT_SECRET` is no secret: the run uses dev tokens too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_secret_counts_as_none() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (report, stdout) = private_run(&app, Some("")).await;
    assert_all_delivered(&report, &stdout);
}
