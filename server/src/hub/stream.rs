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

use super::{
    Hub, Roster, StreamGuard,
    presence::RoomView,
    ring::{Frame, Owed, Watch},
};
use crate::store::{MessageStore, StoreError};
use bytes::{Bytes, BytesMut};
use cursor::{MAX_CHUNK_BYTES, Step, StreamCursor};
use futures_util::{Stream, StreamExt, task::AtomicWaker};
use std::{
    convert::Infallible,
    pin::Pin,
    sync::{Arc, Mutex},
    task::Poll,
    time::Duration,
};
use tokio::{
    sync::broadcast::{Receiver, error::RecvError, error::TryRecvError},
    time::{Instant, Interval, MissedTickBehavior},
};
use tokio_util::sync::WaitForCancellationFutureOwned;

/// The stream's cursor fell off a ring's tail.
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

/// One room the stream follows.
struct Followed {
    roster: Roster,
    receiver: Receiver<Frame>,
    /// The room version this stream's view of the room matches.
    view_version: u64,
    /// A frame taken off the ring before the rooms' cut passed it (see [`super::rooms`]): it
    /// is written once the cut has, so that messages of several rooms go out in `seq` order.
    held: Option<Frame>,
}

pub struct EventStream {
    hub: Hub,
    /// At least one; a version 1 stream follows `general` alone.
    followed: Vec<Followed>,
    /// Woken by every frame of the followed rooms, when there are several (see
    /// [`next_frame`]); registered with each of their rings for as long as `_watches` lives.
    woken: Arc<AtomicWaker>,
    _watches: Vec<Watch>,
    /// Speaks version 1: events without their room.
    version_1: bool,
    /// Written before anything from the rings.
    opening: Option<BytesMut>,
    opening_events: u64,
    /// Messages up to this `seq` were in the stream's history: live ones up to it are skipped.
    /// Then the newest `seq` written.
    written_through: u64,
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
    /// A stream opening with `views`, the encoded `all-users` (and, in a large room,
    /// `presence`) of each room it follows, in order.
    pub(super) fn new(hub: Hub, views: Vec<RoomView>, version_1: bool, guard: StreamGuard) -> Self {
        let config = hub.config();
        let size: usize = views.iter().map(|view| view.opening.0.len()).sum();
        let mut opening = BytesMut::with_capacity(size + 32);
        opening.extend_from_slice(format!("retry: {}\n\n", config.retry.as_millis()).as_bytes());
        let mut opening_events = 0;
        let followed: Vec<Followed> = views
            .into_iter()
            .map(|RoomView { roster, receiver, opening: (view, events), version }| {
                opening.extend_from_slice(&view);
                opening_events += events;
                Followed { roster, receiver, view_version: version, held: None }
            })
            .collect();
        let woken = Arc::new(AtomicWaker::new());
        // A stream of one room waits on its ring's channel alone.
        let watches = match followed.as_slice() {
            [_] => Vec::new(),
            several => several.iter().map(|followed| followed.roster.ring().watch(&woken)).collect(),
        };
        let period = tick_period(config);
        let mut ticker = tokio::time::interval_at(Instant::now() + period, period);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let shutdown = Box::pin(hub.shutdown_token().clone().cancelled_owned());
        let cursor = StreamCursor::new(Instant::now(), config.keepalive);
        Self {
            hub,
            followed,
            woken,
            _watches: watches,
            version_1,
            opening: Some(opening),
            opening_events,
            written_through: 0,
            ticker,
            cursor,
            shutdown,
            guard: Some(guard),
        }
    }

    /// Adds the history the client is owed to the opening: for each room it follows, in one
    /// `seq` order, after a `history-gap` for each room that lost some of it. Read up to the
    /// rooms' cut, taken now that the stream is on every ring: every later message reaches
    /// it live, every earlier one is history.
    pub(super) async fn write_backlog(
        &mut self,
        store: &dyn MessageStore,
        last_event_id: Option<u64>,
    ) -> Result<(), StoreError> {
        let cut = self.hub.rooms().cut();
        let history = self.hub.config().history;
        let mut gaps = Vec::new();
        let mut owed: Vec<Owed> = Vec::new();
        for followed in &self.followed {
            let ring = followed.roster.ring();
            let backlog = ring.backlog(store, last_event_id, history, cut).await?;
            if let Some(from) = backlog.gap_from {
                gaps.push(ring.gap(from));
            }
            owed.extend(backlog.messages);
        }
        if self.followed.len() > 1 {
            owed.sort_unstable_by_key(|owed| owed.seq);
        }
        if let Some(opening) = self.opening.as_mut() {
            for gap in &gaps {
                opening.extend_from_slice(gap.for_version_1(self.version_1));
            }
            for owed in &owed {
                opening.extend_from_slice(owed.bytes.for_version_1(self.version_1));
            }
        }
        self.opening_events += (gaps.len() + owed.len()) as u64;
        self.written_through = cut;
        Ok(())
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

    /// The room whose lane may write this stream while it is idle: the lane of its one room.
    /// A stream that follows several rooms is written by its own task.
    pub(crate) fn lane_room(&self) -> Option<&Roster> {
        match self.followed.as_slice() {
            [only] => Some(&only.roster),
            _ => None,
        }
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
        self.drain(None)
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

    /// Whether anything (the opening, frames on the rings) waits to be written.
    fn has_pending(&self) -> bool {
        self.opening.is_some()
            || self.followed.iter().any(|followed| followed.held.is_some() || !followed.receiver.is_empty())
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

    /// Takes the stream's hold on its rooms, for the connection to keep while the lane has
    /// the stream.
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
            // Frames held back for the cut were taken off their rings: no ring will wake the
            // stream for them. Draining again waits for the batch being put on its rings
            // (see `drain_rooms`), then writes them.
            if self.followed.iter().any(|followed| followed.held.is_some()) {
                match self.drain(None) {
                    Ok(Some(chunk)) => return Some(chunk),
                    Ok(None) => continue,
                    Err(Lagged) => return self.drop_slow_client(),
                }
            }
            tokio::select! {
                biased;
                () = self.shutdown.as_mut() => return None,
                received = next_frame(&mut self.followed, &self.woken) => match received {
                    Ok((room, frame)) => match self.gather_then_drain(room, frame).await {
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
    async fn gather_then_drain(&mut self, room: usize, first: Frame) -> Result<Option<Bytes>, Lagged> {
        // `first` is taken off the ring already: something waits, whatever the rings hold.
        if let Step::WaitUntil(flush_at) = self.cursor.next(Instant::now(), || true) {
            tokio::select! {
                () = self.shutdown.as_mut() => return Ok(None),
                () = tokio::time::sleep_until(flush_at) => {}
            }
        }
        self.drain(Some((room, first)))
    }

    /// Gathers `first` and everything behind it on the rings, up to their heads, into one
    /// chunk. `Ok(None)` when all of it was already written (e.g. messages the backlog
    /// carried).
    fn drain(&mut self, first: Option<(usize, Frame)>) -> Result<Option<Bytes>, Lagged> {
        if self.followed.len() == 1 {
            return self.drain_one_room(first.map(|(_, frame)| frame));
        }
        if let Some((room, frame)) = first
            && let Some(followed) = self.followed.get_mut(room)
        {
            followed.held = Some(frame);
        }
        self.drain_rooms()
    }

    /// [`EventStream::drain`] for a stream of one room: its ring is in `seq` order already.
    fn drain_one_room(&mut self, first: Option<Frame>) -> Result<Option<Bytes>, Lagged> {
        // The common wake-up carries one part: it is written as it is, with no allocation; a
        // vector and a copy into one chunk only when there are more.
        let mut parts = Parts::default();
        let mut events = 0;
        let mut next = match first {
            Some(frame) => Some(frame),
            None => try_recv(&mut self.followed[0].receiver)?,
        };
        while let Some(frame) = next.take() {
            if let Some(bytes) = self.unwritten_part(0, frame, &mut events) {
                parts.push(bytes);
            }
            if parts.size >= MAX_CHUNK_BYTES {
                break;
            }
            // Whatever was gathered goes with the stream if it lagged: replay resends it.
            next = try_recv(&mut self.followed[0].receiver)?;
        }
        self.count_events(events);
        Ok(parts.into_chunk())
    }

    /// [`EventStream::drain`] for a stream of several rooms: takes from each ring what is at
    /// or below the rooms' cut, holds back the rest, and writes the messages in `seq` order
    /// (presence changes first: their order against messages does not matter).
    fn drain_rooms(&mut self) -> Result<Option<Bytes>, Lagged> {
        let mut cut = self.hub.rooms().cut_now();
        let mut taken: Vec<(usize, Frame)> = Vec::new();
        for _ in 0..2 {
            for (index, followed) in self.followed.iter_mut().enumerate() {
                loop {
                    let frame = match followed.held.take() {
                        Some(frame) => frame,
                        None => match try_recv(&mut followed.receiver)? {
                            Some(frame) => frame,
                            None => break,
                        },
                    };
                    if let Frame::Messages { seqs, .. } = &frame
                        && seqs.last().is_some_and(|last| *last > cut)
                    {
                        followed.held = Some(frame);
                        break;
                    }
                    taken.push((index, frame));
                }
            }
            if self.followed.iter().all(|followed| followed.held.is_none()) {
                break;
            }
            // A batch is being put on its rings: the lock is held until it is on all of them,
            // so taking it waits for the cut to pass what is held (a few microseconds).
            cut = self.hub.rooms().cut();
        }
        let mut events = 0;
        let mut presence = Parts::default();
        let mut messages: Vec<(u64, Bytes)> = Vec::new();
        for (index, frame) in taken {
            match frame {
                Frame::Messages { seqs, v2, v1 } => {
                    let sliced = if self.version_1 { v1.as_ref().unwrap_or(&v2) } else { &v2 };
                    for (i, seq) in seqs.iter().enumerate() {
                        if *seq > self.written_through {
                            let end = sliced.offsets.get(i + 1).copied().unwrap_or(sliced.bytes.len());
                            messages.push((*seq, sliced.bytes.slice(sliced.offsets[i]..end)));
                        }
                    }
                }
                frame => {
                    if let Some(bytes) = self.unwritten_part(index, frame, &mut events) {
                        presence.push(bytes);
                    }
                }
            }
        }
        messages.sort_unstable_by_key(|(seq, _)| *seq);
        if let Some((last, _)) = messages.last() {
            self.written_through = self.written_through.max(*last);
        }
        events += messages.len() as u64;
        for (_, bytes) in messages {
            presence.push(bytes);
        }
        self.count_events(events);
        Ok(presence.into_chunk())
    }

    /// The part of a frame of the `room`th followed room this stream has not written yet.
    fn unwritten_part(&mut self, room: usize, frame: Frame, events: &mut u64) -> Option<Bytes> {
        let version_1 = self.version_1;
        match frame {
            Frame::Messages { seqs, v2, v1 } => {
                let skip = seqs.partition_point(|seq| *seq <= self.written_through);
                let last = *seqs.last()?;
                if skip == seqs.len() {
                    return None;
                }
                self.written_through = last;
                *events += (seqs.len() - skip) as u64;
                let sliced = if version_1 { v1.as_ref().unwrap_or(&v2) } else { &v2 };
                Some(sliced.from(skip))
            }
            Frame::Presence { version, bytes } => {
                let followed = self.followed.get_mut(room)?;
                // A snapshot may already have shown this change.
                if version <= followed.view_version {
                    return None;
                }
                followed.view_version = version;
                *events += 1;
                Some(bytes.for_version_1(version_1).clone())
            }
            Frame::Summary { bytes } => {
                *events += 1;
                Some(bytes.for_version_1(version_1).clone())
            }
        }
    }

    /// A `users` snapshot of each room this stream's view of is wrong, else a keep-alive
    /// comment after long enough silence.
    pub(crate) fn on_tick(&mut self) -> Option<Bytes> {
        let mut snapshots = Parts::default();
        let mut events = 0;
        for followed in &mut self.followed {
            if followed.held.is_none()
                && followed.receiver.is_empty()
                && followed.view_version != followed.roster.version()
            {
                let (version, snapshot) = followed.roster.users_snapshot();
                followed.view_version = version;
                events += 1;
                snapshots.push(snapshot.for_version_1(self.version_1).clone());
            }
        }
        if events > 0 {
            self.count_events(events);
            return snapshots.into_chunk();
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

/// The next frame of any of the rooms, with the room's index. A stream of one room waits on
/// its ring alone. One of several looks at each of its rings and, when all are empty, waits
/// for `woken`, which every frame of every one of them wakes (see [`Ring::watch`]); its drain
/// then looks at them all.
///
/// [`Ring::watch`]: super::ring::Ring::watch
async fn next_frame(followed: &mut [Followed], woken: &AtomicWaker) -> Result<(usize, Frame), RecvError> {
    if let [only] = followed {
        return only.receiver.recv().await.map(|frame| (0, frame));
    }
    std::future::poll_fn(|cx| {
        // Registered before looking: a frame sent after the look wakes the task again.
        woken.register(cx.waker());
        for (index, followed) in followed.iter_mut().enumerate() {
            match followed.receiver.try_recv() {
                Ok(frame) => return Poll::Ready(Ok((index, frame))),
                Err(TryRecvError::Empty) => {}
                Err(TryRecvError::Lagged(missed)) => return Poll::Ready(Err(RecvError::Lagged(missed))),
                Err(TryRecvError::Closed) => return Poll::Ready(Err(RecvError::Closed)),
            }
        }
        Poll::Pending
    })
    .await
}

/// The next frame on a ring, if one is there.
fn try_recv(receiver: &mut Receiver<Frame>) -> Result<Option<Frame>, Lagged> {
    match receiver.try_recv() {
        Ok(frame) => Ok(Some(frame)),
        Err(TryRecvError::Lagged(_)) => Err(Lagged),
        Err(TryRecvError::Empty | TryRecvError::Closed) => Ok(None),
    }
}

/// The pieces of one chunk: one piece goes out as it is, with no allocation; several are
/// copied into one buffer.
#[derive(Default)]
struct Parts {
    first: Option<Bytes>,
    more: Vec<Bytes>,
    size: usize,
}

impl Parts {
    fn push(&mut self, bytes: Bytes) {
        if bytes.is_empty() {
            return;
        }
        self.size += bytes.len();
        match self.first {
            None => self.first = Some(bytes),
            Some(_) => self.more.push(bytes),
        }
    }

    fn into_chunk(self) -> Option<Bytes> {
        let first = self.first?;
        if self.more.is_empty() {
            return Some(first);
        }
        let mut chunk = BytesMut::with_capacity(self.size);
        chunk.extend_from_slice(&first);
        for part in &self.more {
            chunk.extend_from_slice(part);
        }
        Some(chunk.freeze())
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
