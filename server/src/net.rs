//! The listener and the socket wrapper that enforce the protocol's rule for slow clients at
//! the only place it can be enforced: the socket.
//!
//! When a client stops reading, its kernel buffers fill, hyper stops polling the response body,
//! and the stream's writer never runs again to notice it fell behind the hub's ring. So every
//! accepted socket gets a write deadline: a write (or flush) that makes no progress for the
//! configured time fails, hyper drops the connection, and the stream closes like any other.
//! Everyone else is unaffected, and the client catches up by replay when it reconnects.

use crate::metrics::Metrics;
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
    service::TowerToHyperService,
};
use std::{
    future::Future,
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
    time::Duration,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpListener,
    time::Sleep,
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
    loop {
        let (stream, _peer) = tokio::select! {
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
        // Best effort: a socket without NODELAY still works, only with more latency.
        let _ = stream.set_nodelay(true);
        let io =
            TokioIo::new(WriteDeadline::new(stream, options.write_timeout, Arc::clone(&options.metrics)));
        let service = TowerToHyperService::new(router.clone());
        let connection = connections.watch(http.serve_connection(io, service));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(options.grace, connections.shutdown()).await.is_err() {
        tracing::warn!("connections still open after the shutdown grace period; stopping anyway");
    }
    Ok(())
}

/// How [`serve`] treats connections.
pub struct ServeOptions {
    /// A write that makes no progress for this long fails (see [`WriteDeadline`]).
    pub write_timeout: Duration,
    /// How long shutdown waits for open connections.
    pub grace: Duration,
    pub metrics: Arc<Metrics>,
}

/// A client has this long to send its request headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Requests are small (bodies are capped at 16 KiB by default); hyper's read buffer may not
/// grow past this.
const MAX_BUF_SIZE: usize = 64 * 1024;

/// A socket whose writes fail once they have made no progress for `timeout`.
pub struct WriteDeadline<T> {
    inner: T,
    timeout: Duration,
    /// Armed while a write is pending; cleared when one makes progress.
    deadline: Option<Pin<Box<Sleep>>>,
    metrics: Arc<Metrics>,
}

impl<T> WriteDeadline<T> {
    fn new(inner: T, timeout: Duration, metrics: Arc<Metrics>) -> Self {
        Self { inner, timeout, deadline: None, metrics }
    }

    /// Called when the inner write is pending: fails once the deadline passes.
    fn poll_deadline<R>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<R>> {
        let timeout = self.timeout;
        let deadline = self.deadline.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        ready!(deadline.as_mut().poll(cx));
        self.deadline = None;
        self.metrics.slow_client_dropped();
        tracing::info!("dropping a connection whose client stopped reading");
        Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "client stopped reading")))
    }

    fn progressed<R>(&mut self, result: Poll<io::Result<R>>, cx: &mut Context<'_>) -> Poll<io::Result<R>> {
        match result {
            Poll::Pending => self.poll_deadline(cx),
            ready => {
                self.deadline = None;
                ready
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WriteDeadline<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.progressed(result, cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.progressed(result, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = Pin::new(&mut self.inner).poll_flush(cx);
        self.progressed(result, cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
