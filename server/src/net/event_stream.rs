//! A connection whose first request opens an event stream, served without hyper.
//!
//! hyper keeps an 8 KiB read buffer and an 8 KiB write buffer for a connection's whole life.
//! An event stream reads one small request and then only writes, for hours, and a chat holds
//! one per open tab: those two buffers were most of a stream's memory. Here the request head
//! is read into a buffer that is freed once parsed, the router answers it as it answers any
//! request, and the body is written as HTTP/1.1 chunks straight from the stream's shared
//! bytes, one `writev` per chunk, with nothing kept between writes.
//!
//! While the stream is idle, its writing is handed to the fan-out lane ([`super::lane`]) and
//! the connection only watches its client: see [`write_live_stream`].
//!
//! Only the plain case is served here: an HTTP/1.1 `GET` with no body and no upgrade, a head
//! that parses and fits [`MAX_HEAD_BYTES`]. Anything else goes to hyper unchanged, with the
//! bytes read so far replayed ([`Replayed`]), so hyper's answers (400, 431, HTTP/1.0 framing)
//! stay the only ones for unusual requests.

use super::{
    chunk::{CHUNK_SIZE_LINE_BYTES, LAST_CHUNK, chunk_parts, write_all_parts},
    connection::{HEADER_READ_TIMEOUT, ServeConnection},
    deadline::WriteDeadline,
    lane::{Lane, Parked, Resumed},
    sharing::share_the_core,
};
use crate::{
    hub::{EventStream, StreamHandoff},
    limits::PeerAddr,
    metrics::Metrics,
};
use axum::{
    body::Body,
    http::{HeaderName, HeaderValue, Method, Request, Response, Version, header},
};
use bytes::Bytes;
use hyper_util::server::graceful::Watcher;
use std::{
    io::{self, IoSlice},
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, SystemTime},
};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf},
    net::{
        TcpStream,
        tcp::{OwnedReadHalf, OwnedWriteHalf},
    },
    sync::{OwnedSemaphorePermit, oneshot},
};
use tower::ServiceExt;

/// The largest request head served here; a larger one (say, a huge cookie) goes to hyper.
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Most request heads (a browser's, with its cookie) fit in this.
const FIRST_READ_BYTES: usize = 2 * 1024;
/// Headers a request may carry here.
const MAX_HEADERS: usize = 64;
/// An error answer's body is at most this long (they are short JSON).
const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;
/// Bytes a client may send after its request before the stream is closed on it: an event
/// stream never answers a second request, and reading without end would cost a syscall per
/// read for nothing.
const MAX_IGNORED_BYTES: usize = 1024;

/// Serves `stream`, whose first bytes announced `GET /sse`.
///
/// A task keeps the size of its largest state for its whole life, and an event stream lives
/// for hours in one state: parked in its lane, waiting. So everything before that (reading
/// the request, the router, a refusal) runs in a boxed future, freed once the stream is open,
/// and so does the writing (see [`write_live_stream`]): the task of an idle stream holds the
/// stream and little else.
pub(super) async fn serve(stream: TcpStream, connection: ServeConnection) {
    let Some(opened) = boxed_open(stream, connection).await else { return };
    let Opened { head, live, socket, held } = opened;
    log_error(write_live_stream(head, live, socket).await);
    drop(held);
}

/// How a connection's last write went: an error is the client's or the network's, worth a
/// debug line only.
fn log_error(written: io::Result<()>) {
    if let Err(error) = written {
        tracing::debug!(%error, "event stream connection ended with an error");
    }
}

/// [`open`], boxed outside the task's future. Written as `Box::pin(open(..)).await` inside
/// an `async fn`, the unboxed future is a temporary of the caller's state machine, which keeps
/// room for it for the task's whole life, boxed or not: each stream's task took about 5 KB
/// (heaptrack, BENCHMARKS.md's notes).
fn boxed_open(
    stream: TcpStream,
    connection: ServeConnection,
) -> Pin<Box<impl Future<Output = Option<Opened>>>> {
    Box::pin(open(stream, connection))
}

/// A stream the router opened, ready to be written.
struct Opened {
    /// The response's head, written with the first chunk.
    head: Vec<u8>,
    live: Box<EventStream>,
    socket: LiveSocket,
    /// Held until the stream ends: shutdown waits for every watcher to be dropped, and the
    /// connection counts against the limit while it is open.
    held: (Watcher, OwnedSemaphorePermit),
}

/// Reads the request and asks the router. Anything but an opened stream is answered here
/// (or by hyper, for requests this path does not serve), and gives `None`.
async fn open(stream: TcpStream, connection: ServeConnection) -> Option<Opened> {
    let mut head = Vec::with_capacity(FIRST_READ_BYTES);
    let mut stream = stream;
    let read = tokio::time::timeout(HEADER_READ_TIMEOUT, read_head(&mut stream, &mut head));
    let request = tokio::select! {
        // Shutting down: a request still arriving is not waited for.
        () = connection.shutdown.cancelled() => return None,
        read = read => match read {
            // Silent past the deadline, or gone: nothing to answer.
            Err(_) | Ok(Err(_)) => return None,
            Ok(Ok(())) => parse_request(&head),
        },
    };
    let Some(request) = request else {
        connection.run(Replayed { replay: head, offset: 0, inner: stream }).await;
        return None;
    };
    drop(head);
    let ServeConnection { router, watcher, write_timeout, metrics, lane, peer, connection_slot, .. } =
        connection;
    let mut request = request;
    request.extensions_mut().insert(PeerAddr(peer));
    let Ok(mut response) = router.oneshot(request).await;
    let handoff = response.extensions_mut().remove::<StreamHandoff>();
    let (reader, writer) = stream.into_split();
    // Only the stream route hands a stream over, with its `200`; anything else is a refusal.
    let Some(live) = handoff.and_then(|handoff| handoff.take()) else {
        log_error(write_whole(response, &mut WriteDeadline::new(writer, write_timeout, metrics)).await);
        return None;
    };
    let socket = LiveSocket { client: Client::new(reader), writer, write_timeout, metrics, lane };
    // The body is never polled: the stream it would have taken is served here.
    let head = stream_head(&response);
    Some(Opened { head, live: Box::new(live), socket, held: (watcher, connection_slot) })
}

/// Reads until the end of the request head (an empty line), the size limit, or end of input.
async fn read_head(stream: &mut TcpStream, head: &mut Vec<u8>) -> io::Result<()> {
    loop {
        let searched_from = head.len().saturating_sub(2);
        if head.len() == head.capacity() {
            head.reserve(head.len());
        }
        if stream.read_buf(head).await? == 0 {
            return Ok(());
        }
        if ends_head(&head[searched_from..]) || head.len() > MAX_HEAD_BYTES {
            return Ok(());
        }
    }
}

/// Whether `bytes` hold the empty line that ends a request head. Lines may end in CRLF or in
/// a bare LF (RFC 9112 lets a server accept the latter, and httparse and hyper do), so the
/// empty line is an LF followed by an LF, or by CR LF.
fn ends_head(bytes: &[u8]) -> bool {
    bytes.windows(2).any(|pair| pair == b"\n\n") || bytes.windows(3).any(|triple| triple == b"\n\r\n")
}

/// The request, when it is one this path serves (see the module comment).
fn parse_request(head: &[u8]) -> Option<Request<Body>> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    let httparse::Status::Complete(length) = parsed.parse(head).ok()? else { return None };
    if length > MAX_HEAD_BYTES || parsed.method != Some("GET") || parsed.version != Some(1) {
        return None;
    }
    let mut request = Request::builder().method(Method::GET).uri(parsed.path?).version(Version::HTTP_11);
    for field in parsed.headers.iter() {
        let name = HeaderName::from_bytes(field.name.as_bytes()).ok()?;
        let has_body =
            (name == header::CONTENT_LENGTH && field.value != b"0") || name == header::TRANSFER_ENCODING;
        if has_body || name == header::UPGRADE || name == header::EXPECT {
            return None;
        }
        request = request.header(name, HeaderValue::from_bytes(field.value).ok()?);
    }
    request.body(Body::empty()).ok()
}

/// The status line and headers, with the framing headers this path decides replaced.
fn response_head(response: &Response<Body>, framing: &str) -> Vec<u8> {
    let status = response.status();
    let mut head = Vec::with_capacity(512);
    head.extend_from_slice(
        format!("HTTP/1.1 {} {}\r\n", status.as_str(), status.canonical_reason().unwrap_or("")).as_bytes(),
    );
    for (name, value) in response.headers() {
        if [header::CONTENT_LENGTH, header::TRANSFER_ENCODING, header::CONNECTION, header::DATE]
            .contains(name)
        {
            continue;
        }
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(format!("date: {}\r\n", httpdate::fmt_http_date(SystemTime::now())).as_bytes());
    head.extend_from_slice(framing.as_bytes());
    head.extend_from_slice(b"\r\n");
    head
}

/// An answer that is not a stream (a refusal): written whole, then the connection closes.
async fn write_whole<W: AsyncWrite + Unpin>(response: Response<Body>, out: &mut W) -> io::Result<()> {
    let (parts, body) = response.into_parts();
    // A refusal that cannot be read whole is not sent half: the connection just closes.
    let body = axum::body::to_bytes(body, MAX_ERROR_BODY_BYTES).await.map_err(io::Error::other)?;
    let head = response_head(
        &Response::from_parts(parts, Body::empty()),
        &format!("content-length: {}\r\nconnection: close\r\n", body.len()),
    );
    write_all_parts(out, &[&head, &body]).await?;
    out.shutdown().await
}

/// The client side of a stream's connection, read while the stream is written: for nothing,
/// normally. Whatever the client sends is dropped, up to a limit; end of input means it left
/// (as with hyper, a half-close is a leave).
struct Client {
    reader: OwnedReadHalf,
    ignored: usize,
}

impl Client {
    fn new(reader: OwnedReadHalf) -> Self {
        Self { reader, ignored: 0 }
    }

    /// Waits for `until`, reading the client meanwhile; `None` when the client left first, an
    /// error when it kept sending.
    ///
    /// What the client sends is read into a buffer on the stack of each poll, so the task
    /// keeps none between its wake-ups.
    async fn outwait<F: Future>(&mut self, until: F) -> io::Result<Option<F::Output>> {
        let mut until = std::pin::pin!(until);
        std::future::poll_fn(|cx| {
            if let Poll::Ready(done) = until.as_mut().poll(cx) {
                return Poll::Ready(Ok(Some(done)));
            }
            loop {
                let mut buffer = [0u8; 256];
                let mut read = ReadBuf::new(&mut buffer);
                match Pin::new(&mut self.reader).poll_read(cx, &mut read) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(_)) => return Poll::Ready(Ok(None)),
                    Poll::Ready(Ok(())) if read.filled().is_empty() => return Poll::Ready(Ok(None)),
                    Poll::Ready(Ok(())) => {
                        self.ignored += read.filled().len();
                        if self.ignored > MAX_IGNORED_BYTES {
                            let kept_sending =
                                io::Error::new(io::ErrorKind::InvalidData, "client kept sending");
                            return Poll::Ready(Err(kept_sending));
                        }
                    }
                }
            }
        })
        .await
    }

    /// Closes both directions of the connection at once (the socket itself stays open until
    /// both halves are dropped).
    fn close_connection(&self) {
        // Failure (already closed by the peer) leaves nothing to do.
        let _ = socket2::SockRef::from(self.reader.as_ref()).shutdown(std::net::Shutdown::Both);
    }
}

/// The response head for a stream. This connection serves no second request: the client is
/// told, so that no pooling client tries to reuse it once the stream ends.
fn stream_head(response: &Response<Body>) -> Vec<u8> {
    response_head(response, "transfer-encoding: chunked\r\nconnection: close\r\n")
}

/// Writes `head` (empty after the first write), then `data` as one chunk; a chunk of nothing is
/// not written, since a zero-size chunk ends the body.
async fn write_chunk<W: AsyncWrite + Unpin>(out: &mut W, head: &[u8], data: &[u8]) -> io::Result<()> {
    let mut size = [0u8; CHUNK_SIZE_LINE_BYTES];
    let [size, data, end] = chunk_parts(data, &mut size);
    write_all_parts(out, &[head, size, data, end]).await?;
    share_the_core();
    Ok(())
}

/// Ends the body properly (the stream ended: shutdown, or it fell behind).
async fn write_last_chunk<W: AsyncWrite + Unpin>(out: &mut W, head: &[u8]) -> io::Result<()> {
    write_all_parts(out, &[head, LAST_CHUNK]).await?;
    out.shutdown().await
}

/// A stream's connection, split: the task reads its client; whoever holds the stream writes.
struct LiveSocket {
    client: Client,
    writer: OwnedWriteHalf,
    write_timeout: Duration,
    metrics: Arc<Metrics>,
    lane: Lane,
}

/// Serves an event stream the router handed over whole: the task writes while the stream is
/// busy (its opening, bursts, a socket the lane found full), and hands it to the lane whenever
/// it is idle, watching only for its client to leave until the lane hands it back.
///
/// `head` goes out with the first chunk (the stream's opening, ready at once): one write.
async fn write_live_stream(
    mut head: Vec<u8>,
    mut stream: Box<EventStream>,
    socket: LiveSocket,
) -> io::Result<()> {
    let LiveSocket { mut client, mut writer, write_timeout, metrics, lane } = socket;
    let mut unwritten = Bytes::new();
    loop {
        let out = WriteDeadline::new(writer, write_timeout, Arc::clone(&metrics));
        // Boxed (see `boxed_write_until_idle`): writing holds the task's largest futures, and
        // an idle stream spends its life parked below, in the task's smallest state.
        let Written::Idle(out) =
            boxed_write_until_idle(&mut head, &mut stream, &mut client, out, unwritten).await?
        else {
            return Ok(());
        };
        // The room keeps counting this stream while the lane has it, until the task ends.
        let hold = stream.take_guard();
        let (resume, resumed) = oneshot::channel();
        let resumed = match lane.park(Parked { stream, writer: out.into_inner(), resume }) {
            // Back from the lane, unless the client left first or the lane dropped the stream
            // (its connection broke).
            None => match client.outwait(resumed).await {
                Ok(Some(Ok(resumed))) => resumed,
                // The lane may still hold the socket's write half: the connection is closed
                // here, at once, and the lane's next write to it fails and lets it go.
                ended => {
                    client.close_connection();
                    return ended.map(|_| ());
                }
            },
            // The lane has stopped (shutdown): the task writes until the stream ends.
            Some(Parked { stream, writer, .. }) => Resumed { stream, writer, unwritten: Bytes::new() },
        };
        stream = resumed.stream;
        stream.restore_guard(hold);
        writer = resumed.writer;
        unwritten = resumed.unwritten;
    }
}

/// How [`write_until_idle`] stopped.
enum Written {
    /// Everything is written and the stream waits for its room's next event: the lane may
    /// take over.
    Idle(WriteDeadline<OwnedWriteHalf>),
    /// The stream is over (its last chunk written), or the client left.
    Ended,
}

/// [`write_until_idle`], boxed outside the caller's future, as [`boxed_open`] is.
fn boxed_write_until_idle<'a>(
    head: &'a mut Vec<u8>,
    stream: &'a mut EventStream,
    client: &'a mut Client,
    out: WriteDeadline<OwnedWriteHalf>,
    unwritten: Bytes,
) -> Pin<Box<impl Future<Output = io::Result<Written>> + 'a>> {
    Box::pin(write_until_idle(head, stream, client, out, unwritten))
}

/// Writes `unwritten`, then every chunk of the stream as it comes (the first after the
/// response's `head`), until the stream is idle in a room's lane, or over.
async fn write_until_idle(
    head: &mut Vec<u8>,
    stream: &mut EventStream,
    client: &mut Client,
    mut out: WriteDeadline<OwnedWriteHalf>,
    unwritten: Bytes,
) -> io::Result<Written> {
    write_all_parts(&mut out, &[&unwritten]).await?;
    loop {
        let head = std::mem::take(head);
        match next_chunk(stream, client).await? {
            Next::Chunk(data) => write_chunk(&mut out, &head, &data).await?,
            Next::End => {
                write_last_chunk(&mut out, &head).await?;
                return Ok(Written::Ended);
            }
            Next::ClientLeft => return Ok(Written::Ended),
        }
        // A stream of several rooms has no lane: its task writes it throughout.
        if stream.is_idle() && stream.lane_room().is_some() {
            return Ok(Written::Idle(out));
        }
    }
}

/// What came first while a task waited for its stream's next chunk.
enum Next {
    Chunk(Bytes),
    /// The stream is over: shutdown, or it fell behind.
    End,
    ClientLeft,
}

/// Waits for the stream's next chunk, reading the client meanwhile. The chunk's future lives
/// across those reads: dropped halfway, it would lose the frames it had taken from the ring.
async fn next_chunk(stream: &mut EventStream, client: &mut Client) -> io::Result<Next> {
    Ok(match client.outwait(stream.next_chunk()).await? {
        Some(chunk) => chunk.map_or(Next::End, Next::Chunk),
        None => Next::ClientLeft,
    })
}

/// A socket whose first reads replay bytes already read from it.
pub(super) struct Replayed {
    replay: Vec<u8>,
    offset: usize,
    inner: TcpStream,
}

impl AsyncRead for Replayed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.offset < this.replay.len() {
            let rest = &this.replay[this.offset..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.offset += n;
            if this.offset == this.replay.len() {
                this.replay = Vec::new();
                this.offset = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Replayed {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_http11_gets_without_a_body_are_served_here() {
        let served = |head: &str| parse_request(head.as_bytes()).is_some();
        assert!(served("GET /sse?id=a&name=b HTTP/1.1\r\nHost: x\r\nCookie: s=1\r\n\r\n"));
        assert!(served("GET /sse HTTP/1.1\r\nContent-Length: 0\r\n\r\n"));
        // hyper answers these: other versions, bodies, upgrades, incomplete or broken heads.
        assert!(!served("GET /sse HTTP/1.0\r\n\r\n"));
        assert!(!served("GET /sse HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"));
        assert!(!served("GET /sse HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"));
        assert!(!served("GET /sse HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n"));
        assert!(!served("GET /sse HTTP/1.1\r\nExpect: 100-continue\r\n\r\n"));
        assert!(!served("GET /sse HTTP/1.1\r\nHost: x\r\n"));
        assert!(!served("GET /sse HTTP/1.1\r\nBad Header: x\r\n\r\n"));
        let huge = format!("GET /sse HTTP/1.1\r\nCookie: {}\r\n\r\n", "a".repeat(MAX_HEAD_BYTES));
        assert!(!served(&huge), "an oversized head goes to hyper, whatever the reads were");
    }

    #[test]
    fn a_head_ends_at_an_empty_line_whatever_the_line_ends() {
        assert!(ends_head(b"GET /sse HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert!(ends_head(b"GET /sse HTTP/1.1\nHost: x\n\n"));
        assert!(ends_head(b"GET /sse HTTP/1.1\nHost: x\n\r\n"));
        assert!(!ends_head(b"GET /sse HTTP/1.1\r\nHost: x\r\n"));
        assert!(!ends_head(b"GET /sse HTTP/1.1\nHost: x\n"));
        let served = parse_request(b"GET /sse?id=a&name=b HTTP/1.1\nHost: x\n\n").expect("bare LF is served");
        assert_eq!(served.uri(), "/sse?id=a&name=b");
    }

    #[test]
    fn a_request_keeps_its_target_and_headers() {
        let request =
            parse_request(b"GET /sse?id=a&name=b HTTP/1.1\r\nLast-Event-ID: 7\r\n\r\n").expect("served");
        assert_eq!(request.uri(), "/sse?id=a&name=b");
        assert_eq!(request.headers()["last-event-id"], "7");
    }
}
