//! Identifiers: users (positive integers from the token's `sub`), groups (short strings),
//! messages (UUIDv7, time-ordered) and connections (unique across nodes).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use uuid::Uuid;

/// A user id: a positive integer, the `sub` of the user's token.
pub type UserId = i64;

/// A group id: 1 to 64 characters of `A-Z a-z 0-9 _ - . :`; a UUID unless the creator chose one.
pub type GroupId = Arc<str>;

/// Unix milliseconds encoded in a message id, a UUIDv7 (0 for ids of other versions).
pub fn millis_of(id: &Uuid) -> i64 {
    let b = id.as_bytes();
    i64::from_be_bytes([0, 0, b[0], b[1], b[2], b[3], b[4], b[5]])
}

/// Milliseconds since the Unix epoch, now.
pub fn millis_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Longest group id, in bytes.
pub const MAX_GROUP_ID: usize = 64;

/// Validates a group id, returning the reason when it is not one.
pub fn parse_group_id(s: &str) -> Result<GroupId, String> {
    if is_short_name(s, MAX_GROUP_ID) {
        Ok(GroupId::from(s))
    } else {
        Err(format!(
            "group_id must be 1 to {MAX_GROUP_ID} characters of letters, digits, '_', '-', '.', ':'"
        ))
    }
}

/// A device id, chosen by the client (the handshake's `?device_id=`): 1 to 64 characters
/// of `A-Z a-z 0-9 _ - . :`. The server remembers, per user and device, up to which message
/// the device confirmed receiving (per-device catch-up).
pub type DeviceId = Arc<str>;

/// Longest device id, in bytes.
pub const MAX_DEVICE_ID: usize = 64;

/// Validates a device id, returning the reason when it is not one.
pub fn parse_device_id(s: &str) -> Result<DeviceId, String> {
    if is_short_name(s, MAX_DEVICE_ID) {
        Ok(DeviceId::from(s))
    } else {
        Err(format!(
            "device_id must be 1 to {MAX_DEVICE_ID} characters of letters, digits, '_', '-', '.', ':'"
        ))
    }
}

/// 1 to `max` bytes of `A-Z a-z 0-9 _ - . :`.
fn is_short_name(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'))
}

/// A connection id, unique across the nodes of a deployment: a random per-process prefix in
/// the high 24 bits and a counter below, so a node can tell its own connections in an envelope.
pub type ConnId = u64;

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);
static NODE_PREFIX: std::sync::OnceLock<u64> = std::sync::OnceLock::new();

/// Allocates the next connection id of this process.
pub fn next_conn_id() -> ConnId {
    let prefix = *NODE_PREFIX.get_or_init(|| (rand::random::<u64>() & 0xFF_FFFF).max(1) << 40);
    prefix | (NEXT_CONN.fetch_add(1, Ordering::Relaxed) & ((1 << 40) - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_ids() {
        assert!(parse_group_id("team-42").is_ok());
        assert!(parse_group_id("0190a0c4-6a5e-7000-8000-000000000000").is_ok());
        assert!(parse_group_id("").is_err());
        assert!(parse_group_id("a b").is_err());
        assert!(parse_group_id(&"x".repeat(65)).is_err());
    }

    #[test]
    fn device_ids() {
        assert!(parse_device_id("phone-1").is_ok());
        assert!(parse_device_id("").is_err());
        assert!(parse_device_id("a/b").is_err());
        assert!(parse_device_id(&"d".repeat(65)).is_err());
    }

    #[test]
    fn conn_ids_are_distinct() {
        assert_ne!(next_conn_id(), next_conn_id());
    }
}
