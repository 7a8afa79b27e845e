//! The write deadline every accepted socket gets: a client that stops reading is disconnected
//! (see the parent module for why).
//!
//! `tokio-io-timeout`'s `TimeoutWriter` has the same rule, and we measured it as a swap: it
//! keeps a `Sleep` inside every socket whether a write ever waits (176 bytes around a
//! `TcpStream` against our 72, and idle streams are what a chat server holds most of), it is
//! not `Unpin`, so hyper's connection would take it boxed and the lane could no longer take
//! the socket back out of it, and its timeout is an anonymous `TimedOut` error where we count
//! the slow client at the moment it is dropped. So the deadline stays these few lines: a
//! `Sleep` boxed only while a write is pending.

use crate::metrics::Metrics;
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
    time::Sleep,
};

/// A socket whose writes fail once they have made no progress for `timeout`.
pub struct WriteDeadline<T> {
    inner: T,
    timeout: Duration,
    /// Armed while a write is pending; cleared when one makes progress.
    deadline: Option<Pin<Box<Sleep>>>,
    metrics: Arc<Metrics>,
}

impl<T> WriteDeadline<T> {
    pub(super) fn new(inner: T, timeout: Duration, metrics: Arc<Metrics>) -> Self {
        Self { inner, timeout, deadline: None, metrics }
    }

    /// The socket, for someone else to write (after a write that completed: no deadline is
    /// armed then).
    pub(super) fn into_inner(self) -> T {
        self.inner
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
