//! The hub: fans every event out to every open stream.
//!
//! The hub ties together parts that each have one job, and holds nothing else:
//! - the [`ring`]: every event encoded once for every stream, the recent messages, and
//!   backlog reads from the store it is handed;
//! - [`presence`]: who is in the room, behind the [`Presence`] trait, decided by this
//!   instance alone or by every instance on one Redis, chosen once at start;
//! - the stream slots, and each open stream's writer ([`stream`]).
//!
//! The hub holds no store: its one owner is the server's state ([`crate::state::AppState`]),
//! which hands it in where history is read ([`OpenedStream::start`]).

mod presence;
mod ring;
mod stream;

pub(crate) use presence::Presence;
pub use presence::{
    LocalPresence, Roster, SharedPresence,
    cluster::{ClusterError, ClusterPresence, StreamId},
    room::{JoinNo, Refusal},
};
pub use ring::Ring;
pub(crate) use ring::{Backlog, Frame};
pub use stream::EventStream;
pub(crate) use stream::{NextWrite, StreamHandoff};

use crate::{
    limits::AddressSlot,
    metrics::Metrics,
    session::Session,
    store::{MessageStore, StoreError},
};
use app::protocol::{User, UserId, UserName};
use bytes::Bytes;
use presence::{RoomView, StreamHold};
use std::{
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast};
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
    /// Who is in the room; chosen once at start.
    presence: Box<dyn Presence>,
    /// The ring the presence announces on, which the store's feed publishes to.
    ring: Ring,
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
    /// A hub admitting streams through `presence`, whose roster announces on the ring every
    /// stream reads.
    pub(crate) fn new(
        config: HubConfig,
        presence: Box<dyn Presence>,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
    ) -> Self {
        let ring = presence.roster().ring().clone();
        Self {
            inner: Arc::new(HubInner {
                stream_slots: Arc::new(Semaphore::new(config.max_streams)),
                presence,
                ring,
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

    fn roster(&self) -> &Roster {
        self.inner.presence.roster()
    }

    /// Admits a stream: checks limits here, then identity and presence through the
    /// [`Presence`], which subscribes it to the ring under the room lock, so the stream sees
    /// every change after its `all-users`. `address_slot` counts the stream against its
    /// client's address for as long as it is open.
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
        let admission = self.inner.presence.open(id, name, session, max_streams).await?;
        self.inner.metrics.stream_opened();
        let guard = StreamGuard {
            id: admission.user.id.clone(),
            _hold: admission.hold,
            _permit: permit,
            _address_slot: address_slot,
            hub: self.clone(),
        };
        let RoomView { receiver, opening, version } = admission.view;
        let stream = EventStream::new(self.clone(), receiver, opening, version, guard);
        Ok(OpenedStream {
            user: admission.user,
            new_session: admission.new_session,
            stream,
            ring: self.inner.ring.clone(),
        })
    }

    /// Whether this instance can serve: not shutting down, and its shared room reachable.
    pub fn is_ready(&self) -> bool {
        !self.inner.shutdown.is_cancelled() && self.inner.presence.is_healthy()
    }

    /// The user a session speaks for, if the session is current.
    pub fn authorize(&self, session: &Session) -> Option<User> {
        self.roster().authorize(session)
    }

    pub fn users_online(&self) -> usize {
        self.roster().len()
    }

    pub fn users_page(&self, after: Option<JoinNo>, limit: usize) -> (Vec<User>, Option<JoinNo>) {
        self.roster().page(after, limit)
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
                    _ = ticks.tick() => hub.roster().send_summary(),
                }
            }
        });
    }

    fn room_version(&self) -> u64 {
        self.roster().version()
    }

    /// The current `users` snapshot and the room version it shows, encoded at most once per
    /// version.
    fn users_snapshot(&self) -> (u64, Bytes) {
        self.roster().users_snapshot()
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
