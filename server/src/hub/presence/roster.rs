//! This instance's view of who is in one room: the [`Room`] behind its lock, and the
//! announcing of each change of it on the room's ring. Both kinds of presence keep one per room:
//! a local presence changes it as it decides, a shared one as its mirror applies the
//! membership log.
//!
//! Presence changes are put on the ring under the room lock, so the ring's order of presence
//! events is the order the room changed in, and a stream subscribes under the same lock
//! ([`Roster::view`]), so it sees every change after its `all-users`. The lock is a std mutex
//! held for plain data only, never across an `.await`.

use super::room::{Announce, JoinNo, Room};
use crate::hub::{
    Frame, Ring, lock,
    ring::{Encoded, encode_event},
};
use app::protocol::{Dialect, ServerEvent, User, UserId};
use std::sync::{
    Arc, Mutex, MutexGuard,
    atomic::{AtomicU64, Ordering},
};
use tokio::sync::broadcast;

/// What a stream starts from in one room: its cursor on the room's ring and the view of the
/// room written first, taken together under the room lock.
pub(crate) struct RoomView {
    pub roster: Roster,
    pub receiver: broadcast::Receiver<Frame>,
    /// The encoded `all-users` (and, in a large room, `presence`), with its event count.
    pub opening: (Vec<u8>, u64),
    /// The room version the opening shows.
    pub version: u64,
}

struct RosterInner {
    room: Mutex<Room>,
    ring: Ring,
    /// The room's version, readable without the lock by streams checking their view.
    version: AtomicU64,
    /// The `users` snapshot for one room version, encoded once for every stream that needs it.
    snapshot: Mutex<Option<(u64, Encoded)>>,
}

/// A handle to the roster. Cloning is shallow: the presence, its background tasks and the
/// departures it has scheduled each hold one.
#[derive(Clone)]
pub struct Roster {
    inner: Arc<RosterInner>,
}

impl Roster {
    /// An empty room, announcing on `ring`.
    pub fn new(ring: Ring, large_room_threshold: usize) -> Self {
        Self {
            inner: Arc::new(RosterInner {
                room: Mutex::new(Room::new(large_room_threshold)),
                ring,
                version: AtomicU64::new(0),
                snapshot: Mutex::new(None),
            }),
        }
    }

    /// The ring this roster announces on, which every stream it admits reads.
    pub(crate) fn ring(&self) -> &Ring {
        &self.inner.ring
    }

    /// The room, locked. Hold it for plain data only: never across an `.await`.
    pub(super) fn lock(&self) -> MutexGuard<'_, Room> {
        lock(&self.inner.room)
    }

    /// Tells the streams about a change of membership, the way the room decided. Called with
    /// the room locked, so presence frames enter the ring in the order the room changed.
    pub(super) fn announce(&self, room: &Room, announce: Announce, event: ServerEvent) {
        match announce {
            Announce::Event { version } => self.send_presence(version, event),
            Announce::Snapshot { version } => self.send_presence(version, ServerEvent::Users(room.users())),
            Announce::Summarized | Announce::Nothing => {}
        }
    }

    fn send_presence(&self, version: u64, event: ServerEvent) {
        self.inner.version.store(version, Ordering::Release);
        let bytes = encode_event(self.inner.ring.room(), &event);
        self.inner.ring.send(Frame::Presence { version, bytes });
    }

    /// Subscribes a stream of `user` to the ring and writes its view of the room, in version
    /// 1's shape or 2's; `room` is locked.
    pub(super) fn view(&self, room: &Room, user: &UserId, version_1: bool) -> RoomView {
        let receiver = self.inner.ring.subscribe();
        let dialect = if version_1 { Dialect::V1 } else { Dialect::V2 { room: self.inner.ring.room() } };
        // Written from the room's own users, under its lock, without copying them: a join
        // storm writes one of these per newcomer, each listing up to a whole small room.
        let mut opening = Vec::new();
        ServerEvent::write_all_users_frame(dialect, room.all_users_for(user), &mut opening);
        let mut opening_events = 1;
        if room.is_large() {
            ServerEvent::Presence(room.presence_now()).write_sse_frame_in(dialect, &mut opening);
            opening_events += 1;
        }
        RoomView {
            roster: self.clone(),
            receiver,
            opening: (opening, opening_events),
            version: room.version(),
        }
    }

    /// Puts a large room's `presence` summary on the ring, when it changed since the last.
    pub(crate) fn send_summary(&self) {
        let summary = self.lock().take_summary();
        if let Some(summary) = summary {
            let bytes = encode_event(self.inner.ring.room(), &ServerEvent::Presence(summary));
            self.inner.ring.send(Frame::Summary { bytes });
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    pub(crate) fn page(&self, after: Option<JoinNo>, limit: usize) -> (Vec<User>, Option<JoinNo>) {
        self.lock().page(after, limit)
    }

    /// The room's version as last announced, without the lock.
    pub(crate) fn version(&self) -> u64 {
        self.inner.version.load(Ordering::Acquire)
    }

    /// The current `users` snapshot and the room version it shows, encoded at most once per
    /// version.
    pub(crate) fn users_snapshot(&self) -> (u64, Encoded) {
        let room = self.lock();
        let version = room.version();
        let mut cached = lock(&self.inner.snapshot);
        if let Some((cached_version, bytes)) = cached.as_ref()
            && *cached_version == version
        {
            return (version, bytes.clone());
        }
        let bytes = encode_event(self.inner.ring.room(), &ServerEvent::Users(room.users()));
        *cached = Some((version, bytes.clone()));
        (version, bytes)
    }

    /// Whether `id` is in the room (a stream of theirs follows it, or it is within the grace
    /// period).
    pub(crate) fn contains(&self, id: &UserId) -> bool {
        self.lock().contains(id)
    }
}
