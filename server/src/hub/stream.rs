//! One open event stream: the per-stream writer.
//!
//! It first writes its opening chunk (`retry:`, `all-users`, owed history), then waits on the
//! broadcast ring and, each time it wakes, takes everything from its cursor to the head and
//! writes it as one chunk: under load a busy stream costs one socket write per wake-up, not
//! one per event. Messages the backlog already carried are sliced off, so each arrives once.
//!
//! When it may write, and when it is over, is not decided here but by its [`StreamCursor`],
//! which does no I/O: the hyper body, the connection's task and the fan-out lane all drive the
//! stream through it, so they keep one flush interval, one keep-alive and one rule for a stream
//! that fell behind.

mod cursor;

use super::{Backlog, Frame, Hub, StreamGuard};
use bytes::{Bytes, BytesMut};
use cursor::{MAX_CHUNK_BYTES, Step, StreamCursor};
use futures_util::{Stream, StreamExt};
use std::{
    convert::Infallible,
    pin::Pin,
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::{
    sync::broadcast::{Receiver, error::RecvError, error::TryRecvError},
    time::{Instant, Interval, MissedTickBehavior},
};
use tokio_util::sync::WaitForCancellationFutureOwned;

/// The stream's cursor fell off the ring's tail.
struct Lagged;

/// What a driver that does its own waiting (the lane) does next with a stream: the cursor's
/// [`Step`], with the bytes to write.
pub(crate) enum NextWrite {
    /// Write this chunk now.
    Chunk(Bytes),
    /// Something waits, but the stream wrote too recently: come back at this time.
    WaitUntil(Instant),
    /// Nothing to write: the next frame on the ring brings the driver back.
    Idle,
    /// The stream is over (it fell behind): its task ends the body.
    End,
}

pub struct EventStream {
    hub: Hub,
    receiver: Receiver<Frame>,
    /// Written before anything from the ring.
    opening: Option<BytesMut>,
    opening_events: u64,
    /// The newest message `seq` this stream has written.
    last_seq: u64,
    /// The room version this stream's view of the room matches.
    view_version: u64,
    ticker: Interval,
    /// When the stream may write, and whether it is over.
    cursor: StreamCursor,
    /// The server's shutdown, waited on for the stream's whole life: made and registered once,
    /// not at every wake-up (thousands of streams wake for every message).
    shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
    /// Held by the connection's task, not the lane, while the lane has the stream: a client
    /// that leaves is let go at once, not when the lane next visits its stream.
    guard: Option<StreamGuard>,
}

impl EventStream {
    /// `room_view` is the encoded `all-users` (and, in a large room, `presence`) that opens
    /// the stream, with its event count.
    pub(super) fn new(
        hub: Hub,
        receiver: Receiver<Frame>,
        room_view: (String, u64),
        view_version: u64,
        guard: StreamGuard,
    ) -> Self {
        let config = hub.config();
        let (room_view, opening_events) = room_view;
        let mut opening = BytesMut::with_capacity(room_view.len() + 32);
        opening.extend_from_slice(format!("retry: {}\n\n", config.retry.as_millis()).as_bytes());
        opening.extend_from_slice(room_view.as_bytes());
        let period = tick_period(config);
        let mut ticker = tokio::time::interval_at(Instant::now() + period, period);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let shutdown = Box::pin(hub.shutdown_token().clone().cancelled_owned());
        let cursor = StreamCursor::new(Instant::now(), config.keepalive);
        Self {
            hub,
            receiver,
            opening: Some(opening),
            opening_events,
            last_seq: 0,
            view_version,
            ticker,
            cursor,
            shutdown,
            guard: Some(guard),
        }
    }

    pub(super) fn set_backlog(&mut self, backlog: Backlog) {
        if let Some(opening) = self.opening.as_mut() {
            opening.extend_from_slice(&backlog.bytes);
        }
        self.opening_events += backlog.events;
        self.last_seq = backlog.last_seq;
    }

    /// The response body: chunks until the client leaves, the stream falls behind, or the
    /// server shuts down.
    fn into_body(self) -> impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
        futures_util::stream::unfold(self, |mut stream| async move {
            let chunk = stream.next_chunk().await?;
            Some((Ok(chunk), stream))
        })
    }

    /// The stream for a response: the connection's own writer takes it whole from the
    /// returned [`StreamHandoff`] (found in the response's extensions), or else the body takes
    /// it when first polled, for a connection served by hyper.
    pub(crate) fn into_handoff(
        self,
    ) -> (StreamHandoff, impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static) {
        let handoff = StreamHandoff(Arc::new(Mutex::new(Some(self))));
        let for_body = handoff.clone();
        let body = futures_util::stream::once(async move { for_body.take() })
            .filter_map(std::future::ready)
            .flat_map(EventStream::into_body);
        (handoff, body)
    }

    /// The next chunk to write, waiting for one; `None` when the stream is over. The write is
    /// taken to happen now.
    pub(crate) async fn next_chunk(&mut self) -> Option<Bytes> {
        let chunk = self.wait_for_chunk().await;
        self.cursor.wrote_at(Instant::now());
        chunk
    }

    /// What is ready to write now, without waiting; the caller keeps the flush interval (see
    /// [`EventStream::next_write`]).
    fn try_next_chunk(&mut self) -> Result<Option<Bytes>, Lagged> {
        if let Some(opening) = self.take_opening() {
            return Ok(Some(opening));
        }
        match self.receiver.try_recv() {
            Ok(frame) => self.drain(frame),
            Err(TryRecvError::Lagged(_)) => Err(Lagged),
            Err(TryRecvError::Empty | TryRecvError::Closed) => Ok(None),
        }
    }

    /// The next piece of the opening, until it is all written: at most [`MAX_CHUNK_BYTES`] at
    /// a time, so a long replay goes out as bounded chunks like everything else (an HTTP chunk
    /// may end anywhere in an event; the client reads events from the bytes, not the chunks).
    fn take_opening(&mut self) -> Option<Bytes> {
        let opening = self.opening.as_mut()?;
        if opening.len() > MAX_CHUNK_BYTES {
            return Some(opening.split_to(MAX_CHUNK_BYTES).freeze());
        }
        let rest = self.opening.take()?;
        self.count_events(self.opening_events);
        Some(rest.freeze())
    }

    /// True when nothing is waiting to be written.
    pub(crate) fn is_idle(&self) -> bool {
        !self.has_pending() && !self.cursor.has_fallen_behind()
    }

    /// Whether anything (the opening, frames on the ring) waits to be written.
    fn has_pending(&self) -> bool {
        self.opening.is_some() || !self.receiver.is_empty()
    }

    /// What a driver that does its own waiting (the lane) does with the stream at `now`: a
    /// stream written less than the flush interval ago waits, gathering what arrives meanwhile
    /// into its next write. A stream that fell behind while the lane held it ends at its next
    /// chunk, written by its task.
    pub(crate) fn next_write(&mut self, now: Instant) -> NextWrite {
        match self.cursor.next(now, || self.has_pending()) {
            Step::Write => match self.try_next_chunk() {
                Ok(Some(chunk)) => NextWrite::Chunk(chunk),
                // Nothing was waiting after all (see [`Step::Write`]).
                Ok(None) => NextWrite::Idle,
                Err(Lagged) => {
                    self.cursor.fell_behind();
                    NextWrite::End
                }
            },
            Step::WaitUntil(at) => NextWrite::WaitUntil(at),
            Step::Idle => NextWrite::Idle,
            Step::End => NextWrite::End,
        }
    }

    /// Records a write of `chunk` made by someone else than [`EventStream::next_chunk`]'s
    /// caller; true when the chunk was cut at the size bound, so more waits behind it.
    #[must_use]
    pub(crate) fn wrote_at(&mut self, at: Instant, chunk: &[u8]) -> bool {
        self.cursor.wrote_at(at);
        cursor::was_cut(chunk.len())
    }

    /// Takes the stream's hold on the room, for the connection to keep while the lane has the
    /// stream.
    pub(crate) fn take_guard(&mut self) -> Option<StreamGuard> {
        self.guard.take()
    }

    /// Gives back what [`EventStream::take_guard`] took.
    pub(crate) fn restore_guard(&mut self, guard: Option<StreamGuard>) {
        self.guard = guard;
    }

    async fn wait_for_chunk(&mut self) -> Option<Bytes> {
        if self.cursor.has_fallen_behind() {
            return self.drop_slow_client();
        }
        if let Some(opening) = self.take_opening() {
            return Some(opening);
        }
        loop {
            tokio::select! {
                biased;
                () = self.shutdown.as_mut() => return None,
                received = self.receiver.recv() => match received {
                    Ok(frame) => match self.gather_then_drain(frame).await {
                        Ok(Some(chunk)) => return Some(chunk),
                        Ok(None) => {}
                        Err(Lagged) => return self.drop_slow_client(),
                    },
                    Err(RecvError::Lagged(_)) => return self.drop_slow_client(),
                    Err(RecvError::Closed) => return None,
                },
                _ = self.ticker.tick() => {
                    if let Some(chunk) = self.on_tick() {
                        return Some(chunk);
                    }
                }
            }
        }
    }

    /// Waits out the flush interval when the last write was recent, then drains.
    async fn gather_then_drain(&mut self, first: Frame) -> Result<Option<Bytes>, Lagged> {
        // `first` is taken off the ring already: something waits, whatever the ring holds.
        if let Step::WaitUntil(flush_at) = self.cursor.next(Instant::now(), || true) {
            tokio::select! {
                () = self.shutdown.as_mut() => return Ok(None),
                () = tokio::time::sleep_until(flush_at) => {}
            }
        }
        self.drain(first)
    }

    /// Gathers `first` and everything behind it on the ring, up to the head, into one chunk.
    /// `Ok(None)` when all of it was already written (e.g. messages the backlog carried).
    fn drain(&mut self, first: Frame) -> Result<Option<Bytes>, Lagged> {
        // The common wake-up carries one part: it is written as it is, with no allocation; a
        // vector and a copy into one chunk only when there are more.
        let mut first_part: Option<Bytes> = None;
        let mut more_parts: Vec<Bytes> = Vec::new();
        let mut size = 0;
        let mut events = 0;
        let mut next = Some(first);
        while let Some(frame) = next.take() {
            if let Some(bytes) = self.unwritten_part(frame, &mut events) {
                size += bytes.len();
                match first_part {
                    None => first_part = Some(bytes),
                    Some(_) => more_parts.push(bytes),
                }
            }
            if size >= MAX_CHUNK_BYTES {
                break;
            }
            match self.receiver.try_recv() {
                Ok(frame) => next = Some(frame),
                // Whatever was gathered goes with the stream: replay resends it.
                Err(TryRecvError::Lagged(_)) => return Err(Lagged),
                Err(TryRecvError::Empty | TryRecvError::Closed) => break,
            }
        }
        self.count_events(events);
        Ok(match first_part {
            Some(first) if !more_parts.is_empty() => {
                let mut chunk = BytesMut::with_capacity(size);
                chunk.extend_from_slice(&first);
                for part in &more_parts {
                    chunk.extend_from_slice(part);
                }
                Some(chunk.freeze())
            }
            single => single,
        })
    }

    /// The part of a frame this stream has not written yet.
    fn unwritten_part(&mut self, frame: Frame, events: &mut u64) -> Option<Bytes> {
        match frame {
            Frame::Messages { first_seq, offsets, bytes } => {
                let count = offsets.len() as u64;
                let last = first_seq + count - 1;
                if last <= self.last_seq {
                    return None;
                }
                let skip = self.last_seq.saturating_sub(first_seq - 1) as usize;
                self.last_seq = last;
                *events += count - skip as u64;
                Some(bytes.slice(offsets[skip]..))
            }
            Frame::Presence { version, bytes } => {
                // A snapshot may already have shown this change.
                if version <= self.view_version {
                    return None;
                }
                self.view_version = version;
                *events += 1;
                Some(bytes)
            }
            Frame::Summary { bytes } => {
                *events += 1;
                Some(bytes)
            }
        }
    }

    /// A `users` snapshot when this stream's view of the room is wrong, else a keep-alive
    /// comment after long enough silence.
    pub(crate) fn on_tick(&mut self) -> Option<Bytes> {
        if self.receiver.is_empty() && self.view_version != self.hub.room_version() {
            let (version, snapshot) = self.hub.users_snapshot();
            self.view_version = version;
            self.count_events(1);
            return Some(snapshot);
        }
        self.cursor.keep_alive(Instant::now())
    }

    fn drop_slow_client(&self) -> Option<Bytes> {
        self.hub.metrics().slow_client_dropped();
        tracing::info!("dropping a stream that fell behind; it will catch up by replay");
        None
    }

    fn count_events(&self, events: u64) {
        if events > 0 {
            self.hub.metrics().events_sent(events);
        }
    }
}

/// How often a stream checks its view of the room and its silence: one timer serves both
/// duties, ticking often enough for each.
pub(crate) fn tick_period(config: &super::HubConfig) -> Duration {
    config.users_interval.min(config.keepalive).max(Duration::from_millis(10))
}

/// An event stream waiting for whoever serves its response (see
/// [`EventStream::into_handoff`]). The lock is taken once per stream, never per event.
#[derive(Clone)]
pub(crate) struct StreamHandoff(Arc<Mutex<Option<EventStream>>>);

impl StreamHandoff {
    /// The stream, to the first caller only.
    pub(crate) fn take(&self) -> Option<EventStream> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take()
    }
}
