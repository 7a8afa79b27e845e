//! The hub: fans every event out to every open stream.
//!
//! The hub ties together the parts that each have one job: the [`ring`] (every event encoded
//! once, the recent messages, and backlog reads from a store it is handed), the room as this
//! instance sees it ([`room`], behind the hub's lock), and the stream slots. Presence changes
//! enter from stream open/close under the room lock, so the ring's order of presence events is
//! the order the room changed in. The lock is a std mutex held for plain data only, never
//! across an `.await`.
//!
//! The hub holds no store: the one owner of the store is the server's state
//! ([`crate::state::AppState`]), which hands it in where history is read.

mod cluster;
mod ring;
mod room;
mod stream;

pub use cluster::{ClusterError, ClusterPresence, StreamId};
pub use ring::Ring;
pub(crate) use ring::{Backlog, Frame};
pub use room::{JoinNo, Refusal};
pub use stream::EventStream;
pub(crate) use stream::{MAX_CHUNK_BYTES, StreamHandoff};

use crate::{
    limits::AddressSlot,
    metrics::Metrics,
    session::{Binding, Session},
    store::{MessageStore, StoreError},
};
use app::protocol::{ServerEvent, User, UserId, UserName};
use bytes::Bytes;
use room::{Announce, Room};
use std::{
    collections::HashMap,
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
    ring: Ring,
}

impl OpenedStream {
    /// Writes `all-users`, then the history the client is owed (from memory, or else from
    /// `store`), then goes live. `last_event_id` is the `seq` the client has already seen, if
    /// any.
    pub async fn start(
        mut self,
        store: &dyn MessageStore,
        last_event_id: Option<u64>,
    ) -> Result<EventStream, StoreError> {
        let backlog = self.ring.backlog(store, last_event_id).await?;
        self.stream.set_backlog(backlog);
        Ok(self.stream)
    }
}

struct HubInner {
    config: HubConfig,
    room: Mutex<Room>,
    ring: Ring,
    /// The room's version, readable without the lock by streams checking their view.
    room_version: AtomicU64,
    /// The `users` snapshot for one room version, encoded once for every stream that needs it.
    snapshot: Mutex<Option<(u64, Bytes)>>,
    stream_slots: Arc<Semaphore>,
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
    /// A hub over `ring`, the one the store's feed publishes to.
    pub fn new(config: HubConfig, ring: Ring, metrics: Arc<Metrics>, shutdown: CancellationToken) -> Self {
        Self {
            inner: Arc::new(HubInner {
                room: Mutex::new(Room::new(config.large_room_threshold)),
                ring,
                room_version: AtomicU64::new(0),
                snapshot: Mutex::new(None),
                stream_slots: Arc::new(Semaphore::new(config.max_streams)),
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
        self.inner.ring.subscribe()
    }

    /// How often each stream checks its view of the room and its silence.
    pub(crate) fn stream_tick_period(&self) -> Duration {
        stream::tick_period(&self.inner.config)
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
        let receiver = self.inner.ring.subscribe();
        let mut opening = ServerEvent::AllUsers(room.all_users_for(&user.id)).to_sse_frame();
        let mut opening_events = 1;
        if room.is_large() {
            opening.push_str(&ServerEvent::Presence(room.presence_now()).to_sse_frame());
            opening_events += 1;
        }
        let stream =
            EventStream::new(self.clone(), receiver, (opening, opening_events), room.version(), guard);
        OpenedStream { user, new_session, stream, ring: self.inner.ring.clone() }
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
        self.inner.ring.send(Frame::Presence { version, bytes: Bytes::from(event.to_sse_frame()) });
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
                            hub.inner.ring.send(Frame::Summary { bytes });
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
