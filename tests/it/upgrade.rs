//! Upgrades: a node refuses to start on a schema newer than it knows (an old image started
//! after a newer one migrated), rather than run on tables it may misread.

use chat_gateway::Application;

use crate::support::Backend;
use crate::support::app::{execute_sql, test_settings};

async fn refuses_a_newer_schema(backend: Backend) {
    let (settings, _dir) = test_settings(backend).await;
    let url = settings.storage.url.expose().to_string();
    drop(
        Application::build(settings.clone())
            .await
            .expect("a first start migrates"),
    );
    // What a newer release's migration leaves behind.
    execute_sql(
        &url,
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (9999, 'from a newer release', 1, X'00', 0)",
    )
    .await;
    let refused = Application::build(settings).await.err().expect("refused");
    let problem = format!("{refused:#}");
    assert!(problem.contains("9999"), "{problem}");
}

crate::on_both_backends!(refuses_a_newer_schema);
