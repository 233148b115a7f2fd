//! The WebSocket side: the authenticated upgrade, each connection's reader and writer, and
//! the outbound side between the hub and a socket, the framing and the shared TCP socket.

mod connection;
pub mod flusher;
pub mod frame;
mod handler;
pub mod outbox;
pub mod socket;

pub use handler::ws_handler;
