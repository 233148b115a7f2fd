//! WebSocket framing (RFC 6455): the frame format both ends write and read, the rules a
//! frame must keep, and the server's incremental reader of client frames.
//!
//! The gateway frames its own sockets instead of going through a general WebSocket library,
//! for two reasons. Out: a delivery is written straight to an idle socket by whoever
//! delivers it (outbox.rs), with a header built on the stack in front of payload bytes that
//! every recipient shares, so a fan-out to 10,000 sockets wakes no task and copies nothing.
//! In: an idle connection waits for its socket to become readable holding no read buffer,
//! and a frame over the size limit is refused from its header, its payload discarded as it
//! arrives rather than buffered.
//!
//! The load tool (crates/chat-load) is the client side of the same framing: it builds and
//! checks its frames with the functions here rather than with a copy of them.
//!
//! No extension is negotiated, so every reserved bit must be zero.

mod format;
mod reader;
mod rules;

#[cfg(test)]
mod proptests;

pub use format::{
    Head, MAX_CLIENT_HEADER, MAX_HEADER, apply_mask, close_payload, encode, header, opcode,
    parse_head,
};
pub use reader::{FrameReader, Incoming, ReadError, read_pieces, read_ready};
pub use rules::{FrameError, check, close_code};
