//! HTTP/1.1 chunk framing for event streams, shared by everyone who writes one.
//!
//! A leaf: it knows bytes and `AsyncWrite`, nothing of streams, lanes or the hub. The
//! connection's task ([`super::event_stream`]) and the fan-out lane ([`super::lane`]) both frame
//! chunks with it, so neither imports the other for it. Framing borrows the chunk's bytes and a
//! size line on the caller's stack: a write costs no allocation and no copy.

use bytes::{Bytes, BytesMut};
use std::io::{self, IoSlice};
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// `data` framed as one HTTP/1.1 chunk (size line, data, CRLF), using `size` for the size line;
/// nothing for no data, since a zero-size chunk ends the body.
pub(super) fn chunk_parts<'a>(data: &'a [u8], size: &'a mut [u8; CHUNK_SIZE_LINE_BYTES]) -> [&'a [u8]; 3] {
    if data.is_empty() { [b"", b"", b""] } else { [chunk_size_line(data.len(), size), data, b"\r\n"] }
}

/// A chunk's size line: hex digits of a `usize` and CRLF.
pub(super) const CHUNK_SIZE_LINE_BYTES: usize = 2 * size_of::<usize>() + 2;

/// The chunk that ends a body.
pub(super) const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Writes `len`'s chunk-size line (`1A2\r\n`) into `buf` and returns it.
fn chunk_size_line(len: usize, buf: &mut [u8; CHUNK_SIZE_LINE_BYTES]) -> &[u8] {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut start = CHUNK_SIZE_LINE_BYTES - 2;
    buf[start..].copy_from_slice(b"\r\n");
    let mut rest = len;
    loop {
        start -= 1;
        buf[start] = HEX[rest % 16];
        rest /= 16;
        if rest == 0 {
            return &buf[start..];
        }
    }
}

/// Most parts one write takes (the head, then a chunk's size line, data and CRLF).
const MAX_PARTS: usize = 4;

/// Writes every part, in order, with as few `writev` calls as the socket allows (none when
/// every part is empty).
pub(super) async fn write_all_parts<W: AsyncWrite + Unpin>(out: &mut W, parts: &[&[u8]]) -> io::Result<()> {
    debug_assert!(parts.len() <= MAX_PARTS);
    let (mut index, mut offset) = (parts.iter().take_while(|part| part.is_empty()).count(), 0);
    while index < parts.len() {
        let mut slices = [IoSlice::new(&[]); MAX_PARTS];
        let pending = &parts[index..parts.len().min(index + MAX_PARTS)];
        for (i, part) in pending.iter().enumerate() {
            slices[i] = IoSlice::new(if i == 0 { &part[offset..] } else { part });
        }
        let slices = &slices[..pending.len()];
        let mut written = out.write_vectored(slices).await?;
        if written == 0 && slices.iter().any(|slice| !slice.is_empty()) {
            return Err(io::ErrorKind::WriteZero.into());
        }
        while index < parts.len() && written >= parts[index].len() - offset {
            written -= parts[index].len() - offset;
            index += 1;
            offset = 0;
        }
        offset += written;
    }
    Ok(())
}

/// The bytes of `parts` after the first `written`.
pub(super) fn rest_of(parts: &[&[u8]], written: usize) -> Bytes {
    let mut skip = written;
    let mut rest = BytesMut::new();
    for part in parts {
        let from = skip.min(part.len());
        skip -= from;
        rest.extend_from_slice(&part[from..]);
    }
    rest.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{
        pin::Pin,
        task::{Context, Poll},
    };

    #[test]
    fn chunk_size_lines_are_hex_with_crlf() {
        let mut buf = [0u8; CHUNK_SIZE_LINE_BYTES];
        assert_eq!(chunk_size_line(0, &mut buf), b"0\r\n");
        assert_eq!(chunk_size_line(26, &mut buf), b"1A\r\n");
        assert_eq!(chunk_size_line(4096, &mut buf), b"1000\r\n");
        assert_eq!(chunk_size_line(usize::MAX, &mut buf).len(), CHUNK_SIZE_LINE_BYTES);
    }

    #[test]
    fn the_rest_of_a_chunk_starts_where_the_socket_stopped_taking_it() {
        let parts: [&[u8]; 3] = [b"1A\r\n", b"data", b"\r\n"];
        assert_eq!(rest_of(&parts, 0), "1A\r\ndata\r\n");
        assert_eq!(rest_of(&parts, 3), "\ndata\r\n");
        assert_eq!(rest_of(&parts, 4), "data\r\n");
        assert_eq!(rest_of(&parts, 9), "\n");
        assert_eq!(rest_of(&parts, 10), "");
    }

    /// A writer that takes at most `step` bytes per call, so every part boundary is crossed.
    struct Trickle {
        written: Vec<u8>,
        step: usize,
        calls: usize,
    }

    impl AsyncWrite for Trickle {
        fn poll_write(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
            self.calls += 1;
            let n = buf.len().min(self.step);
            self.written.extend_from_slice(&buf[..n]);
            Poll::Ready(Ok(n))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn every_part_is_written_once_and_in_order_however_short_the_writes() {
        for step in [1, 2, 3, 5, 64] {
            let mut out = Trickle { written: Vec::new(), step, calls: 0 };
            write_all_parts(&mut out, &[b"", b"HEAD", b"", b"1A\r\n"]).await.expect("written");
            write_all_parts(&mut out, &[b"data", b"\r\n"]).await.expect("written");
            assert_eq!(out.written, b"HEAD1A\r\ndata\r\n", "step {step}");
        }
        let mut out = Trickle { written: Vec::new(), step: 64, calls: 0 };
        write_all_parts(&mut out, &[b"", b"", b""]).await.expect("nothing to write");
        assert_eq!(out.calls, 0, "no write for nothing");
    }
}
