//! Writing frames to a non-blocking socket: a batch of queued frames in one system call,
//! and the arithmetic of where a partial write leaves off (inside a header, inside a
//! payload, or between two frames).

use bytes::Bytes;
use std::collections::VecDeque;
use std::io::{self, IoSlice};
use tokio::net::TcpStream;

use super::frame::{self, opcode};

/// One frame to write.
pub(super) enum Out {
    /// A text frame; the payload may be shared with every other recipient.
    Text(Bytes),
    /// A pong answering the client's ping, echoing its payload.
    Pong(Bytes),
    /// A ping the sweeper asked for.
    Ping,
    /// The close frame, last.
    Close(Bytes),
}

impl Out {
    fn opcode(&self) -> u8 {
        match self {
            Out::Text(_) => opcode::TEXT,
            Out::Pong(_) => opcode::PONG,
            Out::Ping => opcode::PING,
            Out::Close(_) => opcode::CLOSE,
        }
    }

    pub(super) fn payload(&self) -> &[u8] {
        match self {
            Out::Text(payload) | Out::Pong(payload) | Out::Close(payload) => payload,
            Out::Ping => &[],
        }
    }

    /// The frame's header (unmasked, as a server sends it) and how many of its bytes count.
    pub(super) fn header(&self) -> ([u8; frame::MAX_HEADER], usize) {
        frame::header(self.opcode(), self.payload().len())
    }

    /// Header and payload bytes together.
    fn len(&self) -> usize {
        self.header().1 + self.payload().len()
    }
}

/// Writes `frames` (the first with `skip` bytes already written), batching up to `BATCH`
/// frames into one vectored write.
pub(super) async fn write_all(
    socket: &TcpStream,
    frames: &VecDeque<Out>,
    mut skip: usize,
) -> io::Result<()> {
    let mut next = 0;
    while next < frames.len() {
        socket.writable().await?;
        match send_some(socket, frames, next, skip) {
            Ok(n) => (next, skip) = advance(frames, next, skip, n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Frames gathered into one write at most.
const BATCH: usize = 32;

/// The headers of one batch, on the stack.
type Heads = [([u8; frame::MAX_HEADER], usize); BATCH];

/// Writes frames from `frames[next]` on (the first `skip` bytes of it already written) in
/// one non-blocking system call; returns the bytes the socket took.
pub(super) fn send_some(
    socket: &TcpStream,
    frames: &VecDeque<Out>,
    next: usize,
    skip: usize,
) -> io::Result<usize> {
    let mut heads = [([0u8; frame::MAX_HEADER], 0usize); BATCH];
    let mut slices = [IoSlice::new(&[]); 2 * BATCH];
    let used = gather(frames, next, skip, &mut heads, &mut slices);
    try_send(socket, &slices[..used])
}

/// Lays out what remains to write of up to `BATCH` frames from `frames[next]` on (the first
/// `skip` bytes of it already written) as header and payload slices, two per frame; returns
/// how many slices it filled.
fn gather<'a>(
    frames: &'a VecDeque<Out>,
    next: usize,
    skip: usize,
    heads: &'a mut Heads,
    slices: &mut [IoSlice<'a>; 2 * BATCH],
) -> usize {
    let end = (next + BATCH).min(frames.len());
    for (head, out) in heads.iter_mut().zip(frames.range(next..end)) {
        *head = out.header();
    }
    let heads: &'a Heads = heads;
    for (i, out) in frames.range(next..end).enumerate() {
        let (head, used) = &heads[i];
        let (mut head, mut payload) = (&head[..*used], out.payload());
        if i == 0 {
            let from_head = skip.min(head.len());
            head = &head[from_head..];
            payload = &payload[skip - from_head..];
        }
        slices[2 * i] = IoSlice::new(head);
        slices[2 * i + 1] = IoSlice::new(payload);
    }
    2 * (end - next)
}

/// Where writing stands after the socket took `n` more bytes: the next frame and how much
/// of it is written.
pub(super) fn advance(
    frames: &VecDeque<Out>,
    mut next: usize,
    mut skip: usize,
    mut n: usize,
) -> (usize, usize) {
    while next < frames.len() {
        let left = frames[next].len() - skip;
        if n < left {
            return (next, skip + n);
        }
        n -= left;
        skip = 0;
        next += 1;
    }
    (next, 0)
}

/// Writes as much of `slices` as the socket takes now, without waiting. Up to 4 KiB is
/// gathered on the stack and written with one `send`: for small frames that is cheaper in
/// the kernel than `writev`, which goes through the file layer (see docs/performance.md,
/// item 16).
pub(super) fn try_send(socket: &TcpStream, slices: &[IoSlice<'_>]) -> io::Result<usize> {
    const GATHER: usize = 4096;
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(Vec::with_capacity(GATHER));
    }
    let total: usize = slices.iter().map(|s| s.len()).sum();
    if total > GATHER {
        return socket.try_write_vectored(slices);
    }
    BUF.with_borrow_mut(|buf| {
        buf.clear();
        for slice in slices {
            buf.extend_from_slice(slice);
        }
        socket.try_write(buf)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// A text frame of `n` payload bytes, numbered so that a misplaced slice shows.
    fn text(n: usize) -> Out {
        Out::Text((0..n).map(|i| b'a' + (i % 26) as u8).collect())
    }

    /// A small frame (2 + 2 bytes), an empty ping (2), a frame with a 16-bit length (4 + 200)
    /// and another small one (2 + 3).
    fn mixed() -> VecDeque<Out> {
        VecDeque::from([text(2), Out::Ping, text(200), text(3)])
    }

    /// The frames as they go on the wire.
    fn wire(frames: &VecDeque<Out>) -> Vec<u8> {
        let mut bytes = Vec::new();
        for out in frames {
            let (head, used) = out.header();
            bytes.extend_from_slice(&head[..used]);
            bytes.extend_from_slice(out.payload());
        }
        bytes
    }

    /// What one `send_some` from (`next`, `skip`) would hand the socket.
    fn gathered(frames: &VecDeque<Out>, next: usize, skip: usize) -> Vec<u8> {
        let mut heads = [([0u8; frame::MAX_HEADER], 0usize); BATCH];
        let mut slices = [IoSlice::new(&[]); 2 * BATCH];
        let used = gather(frames, next, skip, &mut heads, &mut slices);
        slices[..used]
            .iter()
            .flat_map(|s| s.iter().copied())
            .collect()
    }

    #[test]
    fn nothing_written_stays_put() {
        let frames = mixed();
        assert_eq!(advance(&frames, 0, 0, 0), (0, 0));
        assert_eq!(advance(&frames, 0, 1, 0), (0, 1));
        assert_eq!(advance(&frames, 2, 7, 0), (2, 7));
    }

    #[test]
    fn split_inside_a_header() {
        let frames = mixed();
        assert_eq!(advance(&frames, 0, 0, 1), (0, 1));
        // Into the third frame's extended length: 4 + 2 bytes before it, 3 of its 4 header bytes.
        assert_eq!(advance(&frames, 0, 0, 4 + 2 + 3), (2, 3));
        let rest = gathered(&frames, 2, 3);
        assert_eq!(
            rest[0], 200,
            "the low byte of the 16-bit length comes first"
        );
        assert_eq!(&rest[1..201], frames[2].payload());
    }

    #[test]
    fn exactly_at_a_boundary() {
        let frames = mixed();
        assert_eq!(advance(&frames, 0, 0, 4), (1, 0));
        assert_eq!(advance(&frames, 0, 3, 1), (1, 0));
        // Through the empty ping, which is all header.
        assert_eq!(advance(&frames, 0, 0, 6), (2, 0));
        assert_eq!(advance(&frames, 0, 0, wire(&frames).len()), (4, 0));
    }

    #[test]
    fn across_several_frames() {
        let frames = mixed();
        // From inside the first payload to inside the last frame's payload.
        assert_eq!(advance(&frames, 0, 3, 1 + 2 + 204 + 3), (3, 3));
        assert_eq!(advance(&frames, 1, 0, 2 + 204 + 1), (3, 1));
    }

    #[test]
    fn every_split_resumes_with_the_rest() {
        let frames = mixed();
        let wire = wire(&frames);
        for n in 0..=wire.len() {
            let (next, skip) = advance(&frames, 0, 0, n);
            assert_eq!(gathered(&frames, next, skip), &wire[n..], "after {n} bytes");
            for m in 0..=wire.len() - n {
                assert_eq!(
                    advance(&frames, next, skip, m),
                    advance(&frames, 0, 0, n + m),
                    "{n} then {m} bytes"
                );
            }
        }
    }

    #[test]
    fn one_write_takes_a_batch_at_most() {
        let frames: VecDeque<Out> = (0..BATCH + 8).map(|_| text(2)).collect();
        assert_eq!(gathered(&frames, 0, 0).len(), BATCH * 4);
        assert_eq!(gathered(&frames, BATCH, 1).len(), 8 * 4 - 1);
        assert_eq!(advance(&frames, 0, 0, BATCH * 4), (BATCH, 0));
    }

    #[tokio::test]
    async fn small_and_large_writes_arrive_whole() {
        let (server, mut client) = crate::ws::socket_pair().await;
        let small = [IoSlice::new(b"ab"), IoSlice::new(b""), IoSlice::new(b"cde")];
        assert_eq!(try_send(&server, &small).unwrap(), 5);
        let big = vec![7u8; 5000];
        let large = [IoSlice::new(b"xy"), IoSlice::new(&big)];
        assert_eq!(try_send(&server, &large).unwrap(), 5002);
        let mut got = vec![0u8; 5007];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(&got[..7], b"abcdexy");
        assert!(got[7..].iter().all(|&b| b == 7));
    }

    #[tokio::test]
    async fn write_all_resumes_partial_writes() {
        let (server, mut client) = crate::ws::socket_pair().await;
        // More than the socket buffers hold: the socket takes it in parts.
        let frames: VecDeque<Out> = (0..40).map(|i| text(70_000 + i)).collect();
        let expected = wire(&frames)[5..].to_vec();
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            client.read_to_end(&mut got).await.unwrap();
            got
        });
        write_all(&server, &frames, 5).await.unwrap();
        drop(server);
        assert!(reader.await.unwrap() == expected);
    }
}
