//! The WebSocket transport (RFC 6455), knowing nothing of chat: the framing, the outbound
//! queue between the hub and a socket, the close reasons and codes, the writes (partial and
//! vectored), the flusher, the frame rate and the shared TCP socket.

pub mod close;
pub mod flusher;
pub mod frame;
pub mod outbox;
pub mod rate;
pub mod socket;
mod write;
