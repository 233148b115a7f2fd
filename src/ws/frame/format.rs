//! The frame format, as both ends write and read it: opcodes, the header, masking and the
//! close frame's payload.

use bytes::Bytes;

/// Frame opcodes.
pub mod opcode {
    /// Continues a fragmented message.
    pub const CONTINUATION: u8 = 0x0;
    /// A text message (UTF-8).
    pub const TEXT: u8 = 0x1;
    /// A binary message.
    pub const BINARY: u8 = 0x2;
    /// Close.
    pub const CLOSE: u8 = 0x8;
    /// Ping.
    pub const PING: u8 = 0x9;
    /// Pong.
    pub const PONG: u8 = 0xA;
}

/// The longest header the server writes (no mask: 2 + 8 bytes).
pub const MAX_HEADER: usize = 10;
/// The longest header of a client frame: the server's longest, then 4 bytes of masking key.
pub const MAX_CLIENT_HEADER: usize = MAX_HEADER + 4;

/// The header of a final, unmasked (server) frame of `opcode` carrying `len` bytes: the
/// buffer and how many of its bytes are the header.
pub fn header(opcode: u8, len: usize) -> ([u8; MAX_HEADER], usize) {
    let mut head = [0u8; MAX_HEADER];
    head[0] = 0x80 | opcode;
    let used = if len < 126 {
        head[1] = len as u8;
        2
    } else if len <= u16::MAX as usize {
        head[1] = 126;
        head[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        4
    } else {
        head[1] = 127;
        head[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        10
    };
    (head, used)
}

/// Appends a whole frame to `out`: `fin` says whether it ends its message; with a `mask`
/// (as a client sends) the header carries the key and the payload goes out masked, without
/// one (as the server sends) it goes out as is. The server's own writes build just the
/// header (`header`); this is for the load tool's frames and for tests.
pub fn encode(out: &mut Vec<u8>, fin: bool, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) {
    let (mut head, used) = header(opcode, payload.len());
    if !fin {
        head[0] &= 0x7F;
    }
    out.reserve(MAX_CLIENT_HEADER + payload.len());
    let Some(mask) = mask else {
        out.extend_from_slice(&head[..used]);
        out.extend_from_slice(payload);
        return;
    };
    head[1] |= 0x80;
    out.extend_from_slice(&head[..used]);
    out.extend_from_slice(&mask);
    let start = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[start..], mask);
}

/// The fixed part of a frame's header, as both ends read it (the load tool too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// The last frame of its message.
    pub fin: bool,
    /// What the frame is (`opcode`).
    pub opcode: u8,
    /// A masking key follows the length (client frames).
    pub masked: bool,
    /// The payload's length.
    pub len: u64,
    /// Bytes of header before the masking key: 2, 4 or 10.
    pub size: usize,
}

/// Reads the header at the start of `b`; `None` until its length bytes have arrived.
/// Refuses reserved bits (no extension is negotiated) and a 64-bit length with its top bit
/// set, naming the rule.
pub fn parse_head(b: &[u8]) -> Result<Option<Head>, &'static str> {
    if b.len() < 2 {
        return Ok(None);
    }
    if b[0] & 0x70 != 0 {
        return Err("reserved bits set, but no extension was negotiated");
    }
    let (len, size) = match b[1] & 0x7F {
        126 if b.len() < 4 => return Ok(None),
        126 => (u64::from(u16::from_be_bytes([b[2], b[3]])), 4),
        127 if b.len() < 10 => return Ok(None),
        127 => {
            let len = u64::from_be_bytes(b[2..10].try_into().expect("8 bytes"));
            if len >> 63 != 0 {
                return Err("frame length has its top bit set");
            }
            (len, 10)
        }
        short => (u64::from(short), 2),
    };
    Ok(Some(Head {
        fin: b[0] & 0x80 != 0,
        opcode: b[0] & 0x0F,
        masked: b[1] & 0x80 != 0,
        len,
        size,
    }))
}

/// The payload of a close frame: the code, then the reason (cut to fit the 125-byte limit
/// of a control frame, on a character boundary).
pub fn close_payload(code: u16, reason: &str) -> Bytes {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = Vec::with_capacity(2 + end);
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    payload.into()
}

/// XORs `data` with a masking key: unmasks a client frame's payload (and masks one, for a
/// client: the load tool uses it too).
pub fn apply_mask(data: &mut [u8], mask: [u8; 4]) {
    let wide = u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ]);
    let mut chunks = data.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let word = u64::from_ne_bytes((&*chunk).try_into().expect("8 bytes")) ^ wide;
        chunk.copy_from_slice(&word.to_ne_bytes());
    }
    for (i, byte) in chunks.into_remainder().iter_mut().enumerate() {
        *byte ^= mask[i % 4];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_use_the_shortest_length() {
        assert_eq!(header(opcode::TEXT, 5).0[..2], [0x81, 5]);
        let (head, used) = header(opcode::TEXT, 300);
        assert_eq!(head[..used], [0x81, 126, 1, 44]);
        let (head, used) = header(opcode::BINARY, 70_000);
        assert_eq!(head[..used], [0x82, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]);
        assert_eq!(header(opcode::PING, 0).0[..2], [0x89, 0]);
    }

    #[test]
    fn encoded_frames_read_back() {
        for len in [0, 5, 125, 126, 65_535, 65_536] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            for (fin, mask) in [(true, None), (false, Some([0x12, 0x34, 0x56, 0x78]))] {
                let mut out = vec![0xEE];
                encode(&mut out, fin, opcode::TEXT, &payload, mask);
                let frame = &out[1..];
                let head = parse_head(frame).unwrap().unwrap();
                let expected = Head {
                    fin,
                    opcode: opcode::TEXT,
                    masked: mask.is_some(),
                    len: len as u64,
                    size: head.size,
                };
                assert_eq!(head, expected, "len {len}");
                let mut body = frame[head.size..].to_vec();
                if let Some(mask) = mask {
                    assert_eq!(body[..4], mask);
                    body.drain(..4);
                    apply_mask(&mut body, mask);
                }
                assert_eq!(body, payload, "len {len}");
            }
        }
    }

    #[test]
    fn close_payload_fits_a_control_frame() {
        assert_eq!(&close_payload(1000, "")[..], &[3, 232]);
        let long = "é".repeat(100);
        let payload = close_payload(1009, &long);
        assert!(payload.len() <= 125);
        assert!(std::str::from_utf8(&payload[2..]).is_ok());
    }

    #[test]
    fn unmask_matches_the_bytewise_definition() {
        let mask = [1, 2, 3, 250];
        for len in 0..40 {
            let data: Vec<u8> = (0..len as u8).collect();
            let mut fast = data.clone();
            apply_mask(&mut fast, mask);
            let slow: Vec<u8> = data
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ mask[i % 4])
                .collect();
            assert_eq!(fast, slow);
        }
    }
}
