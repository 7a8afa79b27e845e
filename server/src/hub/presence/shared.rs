//! Presence shared by every instance on one Redis: Redis decides each binding, join and leave
//! ([`ClusterPresence`]), and this instance keeps a mirror of what it decided: its own copy of
//! the identities (to authorize sessions and count users) and of every room, the rosters of
//! [`Rooms`], kept by applying the membership log in order ([`run_mirror`]). The mirror creates
//! a room when its first join arrives (the limit on rooms was checked in Redis, across
//! instances) and lets it go when its last user left and it never had a message, as
//! [`super::LocalPresence`] does. This module drives the Redis client: admitting through it,
//! closing through it with retries, beating for this instance and reaping dead ones
//! ([`run_heartbeat`]).

use super::{
    Admission, OpenError, OpenRequest, Presence, RoomView,
    cluster::{ClusterError, ClusterPresence, LogEntry, LogPosition, Scope, StreamId},
    room::{JoinNo, Room},
};
use crate::{
    hub::{HubConfig, Rooms, lock},
    metrics::Metrics,
    session::Session,
};
use app::protocol::{RoomName, ServerEvent, User, UserId};
use futures_util::future::BoxFuture;
use redis::aio::MultiplexedConnection;
use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

const RETRY_FIRST: Duration = Duration::from_millis(100);
pub(super) const RETRY_MAX: Duration = Duration::from_secs(2);
/// Attempts before a change of the shared rooms is given up (about a minute of outage); the
/// heartbeat's backstop carries out what is given up.
pub(super) const RETRY_ATTEMPTS: usize = 40;

/// The rooms every instance on one Redis shares. Its background tasks (the mirror and the
/// heartbeat) run from [`SharedPresence::start`] until shutdown.
pub struct SharedPresence {
    inner: Arc<SharedInner>,
}

struct SharedInner {
    cluster: ClusterPresence,
    /// This instance's rooms, which the mirror keeps: their rosters are its copy of each room.
    rooms: Rooms,
    /// This instance's copy of who holds which `id`: a room nobody is told about, as in
    /// [`super::LocalPresence`].
    identities: Mutex<Room>,
    leave_grace: Duration,
    /// An instance silent this long is taken for dead.
    instance_timeout: Duration,
    /// Bumped each time the mirror applies log entries.
    mirror_applied: watch::Sender<u64>,
    /// False while the shared rooms cannot be reached.
    healthy: AtomicBool,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
}

impl SharedPresence {
    /// Shares the rooms with every instance on the same Redis, from now on: starts mirroring
    /// them into `rooms`, and beating for this instance. `--max-rooms` (in `config`) is
    /// checked in Redis, across instances.
    pub fn start(
        cluster: ClusterPresence,
        rooms: Rooms,
        config: &HubConfig,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
    ) -> Self {
        let inner = Arc::new(SharedInner {
            cluster: cluster.with_max_rooms(config.max_rooms),
            rooms,
            // Never large: it announces nothing, so it has nothing to summarise.
            identities: Mutex::new(Room::new(usize::MAX)),
            leave_grace: config.leave_grace,
            instance_timeout: config.instance_timeout,
            mirror_applied: watch::Sender::new(0),
            healthy: AtomicBool::new(true),
            metrics,
            shutdown,
        });
        tokio::spawn(run_mirror(Arc::clone(&inner)));
        tokio::spawn(run_heartbeat(Arc::clone(&inner)));
        Self { inner }
    }
}

impl Presence for SharedPresence {
    fn open<'a>(&'a self, request: OpenRequest<'a>) -> BoxFuture<'a, Result<Admission, OpenError>> {
        Box::pin(self.inner.open(request))
    }

    fn authorize(&self, session: &Session) -> Option<User> {
        lock(&self.inner.identities).authorize(session).cloned()
    }

    fn users_online(&self) -> usize {
        lock(&self.inner.identities).len()
    }

    fn is_healthy(&self) -> bool {
        self.inner.healthy.load(Ordering::Relaxed)
    }
}

impl SharedInner {
    async fn open(self: &Arc<Self>, request: OpenRequest<'_>) -> Result<Admission, OpenError> {
        let OpenRequest { id, name, session, max_streams_per_user, rooms, version_1 } = request;
        let stream = self.cluster.stream_id();
        let opened = self.cluster.open(&stream, &id, &name, session, max_streams_per_user, rooms).await;
        let admitted = match opened {
            Ok(Ok(admitted)) => admitted,
            Ok(Err(refusal)) => return Err(refusal),
            Err(error) => {
                self.metrics.redis_error();
                tracing::warn!(%error, "the shared rooms are unavailable");
                // Redis may have admitted the stream all the same (only its answer was lost):
                // close it, or it would count for this user for ever. Closing a stream that
                // was never opened changes nothing, and keeps it from opening later.
                self.close_stream(id, stream);
                return Err(OpenError::RoomUnavailable);
            }
        };
        // From here the shared rooms count this stream: the hold takes it back if we fail.
        let hold = SharedHold { presence: Arc::clone(self), id: admitted.user.id.clone(), stream };
        // The newcomer must be in its own `all-users` of each room: wait for the mirror to
        // apply its joins.
        let mut applied = self.mirror_applied.subscribe();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(views) = self.views(&admitted.user.id, rooms, version_1) {
                return Ok(Admission {
                    user: admitted.user,
                    new_session: admitted.new_session,
                    views,
                    hold: Box::new(hold),
                });
            }
            if tokio::time::timeout_at(deadline, applied.changed()).await.is_err() {
                return Err(OpenError::JoinNotMirrored { new_session: admitted.new_session });
            }
        }
    }

    /// A stream's view of each of `rooms`, once this instance's copy shows `id` in every one:
    /// each taken under its room's lock, as the mirror announces under it.
    fn views(&self, id: &UserId, rooms: &[RoomName], version_1: bool) -> Option<Vec<RoomView>> {
        rooms
            .iter()
            .map(|name| {
                let roster = self.rooms.get(name)?;
                let room = roster.lock();
                let view = room.contains(id).then(|| roster.view(&room, id, version_1));
                drop(room);
                view
            })
            .collect()
    }

    /// Closes a stream in the shared rooms, retrying through an outage (closing is
    /// idempotent), and carries out the departures it starts (from each room it was the
    /// user's last stream in, from the identity when it was their last) after the grace period.
    fn close_stream(self: &Arc<Self>, id: UserId, stream: StreamId) {
        let presence = Arc::clone(self);
        tokio::spawn(async move {
            if let Some(Some(token)) = presence.retry(|| presence.cluster.close(&stream)).await {
                tokio::time::sleep(presence.leave_grace).await;
                presence.retry(|| presence.cluster.expire(&id, token)).await;
            }
        });
    }

    /// Applies entries of the membership log and announces what they change, in log order.
    fn apply_log(&self, entries: Vec<LogEntry>) {
        for entry in entries {
            self.apply(entry);
        }
        self.mirror_applied.send_modify(|applied| *applied += 1);
    }

    /// Applies one log entry to this instance's identities or to its room, creating the room
    /// at its first join and letting it go after its last leave when it never had a message.
    /// A room is changed and announced under its lock, never under the rooms' (whose lock is
    /// taken before a room's, see [`Rooms::enter`]).
    fn apply(&self, entry: LogEntry) {
        match entry {
            LogEntry::Join { scope: Scope::Identities, user, binding, join_no } => {
                lock(&self.identities).apply_join(user, binding, join_no);
            }
            LogEntry::Leave { scope: Scope::Identities, id } => {
                lock(&self.identities).apply_leave(&id);
            }
            LogEntry::Join { scope: Scope::Room(name), user, binding, join_no } => {
                let roster = self.rooms.get_or_create_decided(&name);
                let mut room = roster.lock();
                let announce = room.apply_join(user.clone(), binding, join_no);
                roster.announce(&room, announce, ServerEvent::NewUser(user));
            }
            LogEntry::Leave { scope: Scope::Room(name), id } => {
                let Some(roster) = self.rooms.get(&name) else { return };
                let left = {
                    let mut room = roster.lock();
                    let left = room.apply_leave(&id);
                    if let Some((user, announce)) = left.clone() {
                        roster.announce(&room, announce, ServerEvent::UserLeave(user));
                    }
                    left.is_some()
                };
                if left {
                    self.rooms.remove_if_unused(&name);
                }
            }
        }
    }

    /// Makes this instance's copies the shared ones as read whole (`members`, a join for each
    /// identity and each user of each room): whoever is here but not there, or there since
    /// another join (left and came back meanwhile, as its place in join order tells), leaves;
    /// then the joins apply, repeats being ignored. For a mirror that starts, or that lost log
    /// entries and cannot know which.
    fn resync_log(&self, members: Vec<LogEntry>) {
        let mut there: HashMap<&Scope, HashMap<&UserId, JoinNo>> = HashMap::new();
        for entry in &members {
            if let LogEntry::Join { scope, user, join_no, .. } = entry {
                there.entry(scope).or_default().insert(&user.id, *join_no);
            }
        }
        let stale = |scope: Scope, room: &Room| -> Vec<LogEntry> {
            let there = there.get(&scope);
            room.join_nos()
                .filter(|(id, join_no)| there.and_then(|users| users.get(id)) != Some(join_no))
                .map(|(id, _)| LogEntry::Leave { scope: scope.clone(), id: id.clone() })
                .collect()
        };
        let mut gone = stale(Scope::Identities, &lock(&self.identities));
        for roster in self.rooms.all() {
            let scope = Scope::Room(roster.ring().room().clone());
            gone.extend(stale(scope, &roster.lock()));
        }
        self.apply_log(gone.into_iter().chain(members).collect());
    }

    /// Runs `call` until it succeeds, with backoff, through a Redis outage of about a minute.
    async fn retry<T, F, Fut>(&self, mut call: F) -> Option<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ClusterError>>,
    {
        let mut wait = RETRY_FIRST;
        for _ in 0..RETRY_ATTEMPTS {
            match call().await {
                Ok(value) => return Some(value),
                Err(error) => {
                    self.metrics.redis_error();
                    tracing::debug!(%error, "a change of the shared rooms failed; retrying");
                }
            }
            tokio::select! {
                () = self.shutdown.cancelled() => return None,
                () = tokio::time::sleep(wait) => {}
            }
            wait = (wait * 2).min(RETRY_MAX);
        }
        tracing::warn!("gave up recording a change of the shared rooms");
        None
    }
}

/// One stream counted in the shared rooms.
struct SharedHold {
    presence: Arc<SharedInner>,
    id: UserId,
    stream: StreamId,
}

impl Drop for SharedHold {
    fn drop(&mut self) {
        // Streams are dropped on the runtime's threads; without a runtime (the process is
        // ending) there is nobody left to tell, and the other instances reap this one's
        // streams once its heartbeat stops.
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        self.presence.close_stream(self.id.clone(), self.stream.clone());
    }
}

/// Keeps this instance's identities and rooms a mirror of the shared ones: reads them once,
/// then applies the membership log in order, resuming from the last applied entry after any
/// failure. When entries were lost (trimmed before this mirror read them: it fell more than
/// [`super::cluster::LOG_MAXLEN`] behind), it reads them whole again and applies the
/// difference, joins and leaves alike.
async fn run_mirror(presence: Arc<SharedInner>) {
    let (cluster, shutdown) = (&presence.cluster, presence.shutdown.clone());
    let mut position: Option<LogPosition> = None;
    let mut reader: Option<MultiplexedConnection> = None;
    let mut backoff = RETRY_FIRST;
    while !shutdown.is_cancelled() {
        let step = async {
            if reader.is_none() {
                reader = Some(cluster.log_reader().await?);
            }
            if position.is_none() {
                let (at, members) = cluster.snapshot().await?;
                presence.resync_log(members);
                position = Some(at);
            }
            let mut lost = false;
            if let (Some(conn), Some(after)) = (reader.as_mut(), position.as_mut()) {
                let entries = cluster.read_log(conn, after).await?;
                let mut applying = Vec::with_capacity(entries.len());
                for raw in entries {
                    if !after.advance(&raw) {
                        tracing::warn!(
                            "membership log entries were trimmed before this instance read them; \
                             reading the whole rooms again"
                        );
                        lost = true;
                        break;
                    }
                    applying.extend(raw.entry);
                }
                presence.apply_log(applying);
            }
            if lost {
                position = None;
            }
            Ok::<(), ClusterError>(())
        };
        let result = tokio::select! {
            () = shutdown.cancelled() => return,
            result = step => result,
        };
        match result {
            Ok(()) => backoff = RETRY_FIRST,
            Err(error) => {
                presence.metrics.redis_error();
                tracing::warn!(%error, "reading the shared rooms failed; retrying");
                reader = None;
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(RETRY_MAX);
            }
        }
    }
}

/// Tells the other instances this one is alive, and reaps the ones that are not.
async fn run_heartbeat(presence: Arc<SharedInner>) {
    let timeout = presence.instance_timeout;
    let mut ticks = tokio::time::interval((timeout / 3).max(Duration::from_millis(50)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let shutdown = presence.shutdown.clone();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        // Later than the instance that closed a user's last stream in a room would carry out
        // the departure, so that the backstop only does what that instance did not.
        match presence.cluster.heartbeat(timeout, timeout + presence.leave_grace).await {
            Ok(orphaned) => {
                if !presence.healthy.swap(true, Ordering::Relaxed) {
                    tracing::info!("the shared rooms are reachable again");
                }
                for (id, token) in orphaned {
                    let presence = Arc::clone(&presence);
                    tokio::spawn(async move {
                        tokio::time::sleep(presence.leave_grace).await;
                        presence.retry(|| presence.cluster.expire(&id, token)).await;
                    });
                }
            }
            Err(error) => {
                presence.metrics.redis_error();
                if presence.healthy.swap(false, Ordering::Relaxed) {
                    tracing::error!(%error, "the shared rooms are unreachable");
                }
            }
        }
    }
}
