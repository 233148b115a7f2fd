//! The WebSocket side: the authenticated upgrade, each connection's reader and writer, and
//! the outbound queue between the hub and a socket.

mod connection;
mod handler;
pub mod outbox;

pub use handler::ws_handler;
