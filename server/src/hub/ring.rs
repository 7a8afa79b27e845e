//! A room's broadcast ring: every event of the room, encoded once, for every stream that
//! follows it.
//!
//! Each event is serialised once per shape its readers speak (version 2, and in `general`
//! also version 1), into shared [`Bytes`], and put on the room's broadcast ring; every stream
//! that follows the room holds a cursor into that ring ([`broadcast::Receiver`]) and writes
//! from its cursor to the head in one chunk ([`super::stream`]). Nothing is encoded per
//! recipient, and a room's events touch only the streams that follow it. A stream whose
//! cursor falls off the ring's tail is a slow client: it is dropped and catches up by replay.
//!
//! Messages enter from the store's feed ([`super::rooms::Rooms::publish`]), after they are
//! durable, in `seq` order, and are in the recent cache before the store answers their posts
//! and before any stream is woken. The ring keeps those recent messages so that a join, or a
//! reconnect after a blip, is served from memory; older replays are read from the store the
//! caller hands in ([`Ring::backlog`]): the ring holds no store of its own.

use super::lock;
use crate::store::{MessageStore, StoreError};
use app::protocol::{ChatMessage, HistoryGap, RoomName};
use bytes::Bytes;
use futures_util::task::AtomicWaker;
use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};
use tokio::sync::broadcast;

/// Rows per store read when a replay goes past the recent messages in memory.
pub(crate) const REPLAY_PAGE: usize = 500;

/// Recent messages kept in memory for `general`, where a reconnect storm of a large room
/// lands, and for every other room: a thousand rooms must not each hold thousands.
const RECENT_IN_GENERAL: usize = 4_096;
const RECENT_IN_A_ROOM: usize = 512;

/// One event's bytes in the shapes its readers speak: version 2 always, and version 1 in
/// `general`, the only room a version 1 stream follows.
#[derive(Debug, Clone)]
pub(crate) struct Encoded {
    pub v2: Bytes,
    pub v1: Option<Bytes>,
}

impl Encoded {
    /// The bytes for a stream that speaks version 1 (`true`) or 2. A version 1 stream only
    /// follows `general`, whose events all have their version 1 bytes.
    pub fn for_version_1(&self, version_1: bool) -> &Bytes {
        match (&self.v1, version_1) {
            (Some(v1), true) => v1,
            _ => &self.v2,
        }
    }
}

/// Consecutive events in one buffer, each starting at its offset: a stream that already has
/// some of them slices past those without copying.
#[derive(Debug, Clone)]
pub(crate) struct Sliced {
    pub offsets: Arc<[usize]>,
    pub bytes: Bytes,
}

impl Sliced {
    /// The events from the `skip`th on.
    pub fn from(&self, skip: usize) -> Bytes {
        self.offsets.get(skip).map_or_else(Bytes::new, |&offset| self.bytes.slice(offset..))
    }
}

/// One entry on a room's ring.
#[derive(Debug, Clone)]
pub(crate) enum Frame {
    /// The room's messages of one committed batch, in `seq` order (not consecutive: other
    /// rooms' messages come between).
    Messages { seqs: Arc<[u64]>, v2: Sliced, v1: Option<Sliced> },
    /// `new-user`, `user-leave`, or the `users` snapshot sent when a large room shrinks back;
    /// `version` is the room version the change produced.
    Presence { version: u64, bytes: Encoded },
    /// A large room's `presence` summary, for every stream.
    Summary { bytes: Encoded },
}

/// A message owed to a stream, as a piece of history.
pub(crate) struct Owed {
    pub seq: u64,
    pub bytes: Encoded,
}

/// What one room owes a stream before it goes live.
pub(crate) struct RoomBacklog {
    /// The room lost messages the client asked for: the gap starts here (the oldest retained).
    pub gap_from: Option<u64>,
    pub messages: Vec<Owed>,
}

struct RecentMessages {
    frames: VecDeque<(u64, Encoded)>,
    capacity: usize,
    /// The newest `seq` of the room held (0 before its first message).
    head: u64,
    /// Every message of the room newer than this is in `frames`: a replay after it is served
    /// from memory, and owes no gap.
    floor: u64,
    /// `frames` holds every retained message of the room.
    complete: bool,
}

/// Numbers rings, so that a room made again after it went is told from the one before.
static RINGS_MADE: AtomicU64 = AtomicU64::new(0);

struct RingInner {
    id: u64,
    room: RoomName,
    events: broadcast::Sender<Frame>,
    /// The streams of several rooms that follow this one, woken by each frame (see
    /// [`Ring::watch`]).
    watchers: Mutex<HashMap<u64, Arc<AtomicWaker>>>,
    recent: Mutex<RecentMessages>,
    /// The most messages the store keeps of a room, so the most a replay can owe.
    retention: u64,
}

/// Ids of [`Watch`]es, unique in the process.
static WATCHES_MADE: AtomicU64 = AtomicU64::new(0);

/// A waker registered with a ring (see [`Ring::watch`]); dropping it unregisters it.
pub(crate) struct Watch {
    ring: Ring,
    key: u64,
}

impl Drop for Watch {
    fn drop(&mut self) {
        lock(&self.ring.inner.watchers).remove(&self.key);
    }
}

/// A handle to one room's ring. Cloning is shallow.
#[derive(Clone)]
pub struct Ring {
    inner: Arc<RingInner>,
}

impl Ring {
    /// An empty ring for `room`, holding `buffer` frames for its slowest stream.
    pub fn new(room: RoomName, buffer: usize, retention: u64) -> Self {
        let (events, _) = broadcast::channel(buffer.max(16));
        let recent = if room.is_general() { RECENT_IN_GENERAL } else { RECENT_IN_A_ROOM };
        let capacity = recent.min(retention.max(1) as usize);
        Self {
            inner: Arc::new(RingInner {
                id: RINGS_MADE.fetch_add(1, Ordering::Relaxed),
                room,
                events,
                watchers: Mutex::new(HashMap::new()),
                recent: Mutex::new(RecentMessages {
                    frames: VecDeque::with_capacity(capacity.min(64)),
                    capacity,
                    head: 0,
                    floor: 0,
                    complete: true,
                }),
                retention,
            }),
        }
    }

    pub fn room(&self) -> &RoomName {
        &self.inner.room
    }

    /// This ring's number, never given to another ring of this process.
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// A cursor on the ring from its head.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Frame> {
        self.inner.events.subscribe()
    }

    /// Puts an encoded presence change or summary on the ring.
    pub(crate) fn send(&self, frame: Frame) {
        // No receivers is fine: nobody is listening.
        let _ = self.inner.events.send(frame);
        // After the frame is on the ring: a watcher woken now finds it. Woken under the lock,
        // which is safe because a task's waker only schedules the task: it never polls or drops
        // it here (dropping it would take this lock again, in `Watch::drop`).
        for watcher in lock(&self.inner.watchers).values() {
            watcher.wake();
        }
    }

    /// Wakes `watcher` at every frame put on this ring, until the returned [`Watch`] is
    /// dropped.
    ///
    /// A stream of several rooms waits on all of them at once. Waiting on each ring's channel
    /// registers and then removes a waiter in every room for every frame of any room (and
    /// boxes a future for each): with one waker registered once in each ring, a frame costs
    /// the stream one wake-up, and it looks at its rings without waiting on them.
    pub(crate) fn watch(&self, watcher: &Arc<AtomicWaker>) -> Watch {
        let key = WATCHES_MADE.fetch_add(1, Ordering::Relaxed);
        lock(&self.inner.watchers).insert(key, Arc::clone(watcher));
        Watch { ring: self.clone(), key }
    }

    /// The newest `seq` of the room this ring has (0 before its first message).
    pub fn head(&self) -> u64 {
        lock(&self.inner.recent).head
    }

    /// Fills the recent cache from `store`, for a room that has messages already.
    pub async fn preload(&self, store: &dyn MessageStore) -> Result<(), StoreError> {
        let capacity = lock(&self.inner.recent).capacity;
        let room = &self.inner.room;
        let recent = store.read_last(room, capacity).await?;
        // Fewer than asked: memory holds all the room retains, and what it lost is its horizon.
        let complete = recent.len() < capacity;
        let floor = match recent.first() {
            Some(first) if !complete => first.seq.saturating_sub(1),
            _ => store.read_after(room, u64::MAX, 0).await?.horizon,
        };
        let mut cache = lock(&self.inner.recent);
        // The feed may already have delivered newer messages; keep those and put the
        // preloaded ones in front of them.
        let first_live = cache.frames.front().map_or(u64::MAX, |(seq, _)| *seq);
        let live = !cache.frames.is_empty();
        for message in recent.iter().rev().filter(|m| m.seq < first_live) {
            cache.frames.push_front((message.seq, encode_one(message)));
            cache.head = cache.head.max(message.seq);
        }
        cache.floor = if live { cache.floor.min(floor) } else { floor };
        cache.complete = complete;
        while cache.frames.len() > cache.capacity {
            evict_oldest(&mut cache);
        }
        Ok(())
    }

    /// Memory may lack messages of the room up to `seq` (the feed skipped some): replays from
    /// before it are read from the store.
    pub(crate) fn forget_through(&self, seq: u64) {
        let mut recent = lock(&self.inner.recent);
        recent.floor = recent.floor.max(seq);
        recent.complete = false;
    }

    /// Records the room's messages of one committed batch in the recent cache and returns the
    /// frame to hand to its streams, or `None` when the ring already had them all.
    ///
    /// Messages at or below the head already held are dropped: a shared store fixes where its
    /// feed starts before [`Ring::preload`] reads the recent messages, so what another
    /// instance appended in between arrives by both ways. Publishing it again would repeat it
    /// to replaying clients and move the head backwards.
    pub(crate) fn record(&self, messages: &[&ChatMessage]) -> Option<Frame> {
        let v1 = self.inner.room.is_general();
        let mut recent = lock(&self.inner.recent);
        let head = recent.head;
        let fresh: Vec<&ChatMessage> = messages.iter().copied().filter(|m| m.seq > head).collect();
        if fresh.len() < messages.len() {
            tracing::debug!(
                skipped = messages.len() - fresh.len(),
                "the feed repeated messages the ring already has"
            );
        }
        let last = fresh.last()?;
        recent.head = last.seq;
        let v2 = encode(&fresh, ChatMessage::write_sse_frame_v2);
        let v1 = v1.then(|| encode(&fresh, ChatMessage::write_sse_frame));
        for (i, message) in fresh.iter().enumerate() {
            let bytes = Encoded { v2: slice_of(&v2, i), v1: v1.as_ref().map(|v1| slice_of(v1, i)) };
            recent.frames.push_back((message.seq, bytes));
        }
        while recent.frames.len() > recent.capacity {
            evict_oldest(&mut recent);
        }
        let seqs: Arc<[u64]> = fresh.iter().map(|m| m.seq).collect();
        Some(Frame::Messages { seqs, v2, v1 })
    }

    /// Everything retained of the room after `after` (at most the retention), read
    /// [`REPLAY_PAGE`] rows at a time: each page is one short job for the store, so the
    /// commits of posts that arrive meanwhile run between pages instead of waiting behind one
    /// read of the whole retention. With the room's horizon.
    async fn read_after_in_pages(
        &self,
        store: &dyn MessageStore,
        after: u64,
        through: u64,
    ) -> Result<(Vec<ChatMessage>, u64), StoreError> {
        let room = &self.inner.room;
        let limit = self.inner.retention.min(usize::MAX as u64) as usize;
        let first = store.read_after(room, after, REPLAY_PAGE.min(limit)).await?;
        let horizon = first.horizon;
        let mut messages = first.messages;
        let mut last_page = messages.len();
        while last_page == REPLAY_PAGE
            && messages.len() < limit
            && messages.last().is_some_and(|m| m.seq < through)
        {
            let Some(cursor) = messages.last().map(|message| message.seq) else { break };
            let page =
                store.read_after(room, cursor, REPLAY_PAGE.min(limit - messages.len())).await?.messages;
            last_page = page.len();
            messages.extend(page);
        }
        Ok((messages, horizon))
    }

    /// What the room owes a stream before it goes live, up to `through` (what is newer
    /// reaches the stream live): its last `history` messages, or everything retained after
    /// `last_event_id`, with where the room's gap starts when some of that is gone. Served
    /// from memory when it can be; `store` is read only for what memory lacks.
    pub(crate) async fn backlog(
        &self,
        store: &dyn MessageStore,
        last_event_id: Option<u64>,
        history: usize,
        through: u64,
    ) -> Result<RoomBacklog, StoreError> {
        let owed = |frames: &mut dyn Iterator<Item = &(u64, Encoded)>| -> Vec<Owed> {
            frames
                .filter(|(seq, _)| *seq <= through)
                .map(|(seq, bytes)| Owed { seq: *seq, bytes: bytes.clone() })
                .collect()
        };
        let from_memory = {
            let recent = lock(&self.inner.recent);
            match last_event_id {
                Some(after) if after >= recent.floor => {
                    Some(owed(&mut recent.frames.iter().filter(|(seq, _)| *seq > after)))
                }
                None => {
                    let held = recent.frames.iter().filter(|(seq, _)| *seq <= through).count();
                    (held >= history || recent.complete).then(|| {
                        let skip = held.saturating_sub(history);
                        owed(&mut recent.frames.iter().skip(skip))
                    })
                }
                Some(_) => None,
            }
        };
        if let Some(messages) = from_memory {
            return Ok(RoomBacklog { gap_from: None, messages });
        }
        let (messages, gap_from) = match last_event_id {
            Some(after) => {
                let (messages, horizon) = self.read_after_in_pages(store, after, through).await?;
                // Lost after the client's id: the gap starts at the oldest retained message,
                // which is the first replayed.
                let gap_from = (horizon > after).then(|| messages.first().map_or(horizon + 1, |m| m.seq));
                (messages, gap_from)
            }
            None => (store.read_last(&self.inner.room, history).await?, None),
        };
        let messages = messages
            .iter()
            .filter(|message| message.seq <= through)
            .map(|message| Owed { seq: message.seq, bytes: encode_one(message) })
            .collect();
        Ok(RoomBacklog { gap_from, messages })
    }

    /// The encoded `history-gap` of this room.
    pub(crate) fn gap(&self, from: u64) -> Encoded {
        let event = app::protocol::ServerEvent::HistoryGap(HistoryGap { from });
        encode_event(&self.inner.room, &event)
    }
}

/// `event` encoded for the streams of `room`.
pub(crate) fn encode_event(room: &RoomName, event: &app::protocol::ServerEvent) -> Encoded {
    use app::protocol::Dialect;
    Encoded {
        v2: Bytes::from(event.to_sse_frame_in(Dialect::V2 { room })),
        v1: room.is_general().then(|| Bytes::from(event.to_sse_frame_in(Dialect::V1))),
    }
}

fn encode(messages: &[&ChatMessage], write: fn(&ChatMessage, &mut Vec<u8>)) -> Sliced {
    let mut bytes = Vec::with_capacity(256 * messages.len());
    let mut offsets = Vec::with_capacity(messages.len());
    for message in messages {
        offsets.push(bytes.len());
        write(message, &mut bytes);
    }
    Sliced { offsets: offsets.into(), bytes: Bytes::from(bytes) }
}

fn slice_of(sliced: &Sliced, i: usize) -> Bytes {
    let start = sliced.offsets[i];
    let end = sliced.offsets.get(i + 1).copied().unwrap_or(sliced.bytes.len());
    sliced.bytes.slice(start..end)
}

fn encode_one(message: &ChatMessage) -> Encoded {
    let mut v2 = Vec::new();
    message.write_sse_frame_v2(&mut v2);
    let v1 = message.room.is_general().then(|| {
        let mut v1 = Vec::new();
        message.write_sse_frame(&mut v1);
        Bytes::from(v1)
    });
    Encoded { v2: Bytes::from(v2), v1 }
}

fn evict_oldest(recent: &mut RecentMessages) {
    if let Some((seq, _)) = recent.frames.pop_front() {
        recent.floor = recent.floor.max(seq);
        recent.complete = false;
    }
}

#[cfg(test)]
mod replay_tests {
    use super::*;
    use crate::store::{Page, Replay, RoomHead};
    use app::protocol::{MessageText, User, UserId, UserName};
    use futures_util::future::BoxFuture;

    /// A store holding messages 1..=`newest` of `general`, which records the size of every
    /// read it is asked for and preloads nothing (so a replay from an old id must read it).
    struct RecordingStore {
        newest: u64,
        reads: Mutex<Vec<usize>>,
    }

    fn message(seq: u64) -> ChatMessage {
        ChatMessage {
            id: UserId::parse("bob").unwrap(),
            name: UserName::parse("Bob").unwrap(),
            message: MessageText::parse("hi").unwrap(),
            seq,
            ts: "2026-01-01T00:00:00.000Z".into(),
            room: RoomName::general(),
        }
    }

    impl MessageStore for RecordingStore {
        fn append(
            &self,
            _: User,
            _: RoomName,
            _: MessageText,
        ) -> BoxFuture<'_, Result<ChatMessage, StoreError>> {
            Box::pin(async { Err(StoreError::Unavailable) })
        }
        fn read_after<'a>(
            &'a self,
            _: &'a RoomName,
            after: u64,
            limit: usize,
        ) -> BoxFuture<'a, Result<Replay, StoreError>> {
            lock(&self.reads).push(limit);
            let messages = (after.saturating_add(1)..=self.newest).take(limit).map(message).collect();
            Box::pin(async move { Ok(Replay { messages, horizon: 0 }) })
        }
        fn read_last<'a>(
            &'a self,
            _: &'a RoomName,
            _: usize,
        ) -> BoxFuture<'a, Result<Vec<ChatMessage>, StoreError>> {
            Box::pin(async { Ok(Vec::new()) })
        }
        fn read_before<'a>(
            &'a self,
            _: &'a RoomName,
            _: Option<u64>,
            _: usize,
        ) -> BoxFuture<'a, Result<Page, StoreError>> {
            Box::pin(async { Ok(Page { messages: Vec::new(), more: false }) })
        }
        fn rooms(&self) -> BoxFuture<'_, Result<Vec<RoomHead>, StoreError>> {
            Box::pin(async { Ok(Vec::new()) })
        }
        fn close(&self) -> BoxFuture<'_, ()> {
            Box::pin(async {})
        }
    }

    #[tokio::test]
    async fn a_long_replay_is_read_from_the_store_in_pages() {
        let ring = Ring::new(RoomName::general(), 64, 10_000);
        let store = RecordingStore { newest: 3_000, reads: Mutex::default() };
        ring.preload(&store).await.unwrap();
        // Only the newest message is in memory, and the ring does not know what came before
        // it: a replay from 1 must go to the store.
        lock(&ring.inner.recent).floor = 2_999;
        ring.record(&[&message(3_000)]).expect("a new message");
        let backlog = ring.backlog(&store, Some(1), 50, 3_000).await.unwrap();
        assert_eq!(backlog.messages.len(), 2_999, "every message after 1, once");
        assert_eq!(backlog.messages.last().map(|owed| owed.seq), Some(3_000));
        let reads = lock(&store.reads).clone();
        assert!(reads.len() >= 6 && reads.iter().all(|&limit| limit <= REPLAY_PAGE), "{reads:?}");
    }

    #[tokio::test]
    async fn a_replay_after_the_floor_is_served_from_memory_without_a_gap() {
        let ring = Ring::new(RoomName::general(), 64, 10_000);
        let store = RecordingStore { newest: 0, reads: Mutex::default() };
        for seq in [3, 5, 9] {
            ring.record(&[&message(seq)]);
        }
        let backlog = ring.backlog(&store, Some(4), 50, 9).await.unwrap();
        assert_eq!(backlog.messages.iter().map(|owed| owed.seq).collect::<Vec<_>>(), vec![5, 9]);
        assert_eq!(backlog.gap_from, None);
        let through = ring.backlog(&store, None, 50, 5).await.unwrap();
        assert_eq!(
            through.messages.iter().map(|owed| owed.seq).collect::<Vec<_>>(),
            vec![3, 5],
            "not past `through`"
        );
        assert!(lock(&store.reads).is_empty(), "memory held it all");
    }
}

#[cfg(test)]
mod watch_tests {
    use super::*;
    use std::{
        sync::atomic::AtomicUsize,
        task::{Wake, Waker},
    };

    /// A waker that counts its wake-ups.
    #[derive(Default)]
    struct Counting(AtomicUsize);

    impl Wake for Counting {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_watch_is_woken_by_every_frame_until_it_is_dropped() {
        let ring = Ring::new(RoomName::parse("lobby").unwrap(), 16, 100);
        let counting = Arc::new(Counting::default());
        let woken = Arc::new(AtomicWaker::new());
        let watch = ring.watch(&woken);
        let summary =
            || Frame::Summary { bytes: Encoded { v2: Bytes::from_static(b"event: presence\n\n"), v1: None } };

        woken.register(&Waker::from(Arc::clone(&counting)));
        ring.send(summary());
        assert_eq!(counting.0.load(Ordering::SeqCst), 1);
        // Woken once per registration, as a task registers again at each poll.
        woken.register(&Waker::from(Arc::clone(&counting)));
        ring.send(summary());
        assert_eq!(counting.0.load(Ordering::SeqCst), 2);

        drop(watch);
        woken.register(&Waker::from(Arc::clone(&counting)));
        ring.send(summary());
        assert_eq!(counting.0.load(Ordering::SeqCst), 2, "a dropped watch is not woken");
        assert!(lock(&ring.inner.watchers).is_empty());
    }
}
