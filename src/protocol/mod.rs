//! The wire protocol: client frames in, server frames out, codes, cursors.
//! docs/protocol.md is the public description of everything here.

pub mod client;
pub mod codes;
pub mod cursor;
pub mod server;

#[cfg(test)]
mod proptests;

pub use client::{ClientFrame, DecodeError};
pub use cursor::Cursor;
pub use server::Source;
