//! The envelope on the bus: what one publish carries to every receiving node.
//!
//! A delivery is the server frame already encoded, behind a fixed 19-byte header:
//! `1d<16 hex digits>\n<frame JSON>`: version `1`, kind `d`, the connection to skip (the
//! sender's device, `0` for none). Receiving nodes never parse the JSON: they slice the
//! frame out (no copy) and write the same bytes to every local socket.
//!
//! Control envelopes (`1c\n<JSON>`) carry membership changes to every node (on the control
//! topic), and, on a user's topic, the handshake by which the nodes holding that user learn
//! of each other (`DeviceJoined` / `Present`, see `Hub::announce`).

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use crate::ids::{ConnId, GroupId, UserId};

const HEADER: usize = 19;

/// A membership change every node applies to its local connections.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Control {
    /// `user` joined `group`: nodes holding the user start delivering the group to them.
    MemberAdded { group: GroupId, user: UserId },
    /// `user` left or was removed: nodes stop delivering the group to them at once.
    MemberRemoved { group: GroupId, user: UserId },
    /// The group is gone.
    GroupDeleted { group: GroupId },
    /// Node `node` now holds a device of `user` (its first there): a node already holding
    /// the user copies the user's sends to it from now on, and answers `Present`.
    DeviceJoined { user: UserId, node: u64 },
    /// The answer to `DeviceJoined` from a node holding `user`, addressed to node `to`.
    Present { user: UserId, to: u64 },
}

/// A decoded envelope.
#[derive(Debug, Clone, PartialEq)]
pub enum Envelope {
    /// Write `frame` to the topic's local connections except `skip`.
    Deliver { skip: Option<ConnId>, frame: Bytes },
    /// Apply a membership change.
    Control(Control),
}

impl Envelope {
    /// Encodes a delivery of `frame`, skipping connection `skip`.
    pub fn deliver(skip: Option<ConnId>, frame: &str) -> Bytes {
        let mut buf = BytesMut::with_capacity(HEADER + frame.len());
        buf.put_slice(b"1d");
        // The 16 hex digits, most significant first, without a formatting allocation.
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let skip = skip.unwrap_or(0);
        for shift in (0..16).rev() {
            buf.put_u8(HEX[((skip >> (shift * 4)) & 15) as usize]);
        }
        buf.put_u8(b'\n');
        buf.put_slice(frame.as_bytes());
        buf.freeze()
    }

    /// Encodes a control message.
    pub fn control(control: &Control) -> Bytes {
        let mut buf = b"1c\n".to_vec();
        // Serialising a plain enum cannot fail.
        serde_json::to_writer(&mut buf, control).unwrap_or_default();
        Bytes::from(buf)
    }

    /// Decodes an envelope; `None` for anything malformed or of an unknown version.
    pub fn decode(payload: Bytes) -> Option<Envelope> {
        match payload.get(..2)? {
            b"1d" if payload.len() >= HEADER && payload[HEADER - 1] == b'\n' => {
                let hex = std::str::from_utf8(&payload[2..HEADER - 1]).ok()?;
                let skip = u64::from_str_radix(hex, 16).ok()?;
                Some(Envelope::Deliver {
                    skip: (skip != 0).then_some(skip),
                    frame: payload.slice(HEADER..),
                })
            }
            b"1c" if payload.get(2) == Some(&b'\n') => serde_json::from_slice(&payload[3..])
                .ok()
                .map(Envelope::Control),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deliver_round_trip() {
        let e = Envelope::deliver(Some(0xabc), r#"{"code":2000}"#);
        assert_eq!(&e[..HEADER], b"1d0000000000000abc\n");
        assert_eq!(
            Envelope::decode(e),
            Some(Envelope::Deliver {
                skip: Some(0xabc),
                frame: Bytes::from_static(br#"{"code":2000}"#)
            })
        );
        let e = Envelope::deliver(Some(0xfedc_ba98_7654_3210), "{}");
        assert_eq!(&e[..HEADER], b"1dfedcba9876543210\n");
        let e = Envelope::deliver(None, "{}");
        assert!(matches!(
            Envelope::decode(e),
            Some(Envelope::Deliver { skip: None, .. })
        ));
    }

    #[test]
    fn control_round_trip() {
        let c = Control::MemberRemoved {
            group: "g".into(),
            user: 3,
        };
        assert_eq!(
            Envelope::decode(Envelope::control(&c)),
            Some(Envelope::Control(c))
        );
    }

    #[test]
    fn presence_round_trip() {
        for c in [
            Control::DeviceJoined { user: 7, node: 9 },
            Control::Present { user: 7, to: 9 },
        ] {
            assert_eq!(
                Envelope::decode(Envelope::control(&c)),
                Some(Envelope::Control(c))
            );
        }
    }

    #[test]
    fn garbage_is_refused() {
        for bad in [
            &b""[..],
            b"1",
            b"2d0000000000000000\n{}",
            b"1dzz\n",
            b"1c\nnot json",
        ] {
            assert_eq!(Envelope::decode(Bytes::copy_from_slice(bad)), None);
        }
    }
}
