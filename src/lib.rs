//! chat-gateway: a horizontally scalable WebSocket chat gateway.
//!
//! A node keeps only its own sockets (`hub`); every delivery goes through the `bus` (in
//! process, or Redis pub/sub between nodes); messages, read state, groups and follows live
//! in the `store` (SQLite or MySQL). docs/architecture.md draws the path of one message.

pub mod admission;
pub mod app;
pub mod auth;
pub mod bus;
pub mod chat;
pub mod fdlimit;
pub mod health;
pub mod healthcheck;
pub mod http;
pub mod hub;
pub mod ids;
pub mod limiter;
pub mod message;
pub mod metrics;
pub mod presence;
pub mod protocol;
pub mod push;
pub mod settings;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod ws;

pub use app::Application;
pub use settings::Settings;
