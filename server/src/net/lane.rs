//! The fan-out lanes: for each room, one task that writes every idle event stream of the room.
//!
//! Most streams are idle most of the time: their client keeps up, and they wait for the next
//! event. With a task per stream, each new event cost every stream a wake-up, a trip through
//! the scheduler, a poll through its connection's futures, and then the socket write that is
//! the only part moving bytes: at 1,000 subscribers the user-space part was a fifth of the
//! server's time. The lane holds the idle streams instead (each one's cursor on the ring and
//! the write half of its socket) and, when new frames reach the ring, writes each stream what
//! it lacks in one loop: a non-blocking `writev` per stream and nothing else. Streams later in
//! the loop take what arrived meanwhile in the same write, as they did before.
//!
//! Each room has its own lane, started when a stream of the room is first parked, and ending
//! when the room goes: a room's news visits only its own streams. A stream that follows
//! several rooms is written by its task alone (see [`EventStream::lane_room`]).
//!
//! The lane never waits on a socket. A stream goes back to its connection's task, which has
//! the write deadline and the flush interval for busy streams, when its socket will not take
//! a whole chunk (the task finishes what the lane began), when its cursor fell off the ring,
//! when a chunk reached the size bound, or at shutdown. The task gives it back to the lane as
//! soon as it is idle again.
//!
//! The lane keeps the streams' flush interval, as each stream's cursor rules it (see
//! [`EventStream::next_write`]): a stream written less than 2 ms ago is passed over and visited again
//! when the interval is up, with everything that arrived meanwhile in one write. Without it, a
//! burst of joins cost one write per `new-user` per stream (509,500 writes for 10,000 joins,
//! against 3 s to connect them all instead of 0.7).

use super::{
    chunk::{CHUNK_SIZE_LINE_BYTES, chunk_parts, rest_of},
    sharing::share_the_core,
};
use crate::{
    hub::{EventStream, Frame, Hub, NextWrite},
    metrics::Metrics,
};
use app::protocol::RoomName;
use bytes::Bytes;
use std::{
    collections::HashMap,
    io::{self, IoSlice},
    sync::{Arc, Mutex},
};
use tokio::{
    net::tcp::OwnedWriteHalf,
    runtime::Handle,
    sync::{
        broadcast::{
            self,
            error::{RecvError, TryRecvError},
        },
        mpsc, oneshot,
    },
    time::{Instant, MissedTickBehavior},
};

/// A stream the lane writes, and how to hand it back to its connection's task.
pub(super) struct Parked {
    /// Boxed: it moves between the task and the lane at every park and resume, and a task's
    /// future keeps a slot for each value it holds across an `.await` (see
    /// `event_stream::write_live_stream`).
    pub stream: Box<EventStream>,
    pub writer: OwnedWriteHalf,
    pub resume: oneshot::Sender<Resumed>,
}

/// A stream back from the lane, with the end of a chunk the lane began and the socket would
/// not take.
pub(super) struct Resumed {
    pub stream: Box<EventStream>,
    pub writer: OwnedWriteHalf,
    pub unwritten: Bytes,
}

/// Where connections hand their idle streams: to the lane of the stream's room. Cloning is
/// shallow.
#[derive(Clone)]
pub struct Lane {
    inner: Arc<LanesInner>,
}

struct LanesInner {
    hub: Hub,
    metrics: Arc<Metrics>,
    /// The streams' runtime, where the lanes run.
    runtime: Handle,
    /// Each room's lane, with the ring it watches: a room of the same name made after the
    /// first one went has a ring of its own, and a lane of its own.
    lanes: Mutex<HashMap<RoomName, (u64, mpsc::UnboundedSender<Parked>)>>,
}

impl Lane {
    /// The lanes of `hub`'s rooms, to run on `runtime` (the streams' runtime) until the hub
    /// shuts down.
    pub fn start(hub: &Hub, metrics: Arc<Metrics>, runtime: &Handle) -> Self {
        Self {
            inner: Arc::new(LanesInner {
                hub: hub.clone(),
                metrics,
                runtime: runtime.clone(),
                lanes: Mutex::default(),
            }),
        }
    }

    /// Gives an idle stream to its room's lane, starting the lane if the room has none; `Some`
    /// (the stream, back at once) when the stream follows several rooms, or at shutdown.
    pub(super) fn park(&self, parked: Parked) -> Option<Parked> {
        let Some(roster) = parked.stream.lane_room() else { return Some(parked) };
        let ring = roster.ring().clone();
        if self.inner.hub.shutdown_token().is_cancelled() {
            return Some(parked);
        }
        let mut lanes = self.inner.lanes.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let parks = match lanes.get(ring.room()) {
            Some((ring_id, parks)) if *ring_id == ring.id() && !parks.is_closed() => parks.clone(),
            _ => {
                let (parks, parked) = mpsc::unbounded_channel();
                let (hub, metrics) = (self.inner.hub.clone(), Arc::clone(&self.inner.metrics));
                self.inner.runtime.spawn(run(hub, ring.subscribe(), parked, metrics));
                lanes.insert(ring.room().clone(), (ring.id(), parks.clone()));
                parks
            }
        };
        drop(lanes);
        parks.send(parked).err().map(|refused| refused.0)
    }
}

/// One room's lane, watching the room's ring through `ring`, until shutdown or until the room
/// is gone (its ring closed).
async fn run(
    hub: Hub,
    mut ring: broadcast::Receiver<Frame>,
    mut parks: mpsc::UnboundedReceiver<Parked>,
    metrics: Arc<Metrics>,
) {
    let period = hub.stream_tick_period();
    let mut ticker = tokio::time::interval_at(Instant::now() + period, period);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let shutdown = hub.shutdown_token().clone();
    let mut streams = IdleStreams::default();
    let flush = tokio::time::sleep_until(Instant::now());
    tokio::pin!(flush);
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            Some(parked) = parks.recv() => streams.take(parked, Instant::now()),
            received = ring.recv() => {
                if let Err(RecvError::Closed) = received {
                    break;
                }
                // Woken by whichever task sent the frame, the lane would run next (tokio runs a
                // task woken from its own thread first) and write one join's `new-user` at a
                // time; behind the tasks already ready (the other joins of a burst), one round
                // carries them all.
                tokio::task::yield_now().await;
                // One round writes everything on the ring so far: skip the rest of the news.
                while !matches!(ring.try_recv(), Err(TryRecvError::Empty | TryRecvError::Closed)) {}
                streams.round(Visit::NewFrames).await;
            }
            () = &mut flush, if streams.deferred.is_some() => streams.round(Visit::NewFrames).await,
            _ = ticker.tick() => streams.round(Visit::Tick).await,
        }
        if let Some(at) = streams.deferred
            && flush.deadline() != at
        {
            flush.as_mut().reset(at);
        }
        if streams.writes > 0 {
            metrics.lane_wrote(std::mem::take(&mut streams.writes));
        }
    }
    // Every stream goes back to its task, which sees the shutdown and writes its last chunk:
    // those the lane held, and those handed over but not yet taken. Closing the channel first
    // means a task that parks from now on gets its stream back at once (`Lane::park`), so
    // none is left in the channel to be dropped with it (its client would see the connection
    // cut instead of the body's end).
    parks.close();
    while let Some(parked) = parks.recv().await {
        streams.parked.push(parked);
    }
    for parked in streams.parked.drain(..) {
        hand_back(parked, Bytes::new());
    }
}

/// Why the lane visits its streams.
#[derive(Clone, Copy)]
enum Visit {
    /// Frames reached the ring: write each stream what it lacks.
    NewFrames,
    /// The streams' timer: a `users` snapshot or a keep-alive where one is due.
    Tick,
}

#[derive(Default)]
struct IdleStreams {
    parked: Vec<Parked>,
    /// When the earliest stream passed over for its flush interval may be written.
    deferred: Option<Instant>,
    /// Writes since the count was last reported.
    writes: u64,
}

/// What a visit leaves of a stream.
enum Outcome {
    /// The lane keeps writing it.
    Keep,
    /// Written too recently: the lane comes back to it at this time.
    Later(Instant),
    /// Its task takes over, first writing these bytes (the end of a chunk the socket would
    /// not take).
    HandBack(Bytes),
    /// Its connection is over: dropping the stream and its socket is all that is left.
    Drop,
}

impl IdleStreams {
    /// Takes a stream in, first writing what reached the ring since its task last looked.
    fn take(&mut self, mut parked: Parked, now: Instant) {
        match visit(&mut parked, now, Visit::NewFrames, &mut self.writes) {
            Outcome::Keep => self.parked.push(parked),
            Outcome::Later(at) => {
                self.defer_to(at);
                self.parked.push(parked);
            }
            Outcome::HandBack(unwritten) => hand_back(parked, unwritten),
            Outcome::Drop => {}
        }
    }

    /// Visits every stream. Every [`WRITES_PER_ROUND_YIELD`] writes it lets the tasks that are
    /// ready run (new connections, joins): a long round would otherwise hold the thread, and
    /// the frames they send are taken by the streams later in the round, in the same writes.
    async fn round(&mut self, why: Visit) {
        if let Visit::NewFrames = why {
            // Every stream is visited: those still waiting say so again.
            self.deferred = None;
        }
        let mut now = Instant::now();
        let mut yield_after = self.writes + WRITES_PER_ROUND_YIELD;
        let mut index = 0;
        while index < self.parked.len() {
            match visit(&mut self.parked[index], now, why, &mut self.writes) {
                Outcome::Keep => index += 1,
                Outcome::Later(at) => {
                    self.defer_to(at);
                    index += 1;
                }
                // The last stream takes this one's place, and is visited next.
                Outcome::HandBack(unwritten) => hand_back(self.parked.swap_remove(index), unwritten),
                Outcome::Drop => drop(self.parked.swap_remove(index)),
            }
            if self.writes >= yield_after {
                tokio::task::yield_now().await;
                now = Instant::now();
                yield_after = self.writes + WRITES_PER_ROUND_YIELD;
            }
        }
    }
}

/// See [`IdleStreams::round`].
const WRITES_PER_ROUND_YIELD: u64 = 64;

impl IdleStreams {
    fn defer_to(&mut self, at: Instant) {
        self.deferred = Some(self.deferred.map_or(at, |earliest| earliest.min(at)));
    }
}

/// Writes what the stream is owed, counting the write in `writes`.
fn visit(parked: &mut Parked, now: Instant, why: Visit, writes: &mut u64) -> Outcome {
    let chunk = match why {
        Visit::NewFrames => match parked.stream.next_write(now) {
            NextWrite::Chunk(chunk) => chunk,
            // Nothing to write: the next frame brings the lane back.
            NextWrite::Idle => return Outcome::Keep,
            // Written too recently: the lane comes back when the interval is up.
            NextWrite::WaitUntil(at) => return Outcome::Later(at),
            // Its task ends the body.
            NextWrite::End => return Outcome::HandBack(Bytes::new()),
        },
        // Its task ended (and closed the connection, so writes to it fail: they find it too).
        Visit::Tick if parked.resume.is_closed() => return Outcome::Drop,
        Visit::Tick => match parked.stream.on_tick() {
            Some(chunk) => chunk,
            None => return Outcome::Keep,
        },
    };
    // A zero-size chunk would end the response.
    if chunk.is_empty() {
        return Outcome::Keep;
    }
    let mut size_line = [0u8; CHUNK_SIZE_LINE_BYTES];
    let parts = chunk_parts(&chunk, &mut size_line);
    let total: usize = parts.iter().map(|part| part.len()).sum();
    match parked.writer.try_write_vectored(&parts.map(IoSlice::new)) {
        Ok(written) if written == total => {
            *writes += 1;
            let cut = parked.stream.wrote_at(now, &chunk);
            share_the_core();
            // A chunk cut at the size bound leaves more behind: the task writes the rest.
            if cut { Outcome::HandBack(Bytes::new()) } else { Outcome::Keep }
        }
        Ok(written) => Outcome::HandBack(rest_of(&parts, written)),
        Err(error) if error.kind() == io::ErrorKind::WouldBlock => Outcome::HandBack(rest_of(&parts, 0)),
        // The connection broke: dropping the stream tells its task, which ends.
        Err(_) => Outcome::Drop,
    }
}

/// Gives a stream back to its task (dropped if the task has ended meanwhile).
fn hand_back(parked: Parked, unwritten: Bytes) {
    let Parked { stream, writer, resume } = parked;
    let _ = resume.send(Resumed { stream, writer, unwritten });
}
