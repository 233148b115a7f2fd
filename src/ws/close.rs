//! Why the server closes a connection, with the close code and reason each gets, and the
//! closing frames themselves: a 1001 frame that tells the client why, then the close frame.

use std::collections::VecDeque;
use std::time::Duration;
use tokio::net::TcpStream;

use super::frame;
use super::write::{Out, write_all};
use crate::protocol::codes::close;
use crate::protocol::server;

/// How long the closing frames may take to write.
const CLOSE_WRITE: Duration = Duration::from_secs(2);

/// Why the server closes a connection; the writer sends a 1001 frame with `reason()` and
/// then a close frame with `close_code()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The outbound queue overflowed.
    TooSlow,
    /// A newer connection of the same user replaced this one (device limit).
    Replaced,
    /// The node is shutting down.
    Draining,
    /// No frame or pong within the idle timeout.
    Idle,
    /// The client sent a frame larger than `server.max_frame_bytes`.
    TooBig,
    /// The client sent text that is not UTF-8.
    BadData,
    /// The client broke the WebSocket protocol; the text names the rule.
    Protocol(&'static str),
    /// The client broke a policy of the server (its frame rate, the time a message may stay
    /// incomplete, its token's expiry); the text names it.
    Policy(&'static str),
    /// The client closed or went away: nothing to explain.
    Ended,
}

impl CloseReason {
    /// The `reason` of the 1001 frame.
    pub fn reason(self) -> &'static str {
        match self {
            CloseReason::TooSlow => "too slow: outbound queue full; reconnect and sync",
            CloseReason::Replaced => "replaced by a newer connection of the same user",
            CloseReason::Draining => "server shutting down; reconnect",
            CloseReason::Idle => "idle timeout",
            CloseReason::TooBig => "frame larger than server.max_frame_bytes",
            CloseReason::BadData => "text is not valid UTF-8 (a text message or a close reason)",
            CloseReason::Protocol(rule) | CloseReason::Policy(rule) => rule,
            CloseReason::Ended => "",
        }
    }

    /// The WebSocket close code.
    pub fn close_code(self) -> u16 {
        match self {
            CloseReason::TooSlow => close::TRY_AGAIN_LATER,
            CloseReason::Replaced => close::POLICY,
            CloseReason::Draining => close::RESTART,
            CloseReason::Idle => close::NORMAL,
            CloseReason::TooBig => close::TOO_BIG,
            CloseReason::BadData => close::INVALID_DATA,
            CloseReason::Protocol(_) => close::PROTOCOL,
            CloseReason::Policy(_) => close::POLICY,
            CloseReason::Ended => close::NORMAL,
        }
    }

    /// A short name of the reason, for `chat_closes_total{reason}`.
    pub fn label(self) -> &'static str {
        match self {
            CloseReason::TooSlow => "too_slow",
            CloseReason::Replaced => "replaced",
            CloseReason::Draining => "draining",
            CloseReason::Idle => "idle",
            CloseReason::TooBig => "too_big",
            CloseReason::BadData => "bad_data",
            CloseReason::Protocol(_) => "protocol",
            CloseReason::Policy(_) => "policy",
            CloseReason::Ended => "ended",
        }
    }

    /// Whether the client is told why in a 1001 frame before the close frame: not for an
    /// idle timeout nor for a client that closed or went away.
    fn explained(self) -> bool {
        !matches!(self, CloseReason::Idle | CloseReason::Ended)
    }
}

/// Tells the client why (a 1001 frame), then sends the close frame with the matching code.
pub(super) async fn close_with(socket: &TcpStream, reason: CloseReason) {
    let mut frames = VecDeque::new();
    if reason.explained() {
        frames.push_back(Out::Text(server::closing(reason.reason()).into()));
    }
    frames.push_back(Out::Close(frame::close_payload(
        reason.close_code(),
        reason.reason(),
    )));
    let _ = tokio::time::timeout(CLOSE_WRITE, write_all(socket, &frames, 0)).await;
}

impl crate::metrics::CloseLabel for CloseReason {
    fn close_code(&self) -> u16 {
        CloseReason::close_code(*self)
    }

    fn label(&self) -> &'static str {
        CloseReason::label(*self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_explanations() {
        assert_eq!(CloseReason::TooSlow.close_code(), 1013);
        assert_eq!(CloseReason::Draining.close_code(), 1012);
        assert_eq!(CloseReason::TooBig.close_code(), 1009);
        assert_eq!(CloseReason::Protocol("rule").reason(), "rule");
        assert!(CloseReason::Replaced.explained());
        assert!(!CloseReason::Idle.explained());
        assert!(!CloseReason::Ended.explained());
    }
}
