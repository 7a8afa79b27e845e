//! Presence shared by every instance on one Redis: the shared room ([`ClusterPresence`])
//! decides each join and leave, and this instance's [`Roster`] is a mirror of it, kept by
//! applying the membership log in order ([`run_mirror`]). This module drives the Redis client:
//! admitting through it, closing through it with retries, beating for this instance and
//! reaping dead ones ([`run_heartbeat`]).

use super::{
    Admission, OpenError, OpenRequest, Presence, Roster,
    cluster::{ClusterError, ClusterPresence, LogEntry, LogPosition, StreamId},
    room::{Announce, Room},
};
use crate::{
    hub::HubConfig,
    metrics::Metrics,
    session::{Binding, Session},
};
use app::protocol::{ServerEvent, User, UserId, UserName};
use futures_util::future::BoxFuture;
use redis::aio::MultiplexedConnection;
use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

const RETRY_FIRST: Duration = Duration::from_millis(100);
pub(super) const RETRY_MAX: Duration = Duration::from_secs(2);
/// Attempts before a change of the shared room is given up (about a minute of outage); the
/// heartbeat reaper is the backstop for what is given up.
pub(super) const RETRY_ATTEMPTS: usize = 40;

/// The room every instance on one Redis shares. Its background tasks (the mirror and the
/// heartbeat) run from [`SharedPresence::start`] until shutdown.
pub struct SharedPresence {
    inner: Arc<SharedInner>,
}

struct SharedInner {
    cluster: ClusterPresence,
    roster: Roster,
    leave_grace: Duration,
    /// An instance silent this long is taken for dead.
    instance_timeout: Duration,
    /// Bumped each time the mirror of the shared room applies log entries.
    mirror_applied: watch::Sender<u64>,
    /// False while the shared room cannot be reached.
    healthy: AtomicBool,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
}

impl SharedPresence {
    /// Shares the room with every instance on the same Redis, from now on: starts mirroring
    /// it into `roster`, and beating for this instance.
    pub fn start(
        cluster: ClusterPresence,
        roster: Roster,
        config: &HubConfig,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
    ) -> Self {
        let inner = Arc::new(SharedInner {
            cluster,
            roster,
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
        // Shared presence keeps one room so far: `general`.
        if !matches!(request.rooms, [room] if room.is_general()) {
            return Box::pin(std::future::ready(Err(OpenError::RoomsNotShared)));
        }
        let OpenRequest { id, name, session, max_streams_per_user, version_1, .. } = request;
        Box::pin(self.inner.open(id, name, session, max_streams_per_user, version_1))
    }

    fn authorize(&self, session: &Session) -> Option<User> {
        self.inner.roster.authorize(session)
    }

    fn users_online(&self) -> usize {
        self.inner.roster.len()
    }

    fn is_healthy(&self) -> bool {
        self.inner.healthy.load(Ordering::Relaxed)
    }
}

impl SharedInner {
    async fn open(
        self: &Arc<Self>,
        id: UserId,
        name: UserName,
        session: Option<&Session>,
        max_streams_per_user: usize,
        version_1: bool,
    ) -> Result<Admission, OpenError> {
        let stream = self.cluster.stream_id();
        let admitted = match self.cluster.open(&stream, &id, &name, session, max_streams_per_user).await {
            Ok(Ok(admitted)) => admitted,
            Ok(Err(refusal)) => return Err(OpenError::Refused(refusal)),
            Err(error) => {
                self.metrics.redis_error();
                tracing::warn!(%error, "the shared room is unavailable");
                // Redis may have admitted the stream all the same (only its answer was lost):
                // close it, or it would count for this user for ever. Closing a stream that
                // was never opened changes nothing, and keeps it from opening later.
                self.close_stream(id, stream);
                return Err(OpenError::RoomUnavailable);
            }
        };
        // From here the shared room counts this stream: the hold takes it back if we fail.
        let hold = SharedHold { presence: Arc::clone(self), id: admitted.user.id.clone(), stream };
        // The newcomer must be in its own `all-users`: wait for the mirror to apply its join.
        let mut applied = self.mirror_applied.subscribe();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            {
                let room = self.roster.lock();
                if room.contains(&admitted.user.id) {
                    let view = self.roster.view(&room, &admitted.user.id, version_1);
                    return Ok(Admission {
                        user: admitted.user,
                        new_session: admitted.new_session,
                        views: vec![view],
                        hold: Box::new(hold),
                    });
                }
            }
            if tokio::time::timeout_at(deadline, applied.changed()).await.is_err() {
                return Err(OpenError::JoinNotMirrored { new_session: admitted.new_session });
            }
        }
    }

    /// Closes a stream in the shared room, retrying through an outage (closing is idempotent),
    /// and carries out the user's departure after the grace period when it was the last.
    fn close_stream(self: &Arc<Self>, id: UserId, stream: StreamId) {
        let presence = Arc::clone(self);
        tokio::spawn(async move {
            if let Some(Some(token)) = presence.retry(|| presence.cluster.close(&stream, &id)).await {
                tokio::time::sleep(presence.leave_grace).await;
                presence.retry(|| presence.cluster.expire(&id, token)).await;
            }
        });
    }

    /// Applies entries of the shared room's log and announces what they change, in log order.
    fn apply_log(&self, entries: Vec<LogEntry>) {
        let mut room = self.roster.lock();
        for entry in entries {
            if let Some((user, announce, joined)) = apply(&mut room, entry) {
                let event = if joined { ServerEvent::NewUser(user) } else { ServerEvent::UserLeave(user) };
                self.roster.announce(&room, announce, event);
            }
        }
        drop(room);
        self.mirror_applied.send_modify(|applied| *applied += 1);
    }

    /// Makes this instance's room the shared room as read whole (`members`, the join of each):
    /// whoever is here but not there, or there under another binding (left and came back
    /// meanwhile), leaves; then the joins apply, repeats being ignored. For a mirror that
    /// starts, or that lost log entries and cannot know which.
    fn resync_log(&self, members: Vec<LogEntry>) {
        let gone: Vec<LogEntry> = {
            let room = self.roster.lock();
            let bindings: HashMap<&UserId, Binding> = members
                .iter()
                .filter_map(|entry| match entry {
                    LogEntry::Join { user, binding, .. } => Some((&user.id, *binding)),
                    LogEntry::Leave { .. } => None,
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
                .map(|user| LogEntry::Leave { id: user.id })
                .collect()
        };
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
                    tracing::debug!(%error, "a change of the shared room failed; retrying");
                }
            }
            tokio::select! {
                () = self.shutdown.cancelled() => return None,
                () = tokio::time::sleep(wait) => {}
            }
            wait = (wait * 2).min(RETRY_MAX);
        }
        tracing::warn!("gave up recording a change of the shared room");
        None
    }
}

/// One stream counted in the shared room.
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

/// Applies one log entry to this instance's room; what the roster must announce.
fn apply(room: &mut Room, entry: LogEntry) -> Option<(User, Announce, bool)> {
    match entry {
        LogEntry::Join { user, binding, join_no } => {
            let announce = room.apply_join(user.clone(), binding, join_no);
            Some((user, announce, true))
        }
        LogEntry::Leave { id } => room.apply_leave(&id).map(|(user, announce)| (user, announce, false)),
    }
}

/// Keeps this instance's room a mirror of the shared one: reads the room once, then applies
/// the membership log in order, resuming from the last applied entry after any failure. When
/// entries were lost (trimmed before this mirror read them: it fell more than
/// [`super::cluster::LOG_MAXLEN`] behind), it reads the whole room again and applies the
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
                             reading the whole room again"
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
                tracing::warn!(%error, "reading the shared room failed; retrying");
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
        // Later than the instance that closed the last stream would expire the user, so that
        // the backstop only does what that instance did not.
        match presence.cluster.heartbeat(timeout, timeout + presence.leave_grace).await {
            Ok(orphaned) => {
                if !presence.healthy.swap(true, Ordering::Relaxed) {
                    tracing::info!("the shared room is reachable again");
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
                    tracing::error!(%error, "the shared room is unreachable");
                }
            }
        }
    }
}
