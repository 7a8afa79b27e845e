//! The hub: fans every event out to every open stream.
//!
//! Each event is serialised once, into shared [`Bytes`], and put on one broadcast ring; every
//! stream holds a cursor into that ring ([`broadcast::Receiver`]) and writes from its cursor to
//! the head in one chunk ([`stream`]). Nothing is encoded per recipient. A stream whose cursor
//! falls off the ring's tail is a slow client: it is dropped and catches up by replay.
//!
//! Messages enter from the store's feed ([`Hub::publish_messages`]), after they are durable,
//! in `seq` order, and are in the recent cache before the store answers their posts and before
//! any stream is woken; presence changes enter from stream open/close under the room lock, so the
//! ring's order of presence events is the order the room changed in. The lock is a std mutex
//! held for plain data only, never across an `.await`.

mod cluster;
mod room;
mod stream;

pub use cluster::{ClusterError, ClusterPresence, StreamId};
pub use room::{JoinNo, Refusal};
pub use stream::EventStream;
pub(crate) use stream::{NextWrite, StreamHandoff};

use crate::{
    limits::AddressSlot,
    metrics::Metrics,
    session::{Binding, Session},
    store::{MessageStore, StoreError},
};
use app::protocol::{ChatMessage, HistoryGap, ServerEvent, User, UserId, UserName};
use bytes::Bytes;
use room::{Announce, Room};
use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Arc, Mutex, MutexGuard, OnceLock,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast, watch};
use tokio_util::sync::CancellationToken;

/// The hub's settings, taken from the configuration.
#[derive(Debug, Clone)]
pub struct HubConfig {
    pub history: usize,
    pub retention: u64,
    pub leave_grace: Duration,
    pub users_interval: Duration,
    pub keepalive: Duration,
    pub retry: Duration,
    pub max_streams: usize,
    pub max_streams_per_user: usize,
    pub stream_buffer: usize,
    pub large_room_threshold: usize,
    /// With a shared room: an instance silent this long is taken for dead.
    pub instance_timeout: Duration,
}

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

/// Why a stream could not be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenError {
    Refused(Refusal),
    ServerFull,
    ShuttingDown,
    /// The shared room (Redis) cannot be reached.
    RoomUnavailable,
    /// The shared room took the join, but this instance's mirror of it did not show it in
    /// time. The id is bound (to `new_session`, when this stream bound it) for the grace
    /// period, so the refusal must carry the cookie, or the client's retry is a 409.
    JoinNotMirrored {
        new_session: Option<Session>,
    },
}

/// What a newly opened stream needs before it goes live.
pub struct OpenedStream {
    /// The user as bound (the bound name, not necessarily the one asked for).
    pub user: User,
    /// The cookie to set, when this stream bound the `id`.
    pub new_session: Option<Session>,
    stream: EventStream,
}

impl OpenedStream {
    /// Writes `all-users`, then the history the client is owed, then goes live. `last_event_id`
    /// is the `seq` the client has already seen, if any.
    pub async fn start(mut self, hub: &Hub, last_event_id: Option<u64>) -> Result<EventStream, StoreError> {
        let backlog = hub.backlog(last_event_id).await?;
        self.stream.set_backlog(backlog);
        Ok(self.stream)
    }
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

struct HubInner {
    config: HubConfig,
    room: Mutex<Room>,
    events: broadcast::Sender<Frame>,
    recent: Mutex<RecentMessages>,
    /// The room's version, readable without the lock by streams checking their view.
    room_version: AtomicU64,
    /// The `users` snapshot for one room version, encoded once for every stream that needs it.
    snapshot: Mutex<Option<(u64, Bytes)>>,
    stream_slots: Arc<Semaphore>,
    store: Mutex<Option<Arc<dyn MessageStore>>>,
    /// Set when instances share one room through Redis (see [`cluster`]).
    cluster: OnceLock<Arc<ClusterPresence>>,
    /// Bumped each time the mirror of the shared room applies log entries.
    mirror_applied: watch::Sender<u64>,
    /// False while the shared room cannot be reached.
    cluster_healthy: AtomicBool,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
}

/// A handle to the hub. Cloning is shallow.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<HubInner>,
}

/// Locks a mutex that guards plain data: a panic elsewhere cannot leave it half-updated in a
/// way worse than refusing all further service, so poisoning is ignored.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Hub {
    pub fn new(config: HubConfig, metrics: Arc<Metrics>, shutdown: CancellationToken) -> Self {
        let (events, _) = broadcast::channel(config.stream_buffer.max(16));
        let capacity = RECENT_CAPACITY.min(config.retention.max(1) as usize);
        Self {
            inner: Arc::new(HubInner {
                room: Mutex::new(Room::new(config.large_room_threshold)),
                events,
                recent: Mutex::new(RecentMessages {
                    frames: VecDeque::with_capacity(capacity),
                    capacity,
                    head: 0,
                }),
                room_version: AtomicU64::new(0),
                snapshot: Mutex::new(None),
                stream_slots: Arc::new(Semaphore::new(config.max_streams)),
                store: Mutex::new(None),
                cluster: OnceLock::new(),
                mirror_applied: watch::Sender::new(0),
                cluster_healthy: AtomicBool::new(true),
                metrics,
                shutdown,
                config,
            }),
        }
    }

    pub fn config(&self) -> &HubConfig {
        &self.inner.config
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    pub(crate) fn shutdown_token(&self) -> &CancellationToken {
        &self.inner.shutdown
    }

    /// A cursor on the ring from its head, for whoever must hear of every new frame (the
    /// fan-out lane).
    pub(crate) fn watch_ring(&self) -> broadcast::Receiver<Frame> {
        self.inner.events.subscribe()
    }

    /// How often each stream checks its view of the room and its silence.
    pub(crate) fn stream_tick_period(&self) -> Duration {
        stream::tick_period(&self.inner.config)
    }

    /// Connects the store the hub replays from, and preloads the recent messages from it.
    pub async fn attach_store(&self, store: Arc<dyn MessageStore>) -> Result<(), StoreError> {
        let capacity = lock(&self.inner.recent).capacity;
        let recent = store.read_last(capacity).await?;
        {
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
        }
        *lock(&self.inner.store) = Some(store);
        Ok(())
    }

    /// The store's feed: encodes a committed batch once, records it in the recent cache, runs
    /// `before_waking` (see [`crate::store::MessageFeed`]), then hands it to every stream.
    ///
    /// Messages at or below the head already held are dropped (the rest of the batch is kept):
    /// a shared store fixes where its feed starts before [`Hub::attach_store`] reads the recent
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
        // Decided under the same lock as the recording, so that `attach_store` cannot slip the
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
        // No receivers is fine: nobody is listening.
        let _ = self.inner.events.send(Frame::Messages { first_seq, offsets, bytes: bytes.slice(base..) });
    }

    /// Admits a stream: checks identity and limits, records presence, and subscribes to the
    /// ring under the room lock, so the stream sees every change after its `all-users`.
    /// `address_slot` counts the stream against its client's address for as long as it is
    /// open.
    pub async fn open_stream(
        &self,
        id: UserId,
        name: UserName,
        session: Option<&Session>,
        address_slot: Option<AddressSlot>,
    ) -> Result<OpenedStream, OpenError> {
        if self.inner.shutdown.is_cancelled() {
            return Err(OpenError::ShuttingDown);
        }
        let permit =
            Arc::clone(&self.inner.stream_slots).try_acquire_owned().map_err(|_| OpenError::ServerFull)?;
        let max_streams = self.inner.config.max_streams_per_user;
        let Some(cluster) = self.inner.cluster.get() else {
            let mut room = lock(&self.inner.room);
            let admitted = room.open_stream(id, name, session, max_streams).map_err(OpenError::Refused)?;
            if let Announce::Event { version } = admitted.announce {
                self.send_presence(version, ServerEvent::NewUser(admitted.user.clone()));
            }
            let guard = self.guard(&admitted.user.id, permit, address_slot, None);
            return Ok(self.subscribe(&mut room, admitted.user, admitted.new_session, guard));
        };

        let stream = cluster.stream_id();
        let admitted = match cluster.open(&stream, &id, &name, session, max_streams).await {
            Ok(Ok(admitted)) => admitted,
            Ok(Err(refusal)) => return Err(OpenError::Refused(refusal)),
            Err(error) => {
                self.inner.metrics.redis_error();
                tracing::warn!(%error, "the shared room is unavailable");
                // Redis may have admitted the stream all the same (only its answer was lost):
                // close it, or it would count for this user for ever. Closing a stream that
                // was never opened changes nothing, and keeps it from opening later.
                self.close_cluster_stream(Arc::clone(cluster), id, stream);
                return Err(OpenError::RoomUnavailable);
            }
        };
        // From here the shared room counts this stream: the guard takes it back if we fail.
        let guard = self.guard(&admitted.user.id, permit, address_slot, Some(stream));
        // The newcomer must be in its own `all-users`: wait for the mirror to apply its join.
        let mut applied = self.inner.mirror_applied.subscribe();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            {
                let mut room = lock(&self.inner.room);
                if room.contains(&admitted.user.id) {
                    return Ok(self.subscribe(&mut room, admitted.user, admitted.new_session, guard));
                }
            }
            if tokio::time::timeout_at(deadline, applied.changed()).await.is_err() {
                return Err(OpenError::JoinNotMirrored { new_session: admitted.new_session });
            }
        }
    }

    fn guard(
        &self,
        id: &UserId,
        permit: OwnedSemaphorePermit,
        address_slot: Option<AddressSlot>,
        cluster_stream: Option<StreamId>,
    ) -> StreamGuard {
        self.inner.metrics.stream_opened();
        StreamGuard {
            hub: self.clone(),
            id: id.clone(),
            cluster_stream,
            _permit: permit,
            _address_slot: address_slot,
        }
    }

    /// Subscribes a stream to the ring and writes its view of the room; `room` is locked.
    fn subscribe(
        &self,
        room: &mut Room,
        user: User,
        new_session: Option<Session>,
        guard: StreamGuard,
    ) -> OpenedStream {
        let receiver = self.inner.events.subscribe();
        let mut opening = ServerEvent::AllUsers(room.all_users_for(&user.id)).to_sse_frame();
        let mut opening_events = 1;
        if room.is_large() {
            opening.push_str(&ServerEvent::Presence(room.presence_now()).to_sse_frame());
            opening_events += 1;
        }
        let stream =
            EventStream::new(self.clone(), receiver, (opening, opening_events), room.version(), guard);
        OpenedStream { user, new_session, stream }
    }

    /// Whether this instance can serve: not shutting down, and its shared room reachable.
    pub fn is_ready(&self) -> bool {
        !self.inner.shutdown.is_cancelled() && self.inner.cluster_healthy.load(Ordering::Relaxed)
    }

    /// Shares the room with every instance on the same Redis, from now on.
    pub fn attach_cluster(&self, cluster: Arc<ClusterPresence>) {
        if self.inner.cluster.set(Arc::clone(&cluster)).is_ok() {
            tokio::spawn(cluster::run_mirror(self.clone(), Arc::clone(&cluster)));
            tokio::spawn(cluster::run_heartbeat(self.clone(), cluster));
        }
    }

    /// Applies entries of the shared room's log and announces what they change, in log order.
    fn apply_log(&self, entries: Vec<cluster::LogEntry>) {
        let mut room = lock(&self.inner.room);
        for entry in entries {
            if let Some((user, announce, joined)) = cluster::apply(&mut room, entry) {
                let event = if joined { ServerEvent::NewUser(user) } else { ServerEvent::UserLeave(user) };
                self.announce(&room, announce, event);
            }
        }
        drop(room);
        self.inner.mirror_applied.send_modify(|applied| *applied += 1);
    }

    /// Makes this instance's room the shared room as read whole (`members`, the join of each):
    /// whoever is here but not there, or there under another binding (left and came back
    /// meanwhile), leaves; then the joins apply, repeats being ignored. For a mirror that
    /// starts, or that lost log entries and cannot know which.
    fn resync_log(&self, members: Vec<cluster::LogEntry>) {
        let gone: Vec<cluster::LogEntry> = {
            let room = lock(&self.inner.room);
            let bindings: HashMap<&UserId, Binding> = members
                .iter()
                .filter_map(|entry| match entry {
                    cluster::LogEntry::Join { user, binding, .. } => Some((&user.id, *binding)),
                    cluster::LogEntry::Leave { .. } => None,
                })
                .collect();
            room.users()
                .into_iter()
                .filter(|user| match bindings.get(&user.id) {
                    None => true,
                    Some(binding) => {
                        room.authorize(&Session { id: user.id.clone(), binding: *binding }).is_none()
                    }
                })
                .map(|user| cluster::LogEntry::Leave { id: user.id })
                .collect()
        };
        self.apply_log(gone.into_iter().chain(members).collect());
    }

    /// Tells the streams about a change of membership, the way the room decided.
    fn announce(&self, room: &Room, announce: Announce, event: ServerEvent) {
        match announce {
            Announce::Event { version } => self.send_presence(version, event),
            Announce::Snapshot { version } => self.send_presence(version, ServerEvent::Users(room.users())),
            Announce::Summarized | Announce::Nothing => {}
        }
    }

    /// The user a session speaks for, if the session is current.
    pub fn authorize(&self, session: &Session) -> Option<User> {
        lock(&self.inner.room).authorize(session).cloned()
    }

    pub fn users_online(&self) -> usize {
        lock(&self.inner.room).len()
    }

    pub fn users_page(&self, after: Option<JoinNo>, limit: usize) -> (Vec<User>, Option<JoinNo>) {
        lock(&self.inner.room).page(after, limit)
    }

    /// Encodes a presence change and puts it on the ring. Called with the room locked, so
    /// presence frames enter the ring in the order the room changed.
    fn send_presence(&self, version: u64, event: ServerEvent) {
        self.inner.room_version.store(version, Ordering::Release);
        let frame = Frame::Presence { version, bytes: Bytes::from(event.to_sse_frame()) };
        let _ = self.inner.events.send(frame);
    }

    /// Sends a large room's `presence` summary once per interval while it changes, until
    /// shutdown.
    pub fn spawn_presence_summaries(&self) {
        let hub = self.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(hub.inner.config.users_interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let shutdown = hub.inner.shutdown.clone();
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    _ = ticks.tick() => {
                        let summary = lock(&hub.inner.room).take_summary();
                        if let Some(summary) = summary {
                            let bytes = Bytes::from(ServerEvent::Presence(summary).to_sse_frame());
                            let _ = hub.inner.events.send(Frame::Summary { bytes });
                        }
                    }
                }
            }
        });
    }

    fn room_version(&self) -> u64 {
        self.inner.room_version.load(Ordering::Acquire)
    }

    /// The current `users` snapshot and the room version it shows, encoded at most once per
    /// version.
    fn users_snapshot(&self) -> (u64, Bytes) {
        let room = lock(&self.inner.room);
        let version = room.version();
        let mut cached = lock(&self.inner.snapshot);
        if let Some((cached_version, bytes)) = cached.as_ref()
            && *cached_version == version
        {
            return (version, bytes.clone());
        }
        let bytes = Bytes::from(ServerEvent::Users(room.users()).to_sse_frame());
        *cached = Some((version, bytes.clone()));
        (version, bytes)
    }

    fn close_stream(&self, id: &UserId, cluster_stream: Option<StreamId>) {
        self.inner.metrics.stream_closed();
        // Streams are dropped on the runtime's threads; without a runtime (the process is
        // ending) there is nobody left to tell, and with a shared room the other instances
        // reap this one's streams once its heartbeat stops.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        match (self.inner.cluster.get(), cluster_stream) {
            (Some(cluster), Some(stream)) => {
                self.close_cluster_stream(Arc::clone(cluster), id.clone(), stream)
            }
            _ => {
                let Some(pending) = lock(&self.inner.room).close_stream(id) else { return };
                let (hub, grace) = (self.clone(), self.inner.config.leave_grace);
                runtime.spawn(async move {
                    tokio::time::sleep(grace).await;
                    let mut room = lock(&hub.inner.room);
                    if let Some((user, announce)) = room.expire(&pending) {
                        hub.announce(&room, announce, ServerEvent::UserLeave(user));
                    }
                });
            }
        }
    }

    /// Closes a stream in the shared room, retrying through an outage (closing is idempotent),
    /// and carries out the user's departure after the grace period when it was the last.
    fn close_cluster_stream(&self, cluster: Arc<ClusterPresence>, id: UserId, stream: StreamId) {
        let hub = self.clone();
        tokio::spawn(async move {
            if let Some(Some(token)) = cluster::retry(&hub, || cluster.close(&stream, &id)).await {
                tokio::time::sleep(hub.inner.config.leave_grace).await;
                cluster::retry(&hub, || cluster.expire(&id, token)).await;
            }
        });
    }

    /// Everything retained after `after` (at most the retention), read [`REPLAY_PAGE`] rows at
    /// a time: each page is one short job for the store, so the commits of posts that arrive
    /// meanwhile run between pages instead of waiting behind one read of the whole retention.
    async fn read_after_in_pages(
        &self,
        store: &dyn MessageStore,
        after: u64,
    ) -> Result<Vec<ChatMessage>, StoreError> {
        let limit = self.inner.config.retention.min(usize::MAX as u64) as usize;
        let mut messages = store.read_after(after, REPLAY_PAGE.min(limit)).await?.messages;
        let mut last_page = messages.len();
        while last_page == REPLAY_PAGE && messages.len() < limit {
            let Some(cursor) = messages.last().map(|message| message.seq) else { break };
            let page = store.read_after(cursor, REPLAY_PAGE.min(limit - messages.len())).await?.messages;
            last_page = page.len();
            messages.extend(page);
        }
        Ok(messages)
    }

    /// What a stream is owed before going live: the last `history` messages, or everything
    /// retained after `last_event_id`, preceded by `history-gap` when some of it is gone.
    async fn backlog(&self, last_event_id: Option<u64>) -> Result<Backlog, StoreError> {
        let from_memory = {
            let recent = lock(&self.inner.recent);
            let owed: Option<Vec<(u64, Bytes)>> = match last_event_id {
                Some(after) if recent.covers_after(after) => {
                    Some(recent.frames.iter().filter(|(seq, _)| *seq > after).cloned().collect())
                }
                // The newest `history` are in memory, or memory holds everything retained.
                None if recent.frames.len() >= self.inner.config.history
                    || recent.frames.len() < recent.capacity =>
                {
                    let skip = recent.frames.len().saturating_sub(self.inner.config.history);
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

        let store = lock(&self.inner.store).clone().ok_or(StoreError::Unavailable)?;
        let messages = match last_event_id {
            Some(after) => self.read_after_in_pages(store.as_ref(), after).await?,
            None => store.read_last(self.inner.config.history).await?,
        };
        let gap = history_gap(last_event_id, messages.first().map(|m| m.seq));
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

/// Held by every open stream; dropping it (the client went away, or the stream ended) closes
/// the stream in the room and frees its slot.
pub(crate) struct StreamGuard {
    hub: Hub,
    id: UserId,
    /// The stream's id in the shared room, when there is one.
    cluster_stream: Option<StreamId>,
    _permit: OwnedSemaphorePermit,
    _address_slot: Option<AddressSlot>,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        tracing::info!(user = %self.id, "stream closed");
        self.hub.close_stream(&self.id, self.cluster_stream.take());
    }
}

#[cfg(test)]
mod replay_tests {
    use super::*;
    use crate::store::Replay;
    use app::protocol::MessageText;
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
        let hub =
            Hub::new(crate::hub_config(&config), Arc::new(Metrics::default()), CancellationToken::new());
        let store = Arc::new(RecordingStore { newest: 3_000, reads: Mutex::default() });
        hub.attach_store(Arc::clone(&store) as Arc<dyn MessageStore>).await.unwrap();
        // Only the newest message is in memory: a replay from 1 must go to the store.
        hub.publish_messages(&[message(3_000)], &mut || {});
        let backlog = hub.backlog(Some(1)).await.unwrap();
        assert_eq!(backlog.events, 2_999, "every message after 1, once");
        assert_eq!(backlog.last_seq, 3_000);
        let reads = lock(&store.reads).clone();
        assert!(reads.len() >= 6 && reads.iter().all(|&limit| limit <= REPLAY_PAGE), "{reads:?}");
    }
}
