//! The load tool against a real gateway: a tiny `private` run of the real `chat-load`
//! binary must pass, with messages delivered and none lost.

use std::time::Duration;

use crate::support::app::SECRET;
use crate::support::{Backend, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_run_delivers_everything() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let json = dir.path().join("report.json");
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_chat-load"))
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
        .env("CHAT_LOAD_JWT_SECRET", SECRET)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("chat-load finished within 60 s")
        .expect("chat-load started");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "chat-load failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("the JSON report"))
            .expect("the report is JSON");
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
