//! The broadcast ring: every event, encoded once, for every open stream.
//!
//! Each event is serialised once, into shared [`Bytes`], and put on one broadcast ring; every
//! stream holds a cursor into that ring ([`broadcast::Receiver`]) and writes from its cursor to
//! the head in one chunk ([`super::stream`]). Nothing is encoded per recipient. A stream whose
//! cursor falls off the ring's tail is a slow client: it is dropped and catches up by replay.
//!
//! Messages enter from the store's feed ([`Ring::publish_messages`]), after they are durable,
//! in `seq` order, and are in the recent cache before the store answers their posts and before
//! any stream is woken. The ring keeps those recent messages so that a join, or a reconnect
//! after a blip, is served from memory; older replays are read from the store the caller
//! hands in ([`Ring::backlog`]): the ring holds no store of its own.

use super::{HubConfig, lock};
use crate::{
    metrics::Metrics,
    store::{MessageStore, StoreError},
};
use app::protocol::{ChatMessage, HistoryGap, RoomName, ServerEvent};
use bytes::Bytes;
use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
};
use tokio::sync::broadcast;

/// Rows per store read when a replay goes past the recent messages in memory.
const REPLAY_PAGE: usize = 500;

/// Recent message frames kept in memory, so a join or a reconnect after a blip is served
/// without reading the store.
const RECENT_CAPACITY: usize = 4_096;

/// One entry on the broadcast ring.
#[derive(Debug, Clone)]
pub(crate) enum Frame {
    /// One committed batch of messages: consecutive `seq`s from `first_seq`, each frame's
    /// bytes starting at the matching offset, so a stream that already has some of them
    /// (from replay) can slice past those without copying.
    Messages { first_seq: u64, offsets: Arc<[usize]>, bytes: Bytes },
    /// `new-user`, `user-leave`, or the `users` snapshot sent when a large room shrinks back;
    /// `version` is the room version the change produced.
    Presence { version: u64, bytes: Bytes },
    /// A large room's `presence` summary, for every stream.
    Summary { bytes: Bytes },
}

/// Messages owed to a stream before it goes live.
pub(crate) struct Backlog {
    /// Encoded `history-gap` (when something was lost) and `message` frames.
    pub bytes: Vec<u8>,
    pub events: u64,
    /// The newest `seq` the client has after the backlog: live messages up to it are skipped.
    pub last_seq: u64,
}

struct RecentMessages {
    frames: VecDeque<(u64, Bytes)>,
    capacity: usize,
    /// The newest `seq` committed (0 before the first message).
    head: u64,
}

impl RecentMessages {
    /// True when every retained message with `seq > after` is in memory.
    fn covers_after(&self, after: u64) -> bool {
        match self.frames.front() {
            Some((first, _)) => *first <= after.saturating_add(1),
            // Nothing in memory: nothing retained is newer than the head.
            None => after >= self.head,
        }
    }
}

struct RingInner {
    events: broadcast::Sender<Frame>,
    recent: Mutex<RecentMessages>,
    /// Messages a new stream without `Last-Event-ID` is owed.
    history: usize,
    /// The most messages the store keeps, so the most a replay can owe.
    retention: u64,
    metrics: Arc<Metrics>,
}

/// A handle to the ring. Cloning is shallow: the store's feed holds one, the hub another.
#[derive(Clone)]
pub struct Ring {
    inner: Arc<RingInner>,
}

impl Ring {
    pub fn new(config: &HubConfig, metrics: Arc<Metrics>) -> Self {
        let (events, _) = broadcast::channel(config.stream_buffer.max(16));
        let capacity = RECENT_CAPACITY.min(config.retention.max(1) as usize);
        Self {
            inner: Arc::new(RingInner {
                events,
                recent: Mutex::new(RecentMessages {
                    frames: VecDeque::with_capacity(capacity),
                    capacity,
                    head: 0,
                }),
                history: config.history,
                retention: config.retention,
                metrics,
            }),
        }
    }

    /// A cursor on the ring from its head.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Frame> {
        self.inner.events.subscribe()
    }

    /// Puts an encoded presence change or summary on the ring.
    pub(crate) fn send(&self, frame: Frame) {
        // No receivers is fine: nobody is listening.
        let _ = self.inner.events.send(frame);
    }

    /// Fills the recent cache from `store`, for a ring that starts when messages already
    /// exist.
    pub async fn preload(&self, store: &dyn MessageStore) -> Result<(), StoreError> {
        let capacity = lock(&self.inner.recent).capacity;
        let recent = store.read_last(&RoomName::general(), capacity).await?;
        let mut cache = lock(&self.inner.recent);
        // The feed may already have delivered newer messages; keep those and put the
        // preloaded ones in front of them.
        let first_live = cache.frames.front().map_or(u64::MAX, |(seq, _)| *seq);
        for message in recent.iter().rev().filter(|m| m.seq < first_live) {
            let mut frame = Vec::new();
            message.write_sse_frame(&mut frame);
            cache.frames.push_front((message.seq, Bytes::from(frame)));
            cache.head = cache.head.max(message.seq);
        }
        while cache.frames.len() > cache.capacity {
            cache.frames.pop_front();
        }
        Ok(())
    }

    /// The store's feed: encodes a committed batch once, records it in the recent cache, runs
    /// `before_waking` (see [`crate::store::MessageFeed`]), then hands it to every stream.
    ///
    /// Messages at or below the head already held are dropped (the rest of the batch is kept):
    /// a shared store fixes where its feed starts before [`Ring::preload`] reads the recent
    /// messages, so what another instance appended in between arrives by both ways. Publishing
    /// it again would repeat it to replaying clients and move the head backwards.
    pub fn publish_messages(&self, messages: &[ChatMessage], before_waking: &mut dyn FnMut()) {
        if messages.is_empty() {
            return before_waking();
        }
        let mut bytes = Vec::with_capacity(256 * messages.len());
        let mut offsets = Vec::with_capacity(messages.len());
        for message in messages {
            offsets.push(bytes.len());
            message.write_sse_frame(&mut bytes);
        }
        let bytes = Bytes::from(bytes);
        // Decided under the same lock as the recording, so that `preload` cannot slip the
        // same messages in between. A batch is consecutive seqs, so what is new is a suffix.
        let fresh = {
            let mut recent = lock(&self.inner.recent);
            let head = recent.head;
            match messages.iter().position(|m| m.seq > head) {
                None => None,
                Some(skip) => {
                    for (i, message) in messages.iter().enumerate().skip(skip) {
                        let end = offsets.get(i + 1).copied().unwrap_or(bytes.len());
                        recent.frames.push_back((message.seq, bytes.slice(offsets[i]..end)));
                        recent.head = message.seq;
                    }
                    while recent.frames.len() > recent.capacity {
                        recent.frames.pop_front();
                    }
                    Some(skip)
                }
            }
        };
        let Some(skip) = fresh else { return before_waking() };
        if skip > 0 {
            tracing::debug!(skipped = skip, "the feed repeated messages the hub already has");
        }
        let (first_seq, base) = (messages[skip].seq, offsets[skip]);
        let offsets: Arc<[usize]> = offsets[skip..].iter().map(|offset| offset - base).collect();
        self.inner.metrics.messages_fanned_out(offsets.len() as u64);
        before_waking();
        self.send(Frame::Messages { first_seq, offsets, bytes: bytes.slice(base..) });
    }

    /// Everything retained after `after` (at most the retention), read [`REPLAY_PAGE`] rows at
    /// a time: each page is one short job for the store, so the commits of posts that arrive
    /// meanwhile run between pages instead of waiting behind one read of the whole retention.
    async fn read_after_in_pages(
        &self,
        store: &dyn MessageStore,
        after: u64,
    ) -> Result<(Vec<ChatMessage>, u64), StoreError> {
        let limit = self.inner.retention.min(usize::MAX as u64) as usize;
        let room = RoomName::general();
        let first = store.read_after(&room, after, REPLAY_PAGE.min(limit)).await?;
        let horizon = first.horizon;
        let mut messages = first.messages;
        let mut last_page = messages.len();
        while last_page == REPLAY_PAGE && messages.len() < limit {
            let Some(cursor) = messages.last().map(|message| message.seq) else { break };
            let page =
                store.read_after(&room, cursor, REPLAY_PAGE.min(limit - messages.len())).await?.messages;
            last_page = page.len();
            messages.extend(page);
        }
        Ok((messages, horizon))
    }

    /// What a stream is owed before going live: the last `history` messages, or everything
    /// retained after `last_event_id`, preceded by `history-gap` when some of it is gone.
    /// Served from memory when it can be; `store` is read only for what memory lacks.
    pub(crate) async fn backlog(
        &self,
        store: &dyn MessageStore,
        last_event_id: Option<u64>,
    ) -> Result<Backlog, StoreError> {
        let history = self.inner.history;
        let from_memory = {
            let recent = lock(&self.inner.recent);
            let owed: Option<Vec<(u64, Bytes)>> = match last_event_id {
                Some(after) if recent.covers_after(after) => {
                    Some(recent.frames.iter().filter(|(seq, _)| *seq > after).cloned().collect())
                }
                // The newest `history` are in memory, or memory holds everything retained.
                None if recent.frames.len() >= history || recent.frames.len() < recent.capacity => {
                    let skip = recent.frames.len().saturating_sub(history);
                    Some(recent.frames.iter().skip(skip).cloned().collect())
                }
                _ => None,
            };
            owed.map(|frames| (frames, recent.head))
        };
        if let Some((frames, head)) = from_memory {
            // Memory may hold a hole too: what the feed skipped because it was trimmed before
            // this instance read it, or what was missing from the store.
            let gap = history_gap(last_event_id, frames.first().map(|(seq, _)| *seq));
            let mut bytes = Vec::with_capacity(frames.iter().map(|(_, frame)| frame.len()).sum());
            if let Some(gap) = gap {
                ServerEvent::HistoryGap(gap).write_sse_frame(&mut bytes);
            }
            for (_, frame) in &frames {
                bytes.extend_from_slice(frame);
            }
            let events = frames.len() as u64 + u64::from(gap.is_some());
            return Ok(Backlog { bytes, events, last_seq: head });
        }

        let (messages, gap) = match last_event_id {
            Some(after) => {
                let (messages, horizon) = self.read_after_in_pages(store, after).await?;
                // The room lost messages after the client's id: the gap starts at the oldest
                // retained one, which is the first replayed.
                let gap = (horizon > after)
                    .then(|| HistoryGap { from: messages.first().map_or(horizon + 1, |m| m.seq) });
                (messages, gap)
            }
            None => (store.read_last(&RoomName::general(), history).await?, None),
        };
        let mut bytes = Vec::new();
        if let Some(gap) = gap {
            ServerEvent::HistoryGap(gap).write_sse_frame(&mut bytes);
        }
        let events = messages.len() as u64 + u64::from(gap.is_some());
        // Live messages are skipped up to `last_seq`: never past what has been committed, or a
        // client claiming a future id would miss real messages.
        let head = lock(&self.inner.recent).head;
        let last_seq = messages.last().map_or(last_event_id.unwrap_or(0).min(head), |m| m.seq);
        for message in &messages {
            message.write_sse_frame(&mut bytes);
        }
        Ok(Backlog { bytes, events, last_seq })
    }
}

/// The `history-gap` a replay after `last_event_id` owes, when its first message is not the
/// one right after it: the messages in between were asked for and are gone, whether trimmed
/// from the front of what is retained or missing from the middle of it. `from` is the first
/// message the client gets, the oldest retained after its id.
fn history_gap(last_event_id: Option<u64>, first_replayed: Option<u64>) -> Option<HistoryGap> {
    match (last_event_id, first_replayed) {
        (Some(after), Some(first)) if first > after.saturating_add(1) => Some(HistoryGap { from: first }),
        _ => None,
    }
}

#[cfg(test)]
mod replay_tests {
    use super::*;
    use crate::store::Replay;
    use app::protocol::{MessageText, User, UserId, UserName};
    use futures_util::future::BoxFuture;

    /// A store holding messages 1..=`newest`, which records the size of every read it is asked
    /// for and preloads nothing (so a replay from an old id must read it).
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
        }
    }

    impl MessageStore for RecordingStore {
        fn append(&self, _: User, _: MessageText) -> BoxFuture<'_, Result<ChatMessage, StoreError>> {
            Box::pin(async { Err(StoreError::Unavailable) })
        }
        fn read_after(&self, after: u64, limit: usize) -> BoxFuture<'_, Result<Replay, StoreError>> {
            lock(&self.reads).push(limit);
            let messages = (after + 1..=self.newest).take(limit).map(message).collect();
            Box::pin(async move { Ok(Replay { messages, oldest_retained: Some(1) }) })
        }
        fn read_last(&self, _: usize) -> BoxFuture<'_, Result<Vec<ChatMessage>, StoreError>> {
            Box::pin(async { Ok(Vec::new()) })
        }
        fn close(&self) -> BoxFuture<'_, ()> {
            Box::pin(async {})
        }
    }

    #[tokio::test]
    async fn a_long_replay_is_read_from_the_store_in_pages() {
        let config = crate::Config::for_tests(std::env::temp_dir());
        let ring = Ring::new(&crate::hub_config(&config), Arc::new(Metrics::default()));
        let store = RecordingStore { newest: 3_000, reads: Mutex::default() };
        ring.preload(&store).await.unwrap();
        // Only the newest message is in memory: a replay from 1 must go to the store.
        ring.publish_messages(&[message(3_000)], &mut || {});
        let backlog = ring.backlog(&store, Some(1)).await.unwrap();
        assert_eq!(backlog.events, 2_999, "every message after 1, once");
        assert_eq!(backlog.last_seq, 3_000);
        let reads = lock(&store.reads).clone();
        assert!(reads.len() >= 6 && reads.iter().all(|&limit| limit <= REPLAY_PAGE), "{reads:?}");
    }
}
