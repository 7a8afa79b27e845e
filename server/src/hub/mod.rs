//! The hub: fans every event of a room out to the open streams that follow it.
//!
//! The hub ties together parts that each have one job, and holds nothing else:
//! - the [`rooms`] that exist, each with its [`ring`] (every event of the room encoded once for
//!   its streams, its recent messages, backlog reads from the store it is handed) and its
//!   [`Roster`]; the store's feed publishes into them;
//! - [`presence`]: who holds which `id` and who is in which room, behind the [`Presence`]
//!   trait, decided by this instance alone or by every instance on one Redis, chosen once at
//!   start;
//! - the stream slots, and each open stream's writer ([`stream`]).
//!
//! The hub holds no store: its one owner is the server's state ([`crate::state::AppState`]),
//! which hands it in where history is read ([`OpenedStream::start`]).

mod presence;
mod ring;
mod rooms;
mod stream;

pub use presence::{
    LocalPresence, Roster, SharedPresence,
    cluster::{ClusterError, ClusterPresence, StreamId},
    room::{JoinNo, Refusal},
};
pub(crate) use presence::{OpenRequest, Presence};
pub(crate) use ring::Frame;
pub use ring::Ring;
pub use rooms::Rooms;
pub use stream::EventStream;
pub(crate) use stream::{NextWrite, StreamHandoff};

use crate::{
    limits::AddressSlot,
    metrics::Metrics,
    session::Session,
    store::{MessageStore, StoreError},
};
use app::protocol::{RoomName, RoomSummary, User, UserId, UserName};
use presence::StreamHold;
use std::{
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
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
    /// With shared rooms: an instance silent this long is taken for dead.
    pub instance_timeout: Duration,
    /// Most rooms that may exist at once, `general` included.
    pub max_rooms: usize,
}

/// Why a stream could not be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenError {
    Refused(Refusal),
    ServerFull,
    ShuttingDown,
    /// The shared rooms (Redis) cannot be reached.
    RoomUnavailable,
    /// The stream's rooms would make more than `--max-rooms`.
    TooManyRooms,
    /// The shared rooms took the join, but this instance's mirror of them did not show it in
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
    /// Writes `all-users` of each room, then the history the client is owed (from memory, or
    /// else from `store`), then goes live. `last_event_id` is the `seq` the client has
    /// already seen, if any.
    pub async fn start(
        mut self,
        store: &dyn MessageStore,
        last_event_id: Option<u64>,
    ) -> Result<EventStream, StoreError> {
        self.stream.write_backlog(store, last_event_id).await?;
        Ok(self.stream)
    }
}

struct HubInner {
    config: HubConfig,
    /// Who holds which `id` and who is in which room; chosen once at start.
    presence: Box<dyn Presence>,
    /// The rooms the presence announces in, which the store's feed publishes to.
    rooms: Rooms,
    stream_slots: Arc<Semaphore>,
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
    /// A hub admitting streams through `presence` into `rooms`.
    pub(crate) fn new(
        config: HubConfig,
        presence: Box<dyn Presence>,
        rooms: Rooms,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            inner: Arc::new(HubInner {
                stream_slots: Arc::new(Semaphore::new(config.max_streams)),
                presence,
                rooms,
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

    pub fn rooms(&self) -> &Rooms {
        &self.inner.rooms
    }

    /// How often each stream checks its view of the room and its silence.
    pub(crate) fn stream_tick_period(&self) -> Duration {
        stream::tick_period(&self.inner.config)
    }

    /// Admits a stream that follows `rooms` (speaking version 1 when `version_1`, then
    /// `rooms` is `general` alone): checks limits here, then identity and presence through the
    /// [`Presence`], which subscribes it to each room's ring under that room's lock, so the
    /// stream sees every change after its `all-users`. `address_slot` counts the stream
    /// against its client's address for as long as it is open.
    pub async fn open_stream(
        &self,
        id: UserId,
        name: UserName,
        session: Option<&Session>,
        address_slot: Option<AddressSlot>,
        rooms: &[RoomName],
        version_1: bool,
    ) -> Result<OpenedStream, OpenError> {
        if self.inner.shutdown.is_cancelled() {
            return Err(OpenError::ShuttingDown);
        }
        let permit =
            Arc::clone(&self.inner.stream_slots).try_acquire_owned().map_err(|_| OpenError::ServerFull)?;
        let max_streams = self.inner.config.max_streams_per_user;
        let request = OpenRequest { id, name, session, max_streams_per_user: max_streams, rooms, version_1 };
        let admission = self.inner.presence.open(request).await?;
        self.inner.metrics.stream_opened();
        let guard = StreamGuard {
            id: admission.user.id.clone(),
            _hold: admission.hold,
            _permit: permit,
            _address_slot: address_slot,
            hub: self.clone(),
        };
        let stream = EventStream::new(self.clone(), admission.views, version_1, guard);
        Ok(OpenedStream { user: admission.user, new_session: admission.new_session, stream })
    }

    /// Whether this instance can serve: not shutting down, and its shared rooms reachable.
    pub fn is_ready(&self) -> bool {
        !self.inner.shutdown.is_cancelled() && self.inner.presence.is_healthy()
    }

    /// The user a session speaks for, if the session is current.
    pub fn authorize(&self, session: &Session) -> Option<User> {
        self.inner.presence.authorize(session)
    }

    /// Distinct users in any room.
    pub fn users_online(&self) -> usize {
        self.inner.presence.users_online()
    }

    /// Whether `id` is in `room` (a stream of theirs follows it, or it is within the grace
    /// period).
    pub fn is_in_room(&self, id: &UserId, room: &RoomName) -> bool {
        self.inner.rooms.get(room).is_some_and(|roster| roster.contains(id))
    }

    /// A page of `room`'s users; a room that does not exist has none.
    pub fn users_page(
        &self,
        room: &RoomName,
        after: Option<JoinNo>,
        limit: usize,
    ) -> (Vec<User>, Option<JoinNo>) {
        self.inner.rooms.get(room).map_or((Vec::new(), None), |roster| roster.page(after, limit))
    }

    /// Every room that exists, most recent message first.
    pub fn room_summaries(&self) -> Vec<RoomSummary> {
        self.inner.rooms.summaries()
    }

    /// Sends each large room's `presence` summary once per interval while it changes, until
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
                        for roster in hub.inner.rooms.all() {
                            roster.send_summary();
                        }
                    }
                }
            }
        });
    }
}

/// Held by every open stream; dropping it (the client went away, or the stream ended) closes
/// the stream in the room and frees its slot.
pub(crate) struct StreamGuard {
    /// Dropped first of the fields: the room hears of the close before the slot is free.
    _hold: StreamHold,
    hub: Hub,
    id: UserId,
    _permit: OwnedSemaphorePermit,
    _address_slot: Option<AddressSlot>,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        tracing::info!(user = %self.id, "stream closed");
        self.hub.inner.metrics.stream_closed();
    }
}
