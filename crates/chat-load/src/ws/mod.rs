//! The client side of WebSocket (RFC 6455), as small as the load tool needs: the upgrade
//! request and the check of its answer, masked client frames out, server frames in. The
//! names follow the server's `ws` module; the frame format and its rules are the server's
//! own (`chat_gateway::ws::frame`).
//!
//! The tool frames its own sockets instead of going through tungstenite so that a send is
//! one `send` system call made by whoever sends (no writer task to wake, no sink to poll),
//! and a read is one `recv` into a buffer shared by all the connections of a thread (an idle
//! connection holds no read buffer). No extension is negotiated: reserved bits must be zero.

pub mod frame;
pub mod upgrade;
