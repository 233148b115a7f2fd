//! Rebuild when a migration changes: `sqlx::migrate!` embeds migrations/ at compile time.
//! `CHAT_GIT_COMMIT` (set by the image build) becomes `chat_build_info{commit}`.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-env-changed=CHAT_GIT_COMMIT");
}
