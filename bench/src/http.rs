//! A minimal HTTP/1.1 client: what the load tester needs and nothing more.
//!
//! Two kinds of connection. A stream ([`open_stream`]) sends one `GET`, reads the response
//! head, and hands back an [`EventSocket`] with a [`BodyDecoder`]; its task then reads with
//! [`EventSocket::read_with`], into one scratch buffer per thread, so ten thousand idle
//! streams hold no buffers, and with one `recv` per wake-up where a plain tokio socket needs
//! two (the second only to learn that nothing is left). A poster ([`PostClient`]) keeps one connection alive and sends one request at a
//! time on it, like a browser tab's `fetch`, reconnecting when the server closes it.
//!
//! Response heads are parsed with `httparse`; bodies are framed by `Content-Length`, chunked
//! transfer coding, or the end of the connection.

use crate::error::LoadError;
use std::{
    cell::RefCell,
    io::{self, Read},
    net::{SocketAddr, ToSocketAddrs},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt, Interest, unix::AsyncFd},
    net::TcpStream,
};

/// Larger response heads are refused.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// The scratch buffer every read on a thread goes through.
const SCRATCH_BYTES: usize = 256 * 1024;

/// Where the server is: its socket address and the `Host` header to send.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub addr: SocketAddr,
    pub host: String,
}

impl Endpoint {
    /// Parses `http://HOST:PORT` (a trailing `/` is fine; no path, no https).
    pub fn parse(url: &str) -> Result<Self, LoadError> {
        let bad = || LoadError::BadUrl(url.to_owned());
        let host = url.strip_prefix("http://").ok_or_else(bad)?.trim_end_matches('/');
        if host.is_empty() || host.contains('/') {
            return Err(bad());
        }
        let addr = host.to_socket_addrs().map_err(|_| bad())?.next().ok_or_else(bad)?;
        Ok(Self { addr, host: host.to_owned() })
    }

    pub async fn connect(&self) -> Result<TcpStream, LoadError> {
        let socket = TcpStream::connect(self.addr)
            .await
            .map_err(|source| LoadError::Connect { addr: self.addr, source })?;
        // Requests are small and latency is what is measured.
        socket.set_nodelay(true)?;
        Ok(socket)
    }
}

/// How the body of a response ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Chunked,
    Length(u64),
    UntilClose,
}

/// What the load tester reads from a response head.
#[derive(Debug, Clone)]
pub struct ResponseHead {
    pub status: u16,
    pub framing: Framing,
    /// `name=value` of the first `Set-Cookie`.
    pub cookie: Option<String>,
    pub content_type: Option<String>,
    /// False when the server said `Connection: close`.
    pub keep_alive: bool,
}

impl ResponseHead {
    fn from_parsed(response: &httparse::Response<'_, '_>) -> Result<Self, LoadError> {
        let status = response.code.ok_or_else(|| LoadError::MalformedResponse("no status".into()))?;
        let mut head =
            Self { status, framing: Framing::UntilClose, cookie: None, content_type: None, keep_alive: true };
        for header in response.headers.iter() {
            let value = String::from_utf8_lossy(header.value);
            if header.name.eq_ignore_ascii_case("transfer-encoding") {
                if value.to_ascii_lowercase().contains("chunked") {
                    head.framing = Framing::Chunked;
                }
            } else if header.name.eq_ignore_ascii_case("content-length") {
                if head.framing != Framing::Chunked {
                    let length = value
                        .trim()
                        .parse()
                        .map_err(|_| LoadError::MalformedResponse(format!("Content-Length {value:?}")))?;
                    head.framing = Framing::Length(length);
                }
            } else if header.name.eq_ignore_ascii_case("set-cookie") {
                if head.cookie.is_none() {
                    head.cookie = value.split(';').next().map(|pair| pair.trim().to_owned());
                }
            } else if header.name.eq_ignore_ascii_case("content-type") {
                head.content_type = Some(value.into_owned());
            } else if header.name.eq_ignore_ascii_case("connection") {
                head.keep_alive = !value.eq_ignore_ascii_case("close");
            }
        }
        Ok(head)
    }
}

/// Reads until `buffer` holds a complete response head; returns it and its length in bytes.
/// Whatever follows the head stays in `buffer`.
async fn read_head(socket: &mut TcpStream, buffer: &mut Vec<u8>) -> Result<(ResponseHead, usize), LoadError> {
    loop {
        if !buffer.is_empty() {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut response = httparse::Response::new(&mut headers);
            match response.parse(buffer) {
                Ok(httparse::Status::Complete(length)) => {
                    return Ok((ResponseHead::from_parsed(&response)?, length));
                }
                Ok(httparse::Status::Partial) => {}
                Err(error) => return Err(LoadError::MalformedResponse(error.to_string())),
            }
        }
        if buffer.len() >= MAX_HEAD_BYTES {
            return Err(LoadError::HeadTooLarge(MAX_HEAD_BYTES));
        }
        buffer.reserve(4096);
        if socket.read_buf(buffer).await? == 0 {
            return Err(LoadError::Closed);
        }
    }
}

/// Undoes chunked transfer coding, fed bytes as they arrive, split anywhere.
#[derive(Debug, Clone, Default)]
pub struct ChunkedDecoder {
    state: ChunkState,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum ChunkState {
    /// Reading the hex size; `extension` once past a `;`.
    #[default]
    SizeStart,
    Size {
        size: u64,
        extension: bool,
    },
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: trailer lines until an empty one; `line_empty` while nothing but
    /// a CR has been seen on the current line.
    Trailer {
        line_empty: bool,
    },
    Done,
}

impl ChunkedDecoder {
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Decodes `input`, passing chunk data to `sink`; returns the bytes consumed (less than
    /// `input.len()` only when the body ended inside it).
    pub fn decode(&mut self, input: &[u8], sink: &mut impl FnMut(&[u8])) -> Result<usize, LoadError> {
        let malformed = |what: &str| LoadError::MalformedResponse(format!("chunked body: {what}"));
        let mut at = 0;
        while at < input.len() {
            let byte = input[at];
            match self.state {
                ChunkState::SizeStart | ChunkState::Size { .. } => {
                    let (size, extension) = match self.state {
                        ChunkState::Size { size, extension } => (size, extension),
                        _ => (0, false),
                    };
                    at += 1;
                    self.state = match byte {
                        b'\n' if matches!(self.state, ChunkState::SizeStart) => {
                            return Err(malformed("empty chunk size"));
                        }
                        b'\n' if size == 0 => ChunkState::Trailer { line_empty: true },
                        b'\n' => ChunkState::Data(size),
                        b'\r' => self.state,
                        _ if extension => self.state,
                        b';' | b' ' | b'\t' => ChunkState::Size { size, extension: true },
                        digit => {
                            let value = (digit as char).to_digit(16).ok_or_else(|| malformed("bad size"))?;
                            let size = size
                                .checked_mul(16)
                                .and_then(|s| s.checked_add(u64::from(value)))
                                .ok_or_else(|| malformed("size overflows"))?;
                            ChunkState::Size { size, extension: false }
                        }
                    };
                }
                ChunkState::Data(left) => {
                    let take = left.min((input.len() - at) as u64) as usize;
                    sink(&input[at..at + take]);
                    at += take;
                    let left = left - take as u64;
                    self.state = if left == 0 { ChunkState::DataEnd } else { ChunkState::Data(left) };
                }
                ChunkState::DataEnd => {
                    at += 1;
                    match byte {
                        b'\r' => {}
                        b'\n' => self.state = ChunkState::SizeStart,
                        _ => return Err(malformed("no CRLF after chunk data")),
                    }
                }
                ChunkState::Trailer { line_empty } => {
                    at += 1;
                    self.state = match byte {
                        b'\n' if line_empty => ChunkState::Done,
                        b'\n' => ChunkState::Trailer { line_empty: true },
                        b'\r' => ChunkState::Trailer { line_empty },
                        _ => ChunkState::Trailer { line_empty: false },
                    };
                }
                ChunkState::Done => return Ok(at),
            }
        }
        Ok(at)
    }
}

/// Takes a response body apart from its framing.
#[derive(Debug, Clone)]
pub enum BodyDecoder {
    Chunked(ChunkedDecoder),
    Length(u64),
    UntilClose,
}

impl BodyDecoder {
    pub fn new(framing: Framing) -> Self {
        match framing {
            Framing::Chunked => Self::Chunked(ChunkedDecoder::default()),
            Framing::Length(length) => Self::Length(length),
            Framing::UntilClose => Self::UntilClose,
        }
    }

    /// Passes the body bytes in `input` to `sink`; returns the bytes consumed.
    pub fn feed(&mut self, input: &[u8], sink: &mut impl FnMut(&[u8])) -> Result<usize, LoadError> {
        match self {
            Self::Chunked(decoder) => decoder.decode(input, sink),
            Self::Length(left) => {
                let take = (*left).min(input.len() as u64) as usize;
                sink(&input[..take]);
                *left -= take as u64;
                Ok(take)
            }
            Self::UntilClose => {
                sink(input);
                Ok(input.len())
            }
        }
    }

    /// True once the whole body has been read (never for a body that ends with the connection).
    pub fn is_done(&self) -> bool {
        match self {
            Self::Chunked(decoder) => decoder.is_done(),
            Self::Length(left) => *left == 0,
            Self::UntilClose => false,
        }
    }
}

thread_local! {
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0; SCRATCH_BYTES]);
}

/// The receiving end of an event stream.
///
/// A tokio `TcpStream` learns that a socket is drained only from a `recv` that fails with
/// `EAGAIN`, one wasted system call per event on a stream that gets one event at a time. A
/// `recv` that returns less than was asked for has drained the socket just as surely, so here
/// readiness is cleared after it. (Safe against a race: tokio only clears readiness the
/// reactor has not renewed since.)
pub struct EventSocket {
    fd: AsyncFd<std::net::TcpStream>,
}

impl EventSocket {
    fn new(socket: TcpStream) -> io::Result<Self> {
        let socket = socket.into_std()?;
        // SAFETY: a std `TcpStream` owns its descriptor: it stays open, and `as_raw_fd` keeps
        // returning it, until the stream (held by the `AsyncFd`) is dropped.
        let fd = unsafe { AsyncFd::register_with_interest(socket, Interest::READABLE) }?;
        Ok(Self { fd })
    }

    /// Waits until the socket has bytes, reads them into this thread's scratch buffer and
    /// calls `on_bytes` with them. `None` when the peer closed the connection.
    pub async fn read_with<R>(&self, mut on_bytes: impl FnMut(&[u8]) -> R) -> io::Result<Option<R>> {
        loop {
            let mut ready = self.fd.readable().await?;
            let read = SCRATCH.with_borrow_mut(|scratch| match self.fd.get_ref().read(scratch) {
                Ok(0) => Ok(None),
                Ok(length) => Ok(Some((length < scratch.len(), on_bytes(&scratch[..length])))),
                Err(error) => Err(error),
            });
            match read {
                Ok(Some((drained, result))) => {
                    if drained {
                        ready.clear_ready();
                    }
                    return Ok(Some(result));
                }
                Ok(None) => return Ok(None),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => ready.clear_ready(),
                Err(error) => return Err(error),
            }
        }
    }
}

/// A `GET` whose body is an event stream.
pub struct StreamRequest<'a> {
    pub path_and_query: &'a str,
    pub cookie: Option<&'a str>,
}

/// An event stream whose response head has been read.
pub struct OpenedStream {
    pub head: ResponseHead,
    pub socket: EventSocket,
    pub body: BodyDecoder,
    /// Body bytes that arrived with the head; feed them to `body` before reading more.
    pub early_body: Vec<u8>,
}

/// Connects and sends the `GET`, then reads the response head. Any status but 200 is an
/// error carrying the start of the body as its reason.
pub async fn open_stream(endpoint: &Endpoint, request: StreamRequest<'_>) -> Result<OpenedStream, LoadError> {
    let mut socket = endpoint.connect().await?;
    let mut head = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n",
        request.path_and_query, endpoint.host
    );
    if let Some(cookie) = request.cookie {
        head.push_str("Cookie: ");
        head.push_str(cookie);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    socket.write_all(head.as_bytes()).await?;
    let mut buffer = Vec::with_capacity(4096);
    let (head, head_length) = read_head(&mut socket, &mut buffer).await?;
    buffer.drain(..head_length);
    if head.status != 200 {
        let reason = String::from_utf8_lossy(&buffer[..buffer.len().min(200)]).trim().to_owned();
        return Err(LoadError::Status { status: head.status, reason });
    }
    let body = BodyDecoder::new(head.framing);
    buffer.shrink_to_fit();
    Ok(OpenedStream { head, socket: EventSocket::new(socket)?, body, early_body: buffer })
}

/// A `POST` to send.
#[derive(Debug, Clone)]
pub struct PostRequest {
    pub path: String,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

/// The answer to a `POST`.
#[derive(Debug, Clone)]
pub struct PostAnswer {
    pub status: u16,
    pub body: Vec<u8>,
}

/// One keep-alive connection that sends one request at a time.
pub struct PostClient {
    endpoint: Endpoint,
    socket: Option<TcpStream>,
    request: Vec<u8>,
    buffer: Vec<u8>,
}

impl PostClient {
    pub fn new(endpoint: Endpoint) -> Self {
        Self { endpoint, socket: None, request: Vec::with_capacity(512), buffer: Vec::with_capacity(4096) }
    }

    /// Drops the connection (after a post that was abandoned half-way).
    pub fn reset(&mut self) {
        self.socket = None;
        self.buffer.clear();
    }

    /// Sends `request` and reads the whole answer. On any error the connection is dropped and
    /// the next call opens a new one.
    pub async fn post(
        &mut self,
        request: &PostRequest,
        cookie: Option<&str>,
    ) -> Result<PostAnswer, LoadError> {
        let result = self.exchange(request, cookie).await;
        if result.is_err() {
            self.socket = None;
        }
        result
    }

    async fn exchange(
        &mut self,
        request: &PostRequest,
        cookie: Option<&str>,
    ) -> Result<PostAnswer, LoadError> {
        use std::io::Write;
        self.request.clear();
        // Writing to a Vec cannot fail.
        let _ = write!(
            self.request,
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n",
            request.path,
            self.endpoint.host,
            request.content_type,
            request.body.len()
        );
        if let Some(cookie) = cookie {
            let _ = write!(self.request, "Cookie: {cookie}\r\n");
        }
        self.request.extend_from_slice(b"\r\n");
        self.request.extend_from_slice(&request.body);

        if self.socket.is_none() {
            self.socket = Some(self.endpoint.connect().await?);
            self.buffer.clear();
        }
        let Some(socket) = self.socket.as_mut() else { return Err(LoadError::Closed) };
        socket.write_all(&self.request).await?;
        let (head, head_length) = read_head(socket, &mut self.buffer).await?;
        let mut decoder = BodyDecoder::new(head.framing);
        let mut body = Vec::new();
        let mut consumed = head_length
            + decoder.feed(&self.buffer[head_length..], &mut |part| body.extend_from_slice(part))?;
        while !decoder.is_done() {
            // A decoder that is not done took everything it was given.
            self.buffer.clear();
            self.buffer.reserve(4096);
            if socket.read_buf(&mut self.buffer).await? == 0 {
                if matches!(decoder, BodyDecoder::UntilClose) {
                    break;
                }
                return Err(LoadError::Closed);
            }
            consumed = decoder.feed(&self.buffer, &mut |part| body.extend_from_slice(part))?;
        }
        self.buffer.drain(..consumed.min(self.buffer.len()));
        if !head.keep_alive || matches!(decoder, BodyDecoder::UntilClose) {
            self.socket = None;
        }
        Ok(PostAnswer { status: head.status, body })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dechunk(input: &[u8], piece: usize) -> (Vec<u8>, bool) {
        let mut decoder = ChunkedDecoder::default();
        let mut out = Vec::new();
        for chunk in input.chunks(piece) {
            decoder.decode(chunk, &mut |part| out.extend_from_slice(part)).unwrap();
        }
        (out, decoder.is_done())
    }

    #[test]
    fn chunked_bodies_decode_however_they_are_split() {
        let input = b"5\r\nhello\r\n1;ext=1\r\n \r\nA\r\n0123456789\r\n0\r\nTrailer: x\r\n\r\n";
        for piece in 1..=input.len() {
            assert_eq!(dechunk(input, piece), (b"hello 0123456789".to_vec(), true), "piece {piece}");
        }
    }

    #[test]
    fn an_endless_chunked_stream_is_never_done() {
        let (out, done) = dechunk(b"b\r\ndata: one\n\n\r\n", 3);
        assert_eq!(out, b"data: one\n\n");
        assert!(!done);
    }

    #[test]
    fn malformed_chunk_sizes_are_errors() {
        let mut decoder = ChunkedDecoder::default();
        assert!(decoder.decode(b"zz\r\n", &mut |_| {}).is_err());
    }

    #[test]
    fn urls_must_be_plain_http_to_a_host_and_port() {
        assert_eq!(Endpoint::parse("http://127.0.0.1:8080/").unwrap().addr.port(), 8080);
        assert!(Endpoint::parse("https://127.0.0.1:8080").is_err());
        assert!(Endpoint::parse("http://127.0.0.1:8080/sse").is_err());
    }
}
