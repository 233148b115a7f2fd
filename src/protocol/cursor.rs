//! History cursors: "now", a message id, an RFC 3339 time or unix milliseconds, all reduced
//! to one exclusive upper bound on message ids (UUIDv7 ids sort by time).

use uuid::Uuid;

/// An exclusive upper bound: a page holds messages whose id sorts strictly below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor(pub Uuid);

impl Cursor {
    /// The cursor meaning "now": everything stored so far.
    pub const NOW: Cursor = Cursor(Uuid::max());

    /// Parses a client's cursor: empty, a message id, RFC 3339, or unix milliseconds.
    pub fn parse(text: &str) -> Result<Cursor, String> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(Cursor::NOW);
        }
        if let Ok(id) = Uuid::try_parse(text) {
            return Ok(Cursor(id));
        }
        if text.bytes().all(|b| b.is_ascii_digit()) {
            let ms: u64 = text
                .parse()
                .map_err(|_| format!("cursor {text:?} is out of range"))?;
            return Ok(Cursor::at_millis(ms));
        }
        match chrono::DateTime::parse_from_rfc3339(text) {
            Ok(t) if t.timestamp_millis() >= 0 => {
                Ok(Cursor::at_millis(t.timestamp_millis() as u64))
            }
            _ => Err(format!(
                "content must be a cursor: empty, a message id, an RFC 3339 time or unix milliseconds (got {text:?})"
            )),
        }
    }

    /// The smallest UUIDv7 of millisecond `ms`: every message stored at `ms` or later sorts
    /// at or above it, every earlier one below.
    pub fn at_millis(ms: u64) -> Cursor {
        if ms >= 1 << 48 {
            return Cursor::NOW;
        }
        let mut bytes = [0u8; 16];
        bytes[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
        bytes[6] = 0x70;
        bytes[8] = 0x80;
        Cursor(Uuid::from_bytes(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::millis_of;

    #[test]
    fn cursors_of_every_form() {
        assert_eq!(Cursor::parse("").unwrap(), Cursor::NOW);
        let id = Uuid::now_v7();
        assert_eq!(Cursor::parse(&id.to_string()).unwrap(), Cursor(id));
        let at = Cursor::parse("1700000000000").unwrap();
        assert_eq!(millis_of(&at.0), 1_700_000_000_000);
        assert_eq!(Cursor::parse("2023-11-14T22:13:20Z").unwrap(), at);
        assert!(Cursor::parse("yesterday").is_err());
    }

    #[test]
    fn time_bound_sorts_between_messages() {
        let id = Uuid::now_v7();
        let ms = millis_of(&id) as u64;
        assert!(Cursor::at_millis(ms).0 <= id);
        assert!(Cursor::at_millis(ms + 1).0 > id);
    }
}
