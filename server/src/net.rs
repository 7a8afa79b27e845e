//! The listener and the socket wrapper that enforce the protocol's rule for slow clients at
//! the only place it can be enforced: the socket.
//!
//! When a client stops reading, its kernel buffers fill, hyper stops polling the response body,
//! and the stream's writer never runs again to notice it fell behind the hub's ring. So every
//! accepted socket gets a write deadline: a write (or flush) that makes no progress for the
//! configured time fails, hyper drops the connection, and the stream closes like any other.
//! Everyone else is unaffected, and the client catches up by replay when it reconnects.

use crate::metrics::Metrics;
use axum::serve::Listener;
use std::{
    future::Future,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{Arc, atomic::Ordering},
    task::{Context, Poll, ready},
    time::Duration,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    time::Sleep,
};

/// Accepts TCP connections with `TCP_NODELAY` (events are small and latency matters) and a
/// write deadline.
pub struct GuardedListener {
    inner: TcpListener,
    write_timeout: Duration,
    metrics: Arc<Metrics>,
}

impl GuardedListener {
    pub fn new(inner: TcpListener, write_timeout: Duration, metrics: Arc<Metrics>) -> Self {
        Self { inner, write_timeout, metrics }
    }
}

impl Listener for GuardedListener {
    type Io = WriteDeadline<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (stream, addr) = Listener::accept(&mut self.inner).await;
        // Best effort: a socket without NODELAY still works, only with more latency.
        let _ = stream.set_nodelay(true);
        (WriteDeadline::new(stream, self.write_timeout, Arc::clone(&self.metrics)), addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

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
        self.metrics.slow_clients_dropped_total.fetch_add(1, Ordering::Relaxed);
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
