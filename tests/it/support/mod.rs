//! The test harness: real services, the real server, a real WebSocket client.
#![allow(dead_code)] // each test module uses a different part of the harness

pub mod app;
pub mod backing;
pub mod client;
pub mod cluster;
pub mod eventually;
pub mod guarded;
pub mod jwks;
pub mod raw;
pub mod services;

pub use app::{Backend, TestApp, many_frames};
pub use backing::Backing;
pub use client::Client;
pub use eventually::{eventually, eventually_blocking};

/// Runs each named `async fn(Backend)` as two tests: `sqlite::name` and `mysql::name`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::support::Backend::Sqlite).await
                }
            )*
        }
        mod mysql {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::support::Backend::MySql).await
                }
            )*
        }
    };
}
