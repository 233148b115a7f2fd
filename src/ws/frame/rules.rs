//! The rules of RFC 6455 a frame must keep, judged from its header and the message in
//! progress; both ends apply them: the server to client frames, the load tool to server
//! frames.

use super::format::{Head, opcode};

/// A frame that breaks the rules: the connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Breaks RFC 6455; the text names the rule (close 1002).
    #[error("protocol error: {0}")]
    Protocol(&'static str),
    /// A message over the size limit (close 1009).
    #[error("message over the size limit")]
    TooBig,
    /// A text message that is not UTF-8 (close 1007).
    #[error("text message is not UTF-8")]
    BadUtf8,
}

/// Checks a frame from its header: a control frame is whole and at most 125 bytes, a
/// continuation continues a fragmented message (`partial`: the bytes so far of the one in
/// progress, if any) and a new message waits for its last fragment, the opcode is known,
/// and the message stays within `max_message` bytes. Masking, which depends on the side
/// the frame comes from, is the caller's to check.
#[inline]
pub fn check(head: &Head, partial: Option<u64>, max_message: usize) -> Result<(), FrameError> {
    match head.opcode {
        opcode::CLOSE | opcode::PING | opcode::PONG => {
            if !head.fin || head.len > 125 {
                return Err(FrameError::Protocol(
                    "control frames must be whole and at most 125 bytes",
                ));
            }
        }
        opcode::CONTINUATION if partial.is_none() => {
            return Err(FrameError::Protocol(
                "continuation frame without a message to continue",
            ));
        }
        opcode::TEXT | opcode::BINARY if partial.is_some() => {
            return Err(FrameError::Protocol(
                "new message before the last fragment of the previous one",
            ));
        }
        opcode::CONTINUATION | opcode::TEXT | opcode::BINARY => {
            if partial.unwrap_or(0).saturating_add(head.len) > max_message as u64 {
                return Err(FrameError::TooBig);
            }
        }
        _ => return Err(FrameError::Protocol("unknown opcode")),
    }
    Ok(())
}

/// The code a close frame's payload carries, if any: the payload is empty, or a 2-byte
/// code that may travel on the wire followed by a UTF-8 reason (RFC 6455 sections 5.5.1
/// and 7.4).
pub fn close_code(payload: &[u8]) -> Result<Option<u16>, FrameError> {
    match payload {
        [] => Ok(None),
        [_] => Err(FrameError::Protocol(
            "a close frame's payload is empty or starts with a 2-byte code",
        )),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            if !sendable(code) {
                return Err(FrameError::Protocol(
                    "a close code must be 1000-1003, 1007-1014 or 3000-4999",
                ));
            }
            if std::str::from_utf8(reason).is_err() {
                return Err(FrameError::BadUtf8);
            }
            Ok(Some(code))
        }
    }
}

/// Whether a close code may be sent in a close frame: the RFC's own codes but those reserved
/// for reporting (1004, 1005, 1006, 1015), the ones registered with IANA since (1012-1014),
/// and the ranges for libraries and applications (3000-4999).
fn sendable(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(fin: bool, opcode: u8, len: u64) -> Head {
        Head {
            fin,
            opcode,
            masked: true,
            len,
            size: 2,
        }
    }

    #[test]
    fn keeps_the_rules_of_fragments_control_frames_and_size() {
        let protocol = |rule| Err(FrameError::Protocol(rule));
        let control = "control frames must be whole and at most 125 bytes";
        assert_eq!(check(&head(true, opcode::PING, 125), None, 0), Ok(()));
        assert_eq!(
            check(&head(true, opcode::PING, 126), None, 1000),
            protocol(control)
        );
        assert_eq!(
            check(&head(false, opcode::CLOSE, 0), None, 1000),
            protocol(control)
        );
        // A control frame may come between the fragments of a message.
        assert_eq!(check(&head(true, opcode::PONG, 0), Some(10), 1000), Ok(()));
        assert_eq!(
            check(&head(true, opcode::CONTINUATION, 1), None, 1000),
            protocol("continuation frame without a message to continue")
        );
        assert_eq!(
            check(&head(false, opcode::BINARY, 1), Some(1), 1000),
            protocol("new message before the last fragment of the previous one")
        );
        assert_eq!(
            check(&head(true, 0x3, 0), None, 1000),
            protocol("unknown opcode")
        );
        assert_eq!(
            check(&head(true, 0xB, 0), None, 1000),
            protocol("unknown opcode")
        );
        // The size counts the fragments so far; exactly the limit is fine.
        assert_eq!(check(&head(true, opcode::TEXT, 1000), None, 1000), Ok(()));
        assert_eq!(
            check(&head(true, opcode::TEXT, 1001), None, 1000),
            Err(FrameError::TooBig)
        );
        assert_eq!(
            check(&head(true, opcode::CONTINUATION, 401), Some(600), 1000),
            Err(FrameError::TooBig)
        );
        assert_eq!(
            check(&head(false, opcode::TEXT, u64::MAX >> 1), None, usize::MAX),
            Ok(())
        );
    }

    #[test]
    fn a_close_payload_is_empty_or_starts_with_a_code() {
        assert_eq!(close_code(&[]), Ok(None));
        assert_eq!(close_code(&[0x03, 0xF4]), Ok(Some(1012)));
        assert_eq!(close_code(&[0x03, 0xE8, b'o', b'k']), Ok(Some(1000)));
        assert!(matches!(close_code(&[3]), Err(FrameError::Protocol(_))));
    }

    #[test]
    fn close_codes_that_may_not_travel_are_refused() {
        for code in [
            0u16, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535,
        ] {
            let payload = code.to_be_bytes();
            assert!(
                matches!(close_code(&payload), Err(FrameError::Protocol(_))),
                "{code}"
            );
        }
        for code in [
            1000u16, 1001, 1003, 1007, 1011, 1012, 1014, 3000, 4000, 4999,
        ] {
            assert_eq!(close_code(&code.to_be_bytes()), Ok(Some(code)));
        }
    }

    #[test]
    fn a_close_reason_must_be_utf8() {
        assert_eq!(close_code(&[0x03, 0xE8, 0xC3, 0xA9]), Ok(Some(1000)));
        assert_eq!(close_code(&[0x03, 0xE8, 0xC3]), Err(FrameError::BadUtf8));
        assert_eq!(
            close_code(&[0x03, 0xE8, 0xFF, b'x']),
            Err(FrameError::BadUtf8)
        );
    }
}
