//! The listener: accepts connections, tells event streams from other requests, and serves
//! each where it belongs.
//!
//! - Event streams (`GET /sse`) are written by a minimal HTTP/1.1 writer of our own
//!   ([`event_stream`]), which keeps no buffers between writes; everything else is served by
//!   hyper.
//! - Every socket gets a write deadline ([`deadline`]), the protocol's rule for slow clients
//!   enforced at the only place it can be: when a client stops reading, its kernel buffers
//!   fill, the body stops being polled, and the stream's writer never runs again to notice it
//!   fell behind the hub's ring. A write that makes no progress for the configured time fails,
//!   the connection closes like any other, everyone else is unaffected, and the client catches
//!   up by replay when it reconnects.
//!
//! Event streams are served on a runtime of their own ([`StreamRuntime`]): a fan-out round
//! wakes every stream at once, and on a shared runtime a `POST` that arrives meanwhile (and its
//! answer) would queue behind all of them, so the publisher's next message would wait for the
//! whole round. On their own threads, requests are scheduled by the kernel beside the round,
//! the next message is committed while the round runs, and the streams not yet written pick it
//! up in the same write: the busier the room, the more events each write carries.

mod chunk;
mod connection;
mod deadline;
mod event_stream;
mod lane;
mod sharing;

pub use lane::Lane;

use crate::metrics::Metrics;
use axum::Router;
use connection::{HEADER_READ_TIMEOUT, ServeConnection};
use hyper::server::conn::http1;
use hyper_util::{rt::TokioTimer, server::graceful::GracefulShutdown};
use std::{io, sync::Arc, time::Duration};
use tokio::{
    net::TcpListener,
    runtime::{Handle, Runtime},
    sync::Semaphore,
};
use tokio_util::sync::CancellationToken;

/// Serves `router` on `listener` over HTTP/1.1 until `shutdown`, then lets open connections
/// finish (each stream ends itself on the same signal) for at most `grace`.
///
/// This is axum's `serve` reduced to what a chat needs: HTTP/1.1 only (browsers speak it to a
/// plain-HTTP origin, and an SSE stream is one long response), so each connection's task holds
/// one protocol's state, not the larger of HTTP/1 and HTTP/2's; `TCP_NODELAY`, because events
/// are small and latency matters; and the write deadline below on every socket.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    options: ServeOptions,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT).max_buf_size(MAX_BUF_SIZE);
    let connections = GracefulShutdown::new();
    let connection_slots = Arc::new(Semaphore::new(options.max_connections));
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait a little instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(connection_slot) = Arc::clone(&connection_slots).try_acquire_owned() else {
            tokio::spawn(refuse_connection(stream));
            continue;
        };
        // Best effort: a socket without NODELAY still works, only with more latency.
        let _ = stream.set_nodelay(true);
        let serve = ServeConnection {
            http: http.clone(),
            router: router.clone(),
            watcher: connections.watcher(),
            write_timeout: options.write_timeout,
            metrics: Arc::clone(&options.metrics),
            shutdown: shutdown.clone(),
            lane: options.lane.clone(),
            peer,
            connection_slot,
        };
        let streams = options.streams.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            match first_request(&stream, &shutdown).await {
                // Moved to the stream runtime's I/O driver, so its wake-ups stay on its threads.
                FirstRequest::EventStream => match stream.into_std() {
                    Ok(stream) => {
                        streams.spawn(async move {
                            match tokio::net::TcpStream::from_std(stream) {
                                Ok(stream) => event_stream::serve(stream, serve).await,
                                Err(error) => tracing::debug!(%error, "cannot move a connection"),
                            }
                        });
                    }
                    Err(error) => tracing::debug!(%error, "cannot move a connection"),
                },
                FirstRequest::Other => serve.run(stream).await,
                FirstRequest::Nothing => {}
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(options.grace, connections.shutdown()).await.is_err() {
        tracing::warn!("connections still open after the shutdown grace period; stopping anyway");
    }
    Ok(())
}

/// The whole answer to a connection over `--max-connections`: written at once, so a client
/// learns to come back later instead of waiting in a queue nobody serves.
const CONNECTION_LIMIT_ANSWER: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
    content-type: text/plain; charset=utf-8\r\nretry-after: 5\r\ncontent-length: 53\r\n\
    connection: close\r\n\r\nthe server is at its connection limit: retry shortly\n";

/// How long a refused connection is read (and its bytes dropped) after its answer, so that
/// closing it does not reset the connection before the client has read the 503.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);

/// Answers a connection over the limit with 503 and closes it. The request is not read (it may
/// never come); whatever the client sends meanwhile is read and dropped for a moment, since
/// closing a socket with unread bytes resets it and may destroy the answer in flight.
async fn refuse_connection(mut stream: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let answered = async {
        stream.write_all(CONNECTION_LIMIT_ANSWER).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 1024];
        while stream.read(&mut sink).await? > 0 {}
        io::Result::Ok(())
    };
    let _ = tokio::time::timeout(REFUSAL_LINGER, answered).await;
}

/// The request line every event stream starts with (`GET /sse?id=...`).
const EVENT_STREAM_REQUEST: &[u8] = b"GET /sse";

/// What a connection's first bytes say about its first request.
#[derive(Debug, PartialEq, Eq)]
enum FirstRequest {
    /// `GET /sse`: served by [`event_stream`] on the streams' runtime.
    EventStream,
    /// Anything else, or too little to tell: served by hyper, which is always correct, only not
    /// placed for fan-out.
    Other,
    /// Nothing came before the header timeout (or the client left, or the server is stopping):
    /// the connection is closed, as hyper would close it.
    Nothing,
}

/// Judges the first request from its first bytes, without consuming them.
async fn first_request(stream: &tokio::net::TcpStream, shutdown: &CancellationToken) -> FirstRequest {
    let mut start = [0u8; EVENT_STREAM_REQUEST.len() + 1];
    let peeked = tokio::select! {
        () = shutdown.cancelled() => return FirstRequest::Nothing,
        peeked = tokio::time::timeout(HEADER_READ_TIMEOUT, stream.peek(&mut start)) => peeked,
    };
    match peeked {
        Ok(Ok(0)) | Ok(Err(_)) | Err(_) => FirstRequest::Nothing,
        Ok(Ok(len))
            if len == start.len()
                && start.starts_with(EVENT_STREAM_REQUEST)
                && matches!(start[EVENT_STREAM_REQUEST.len()], b'?' | b' ') =>
        {
            FirstRequest::EventStream
        }
        Ok(Ok(_)) => FirstRequest::Other,
    }
}

/// The runtime event streams are served on (see the module comment), with as many threads as
/// the process may use. It shuts down without waiting when dropped: by then the server has
/// ended every stream, and a runtime must not block the runtime that drops it.
pub struct StreamRuntime {
    runtime: Option<Runtime>,
}

impl StreamRuntime {
    pub fn new() -> io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .thread_name("ssechat-streams")
            .enable_all()
            .build()?;
        Ok(Self { runtime: Some(runtime) })
    }

    /// Where to spawn; `None` never happens before drop.
    pub fn handle(&self) -> Option<Handle> {
        self.runtime.as_ref().map(|runtime| runtime.handle().clone())
    }
}

impl Drop for StreamRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// How [`serve`] treats connections.
pub struct ServeOptions {
    /// Where connections that open an event stream are served.
    pub streams: Handle,
    /// Writes idle event streams (started on `streams`).
    pub lane: Lane,
    /// A write that makes no progress for this long fails (see [`WriteDeadline`]).
    pub write_timeout: Duration,
    /// How long shutdown waits for open connections.
    pub grace: Duration,
    /// Connections served at once; past it, each new one is answered 503 and closed.
    pub max_connections: usize,
    pub metrics: Arc<Metrics>,
}

/// Requests are small (bodies are capped at 16 KiB by default); hyper's read buffer may not
/// grow past this.
const MAX_BUF_SIZE: usize = 64 * 1024;

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::{io::AsyncWriteExt, net::TcpStream};

    /// What the server judges of a connection whose client sent `first` (then nothing).
    async fn judged(first: &[u8]) -> FirstRequest {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let mut client = TcpStream::connect(listener.local_addr().expect("address")).await.expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        client.write_all(first).await.expect("write");
        first_request(&server, &CancellationToken::new()).await
    }

    #[tokio::test]
    async fn event_stream_requests_are_told_from_the_others_by_their_request_line() {
        assert_eq!(judged(b"GET /sse?id=a&name=b HTTP/1.1\r\n").await, FirstRequest::EventStream);
        assert_eq!(judged(b"GET /sse HTTP/1.1\r\n").await, FirstRequest::EventStream);
        assert_eq!(judged(b"POST /message HTTP/1.1\r\n").await, FirstRequest::Other);
        assert_eq!(judged(b"GET /sse-not HTTP/1.1\r\n").await, FirstRequest::Other);
        assert_eq!(judged(b"GET / HTTP/1.1\r\n\r\n").await, FirstRequest::Other);
    }

    #[tokio::test]
    async fn a_silent_client_is_not_waited_for_past_shutdown() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let _client = TcpStream::connect(listener.local_addr().expect("address")).await.expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        assert_eq!(first_request(&server, &shutdown).await, FirstRequest::Nothing);
    }

    #[tokio::test]
    async fn a_client_that_leaves_without_a_word_is_let_go() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("address")).await.expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        drop(client);
        assert_eq!(first_request(&server, &CancellationToken::new()).await, FirstRequest::Nothing);
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_client_is_let_go_after_the_header_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let _client = TcpStream::connect(listener.local_addr().expect("address")).await.expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        // With the clock paused, tokio advances it to the timeout as soon as all else waits.
        assert_eq!(first_request(&server, &CancellationToken::new()).await, FirstRequest::Nothing);
    }
}
