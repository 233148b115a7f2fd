//! Property tests of the frame format and the reader: any bytes at all are read without a
//! panic into frames or an error that names a rule, the same however they are split across
//! reads; any valid stream of masked client frames reads back as the messages it carries,
//! however it is split (fragments cut anywhere, even inside a UTF-8 character, with control
//! frames between them, every length encoding).

use bytes::Bytes;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;

use super::{
    FrameError, Head, Incoming, apply_mask, close_code, encode, header, opcode, parse_head,
    read_pieces,
};

/// Every rule a refused frame may name (FrameError::Protocol).
const RULES: [&str; 9] = [
    "reserved bits set, but no extension was negotiated",
    "frame length has its top bit set",
    "client frames must be masked",
    "control frames must be whole and at most 125 bytes",
    "continuation frame without a message to continue",
    "new message before the last fragment of the previous one",
    "unknown opcode",
    "a close frame's payload is empty or starts with a 2-byte code",
    "a close code must be 1000-1003, 1007-1014 or 3000-4999",
];

/// `bytes` cut at `cuts` (positions taken modulo its length, in any order): at least one
/// piece, empty pieces never.
fn split<'a>(bytes: &'a [u8], cuts: &[Index]) -> Vec<&'a [u8]> {
    if bytes.is_empty() {
        return vec![bytes];
    }
    let mut at: Vec<usize> = cuts.iter().map(|cut| cut.index(bytes.len() + 1)).collect();
    at.push(0);
    at.push(bytes.len());
    at.sort_unstable();
    at.dedup();
    at.windows(2).map(|w| &bytes[w[0]..w[1]]).collect()
}

/// What the reader may say about any input: messages within the limit, text that is
/// UTF-8, pings that fit a control frame, and errors that name a rule.
fn assert_sound(outcomes: &[Result<Incoming, FrameError>], max: usize) {
    for outcome in outcomes {
        match outcome {
            Ok(Incoming::Text(text)) => {
                assert!(text.len() <= max);
                assert!(std::str::from_utf8(text).is_ok());
            }
            Ok(Incoming::Binary(len)) => assert!(*len <= max),
            Ok(Incoming::Ping(payload)) => assert!(payload.len() <= 125),
            Ok(Incoming::Pong | Incoming::Close) => {}
            Err(FrameError::Protocol(rule)) => assert!(RULES.contains(rule), "{rule}"),
            Err(FrameError::TooBig | FrameError::BadUtf8) => {}
        }
    }
}

/// A data message: text or binary, its payload, and where its fragments are cut.
#[derive(Debug, Clone)]
struct Message {
    opcode: u8,
    payload: Vec<u8>,
    cuts: Vec<Index>,
    /// Control frames sent after its first fragment.
    controls: Vec<(u8, Vec<u8>)>,
    masks: Vec<[u8; 4]>,
}

fn payload() -> impl Strategy<Value = Vec<u8>> {
    // Mostly short, sometimes over the 16-bit length's edge (126) and, rarely, the 64-bit
    // one (65,536).
    prop_oneof![
        20 => vec(any::<u8>(), 0..200),
        4 => vec(any::<u8>(), 120..400),
        1 => vec(any::<u8>(), 65_530..65_700),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    let data = prop_oneof![
        (".{0,120}", prop::bool::weighted(0.04)).prop_map(|(text, big)| {
            let text: String = if big { text.repeat(600) } else { text };
            (opcode::TEXT, text.into_bytes())
        }),
        payload().prop_map(|payload| (opcode::BINARY, payload)),
    ];
    let control = (
        prop_oneof![Just(opcode::PING), Just(opcode::PONG)],
        vec(any::<u8>(), 0..=125),
    );
    (
        data,
        vec(any::<Index>(), 0..5),
        vec(control, 0..3),
        vec(any::<[u8; 4]>(), 1..4),
    )
        .prop_map(|((opcode, payload), cuts, controls, masks)| Message {
            opcode,
            payload,
            cuts,
            controls,
            masks,
        })
}

/// A valid client stream carrying `messages` (and a close frame at the end when given),
/// and what the reader must make of it.
fn stream(messages: &[Message], close: &Option<(u16, String)>) -> (Vec<u8>, Vec<Incoming>) {
    let mut bytes = Vec::new();
    let mut expected = Vec::new();
    for message in messages {
        let fragments = split(&message.payload, &message.cuts);
        let mask = |i: usize| Some(message.masks[i % message.masks.len()]);
        for (i, fragment) in fragments.iter().enumerate() {
            let op = if i == 0 {
                message.opcode
            } else {
                opcode::CONTINUATION
            };
            encode(&mut bytes, i + 1 == fragments.len(), op, fragment, mask(i));
            if i == 0 {
                for (j, (op, payload)) in message.controls.iter().enumerate() {
                    encode(&mut bytes, true, *op, payload, mask(j + 1));
                }
            }
        }
        let whole = match message.opcode {
            opcode::TEXT => Incoming::Text(Bytes::from(message.payload.clone())),
            _ => Incoming::Binary(message.payload.len()),
        };
        let controls = message.controls.iter().map(|(op, payload)| match *op {
            opcode::PING => Incoming::Ping(Bytes::from(payload.clone())),
            _ => Incoming::Pong,
        });
        // The control frames follow the first fragment: before the message when it has
        // more, after it when that was all of it.
        if fragments.len() > 1 {
            expected.extend(controls);
            expected.push(whole);
        } else {
            expected.push(whole);
            expected.extend(controls);
        }
    }
    if let Some((code, reason)) = close {
        let mut payload = code.to_be_bytes().to_vec();
        payload.extend_from_slice(reason.as_bytes());
        encode(
            &mut bytes,
            true,
            opcode::CLOSE,
            &payload,
            Some([9, 8, 7, 6]),
        );
        expected.push(Incoming::Close);
    }
    (bytes, expected)
}

fn close() -> impl Strategy<Value = Option<(u16, String)>> {
    let code = prop_oneof![1000..=1003u16, 1007..=1014u16, 3000..=4999u16];
    proptest::option::of(
        (code, "\\PC{0,30}").prop_filter("fits a control frame", |(_, r)| r.len() <= 123),
    )
}

/// Bytes that look like frames often enough to get past the first header check: valid
/// streams with some bytes changed, or anything at all.
fn mangled() -> impl Strategy<Value = Vec<u8>> {
    let valid = (vec(message(), 0..4), close()).prop_map(|(m, c)| stream(&m, &c).0);
    prop_oneof![
        vec(any::<u8>(), 0..600),
        (valid, vec((any::<Index>(), any::<u8>()), 1..6)).prop_map(|(mut bytes, changes)| {
            if !bytes.is_empty() {
                for (at, byte) in changes {
                    let i = at.index(bytes.len());
                    bytes[i] = byte;
                }
            }
            bytes
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_bytes_read_the_same_however_split(
        bytes in mangled(),
        cuts in vec(any::<Index>(), 0..12),
        max in prop_oneof![Just(1024usize), Just(64), Just(1 << 20)],
    ) {
        let whole = read_pieces([&bytes[..]], max);
        assert_sound(&whole, max);
        let pieces = split(&bytes, &cuts);
        prop_assert_eq!(&read_pieces(pieces.iter().copied(), max), &whole);
        // Byte by byte too, the hardest split.
        prop_assert_eq!(&read_pieces(bytes.chunks(1), max), &whole);
    }

    #[test]
    fn valid_streams_read_back_as_their_messages_however_split(
        messages in vec(message(), 0..6),
        close in close(),
        cuts in vec(any::<Index>(), 0..24),
    ) {
        let (bytes, expected) = stream(&messages, &close);
        let expected: Vec<Result<Incoming, FrameError>> = expected.into_iter().map(Ok).collect();
        let max = 1 << 20;
        prop_assert_eq!(&read_pieces([&bytes[..]], max), &expected);
        let pieces = split(&bytes, &cuts);
        prop_assert_eq!(&read_pieces(pieces.iter().copied(), max), &expected);
    }

    #[test]
    fn a_message_over_the_limit_is_refused_and_the_next_one_read(
        over in 1usize..3000,
        fragments in 1usize..6,
        ping_after in any::<Index>(),
    ) {
        // Whatever its fragments (and a ping between them), a message over the limit is
        // refused once the fragments so far exceed it, the rest of it is skipped, and the
        // message after it is read.
        let max = 1024;
        let payload = vec![b'a'; max + over];
        let size = payload.len().div_ceil(fragments);
        let chunks: Vec<&[u8]> = payload.chunks(size).collect();
        let ping_after = ping_after.index(chunks.len());
        let mut bytes = Vec::new();
        for (i, chunk) in chunks.iter().enumerate() {
            let op = if i == 0 { opcode::TEXT } else { opcode::CONTINUATION };
            encode(&mut bytes, i + 1 == chunks.len(), op, chunk, Some([1, 2, 3, 4]));
            if i == ping_after && i + 1 < chunks.len() {
                encode(&mut bytes, true, opcode::PING, b"p", Some([4, 3, 2, 1]));
            }
        }
        encode(&mut bytes, true, opcode::TEXT, b"next", Some([5, 6, 7, 8]));
        let outcomes = read_pieces([&bytes[..]], max);
        // Where the ping falls relative to the refusal depends on the sizes; drop it.
        let outcomes: Vec<_> = outcomes
            .into_iter()
            .filter(|o| !matches!(o, Ok(Incoming::Ping(_))))
            .collect();
        prop_assert_eq!(
            outcomes,
            vec![Err(FrameError::TooBig), Ok(Incoming::Text(Bytes::from_static(b"next")))]
        );
    }

    #[test]
    fn headers_read_back(op in 0u8..16, len in prop_oneof![0usize..300, 65_000usize..70_000], fin in any::<bool>(), mask in any::<[u8; 4]>()) {
        let (head, used) = header(op, len);
        let parsed = parse_head(&head[..used]).unwrap().unwrap();
        prop_assert_eq!(parsed, Head { fin: true, opcode: op, masked: false, len: len as u64, size: used });
        // A client frame's header: shortest length form, then the key.
        let payload = vec![0u8; len];
        let mut frame = Vec::new();
        encode(&mut frame, fin, op, &payload, Some(mask));
        let parsed = parse_head(&frame).unwrap().unwrap();
        prop_assert_eq!((parsed.fin, parsed.masked, parsed.len), (fin, true, len as u64));
        prop_assert_eq!(&frame[parsed.size..parsed.size + 4], &mask[..]);
        // Fewer bytes than the header: not yet.
        for cut in 0..parsed.size {
            prop_assert_eq!(parse_head(&frame[..cut]), Ok(None));
        }
    }

    #[test]
    fn masking_twice_is_the_identity(data in vec(any::<u8>(), 0..100), mask in any::<[u8; 4]>()) {
        let mut masked = data.clone();
        apply_mask(&mut masked, mask);
        for (i, (a, b)) in data.iter().zip(&masked).enumerate() {
            prop_assert_eq!(a ^ mask[i % 4], *b);
        }
        apply_mask(&mut masked, mask);
        prop_assert_eq!(masked, data);
    }

    #[test]
    fn close_payloads_are_judged_by_code_and_reason(payload in vec(any::<u8>(), 0..40)) {
        match close_code(&payload) {
            Ok(None) => prop_assert!(payload.is_empty()),
            Ok(Some(code)) => {
                prop_assert_eq!(code, u16::from_be_bytes([payload[0], payload[1]]));
                prop_assert!(matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999));
                prop_assert!(std::str::from_utf8(&payload[2..]).is_ok());
            }
            Err(FrameError::BadUtf8) => prop_assert!(std::str::from_utf8(&payload[2..]).is_err()),
            Err(FrameError::Protocol(rule)) => prop_assert!(RULES.contains(&rule)),
            Err(FrameError::TooBig) => prop_assert!(false, "a close payload is never too big"),
        }
    }
}
