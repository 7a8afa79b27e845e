//! Presence for one instance alone: it decides every binding, join and leave itself, at once,
//! each room's under that room's lock together with the stream's subscription to its ring.
//!
//! Who holds an `id` is kept apart from who is in which room, with the same rules
//! ([`Room`]): the *identities* are one more room that nobody sees, which every stream enters
//! whatever it follows, so that a session holds one `id` in every room, a user's streams are
//! counted across rooms, and an `id` is free again only once its last stream anywhere has
//! been gone for the grace period. Each room then counts the streams that follow it, and a
//! user leaves a room the grace period after the last of those closed.

use super::{Admission, OpenError, OpenRequest, Presence, RoomView, Roster, room::Room};
use crate::{
    hub::{
        lock,
        rooms::{Rooms, TooManyRooms},
    },
    session::Session,
};
use app::protocol::{ServerEvent, User, UserId};
use futures_util::future::BoxFuture;
use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

/// The rooms of a server that shares them with nobody.
pub struct LocalPresence {
    inner: Arc<LocalInner>,
}

struct LocalInner {
    rooms: Rooms,
    /// Who holds which `id`: a room nobody is told about (see the module comment).
    identities: Mutex<Room>,
    leave_grace: Duration,
}

impl LocalPresence {
    pub fn new(rooms: Rooms, leave_grace: Duration) -> Self {
        Self {
            inner: Arc::new(LocalInner {
                rooms,
                // Never large: it announces nothing, so it has nothing to summarise.
                identities: Mutex::new(Room::new(usize::MAX)),
                leave_grace,
            }),
        }
    }
}

impl LocalInner {
    fn admit(self: &Arc<Self>, request: OpenRequest<'_>) -> Result<Admission, OpenError> {
        let OpenRequest { id, name, session, max_streams_per_user, rooms, version_1 } = request;
        let admitted = lock(&self.identities)
            .open_stream(id, name, session, max_streams_per_user)
            .map_err(OpenError::Refused)?;
        let (user, binding) = (admitted.user, admitted.binding);
        let entered = self.rooms.enter(rooms, |rosters| {
            rosters.into_iter().map(|roster| enter(&roster, &user, binding, version_1)).collect::<Vec<_>>()
        });
        let views = match entered {
            Ok(views) => views,
            Err(TooManyRooms) => {
                // Refused after the identity took the stream: give it back at once (no grace:
                // the stream never opened), which frees an `id` this stream had just bound.
                let mut identities = lock(&self.identities);
                if let Some(pending) = identities.close_stream(&user.id) {
                    identities.expire(&pending);
                }
                return Err(OpenError::TooManyRooms);
            }
        };
        let hold = LocalHold {
            presence: Arc::clone(self),
            id: user.id.clone(),
            rosters: views.iter().map(|view| view.roster.clone()).collect(),
        };
        Ok(Admission { user, new_session: admitted.new_session, views, hold: Box::new(hold) })
    }
}

/// A stream of `user` starts following `roster`'s room; its view of the room.
fn enter(roster: &Roster, user: &User, binding: crate::session::Binding, version_1: bool) -> RoomView {
    let mut room = roster.lock();
    let announce = room.enter(user.clone(), binding);
    roster.announce(&room, announce, ServerEvent::NewUser(user.clone()));
    roster.view(&room, &user.id, version_1)
}

impl Presence for LocalPresence {
    fn open<'a>(&'a self, request: OpenRequest<'a>) -> BoxFuture<'a, Result<Admission, OpenError>> {
        // Decided at once: nothing here waits.
        Box::pin(std::future::ready(self.inner.admit(request)))
    }

    fn authorize(&self, session: &Session) -> Option<User> {
        lock(&self.inner.identities).authorize(session).cloned()
    }

    fn users_online(&self) -> usize {
        lock(&self.inner.identities).len()
    }

    fn is_healthy(&self) -> bool {
        true
    }
}

/// One stream counted in its rooms and against its user's identity.
struct LocalHold {
    presence: Arc<LocalInner>,
    id: UserId,
    rosters: Vec<Roster>,
}

impl Drop for LocalHold {
    fn drop(&mut self) {
        // Streams are dropped on the runtime's threads; without a runtime (the process is
        // ending) there is nobody left to tell.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let leaving: Vec<_> = self
            .rosters
            .drain(..)
            .filter_map(|roster| {
                let pending = roster.lock().close_stream(&self.id)?;
                Some((roster, pending))
            })
            .collect();
        let identity = lock(&self.presence.identities).close_stream(&self.id);
        if leaving.is_empty() && identity.is_none() {
            return;
        }
        let presence = Arc::clone(&self.presence);
        runtime.spawn(async move {
            tokio::time::sleep(presence.leave_grace).await;
            for (roster, pending) in leaving {
                let left = {
                    let mut room = roster.lock();
                    let left = room.expire(&pending);
                    if let Some((user, announce)) = left.clone() {
                        roster.announce(&room, announce, ServerEvent::UserLeave(user));
                    }
                    left.is_some()
                };
                if left {
                    presence.rooms.remove_if_unused(roster.ring().room());
                }
            }
            if let Some(pending) = identity {
                lock(&presence.identities).expire(&pending);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{hub::Frame, metrics::Metrics};
    use app::protocol::{RoomName, UserName};
    use std::sync::Arc;

    fn presence(leave_grace: Duration) -> (LocalPresence, Rooms) {
        let config = crate::Config::for_tests(std::env::temp_dir());
        let rooms = Rooms::new(&crate::hub_config(&config), Arc::new(Metrics::default()));
        (LocalPresence::new(rooms.clone(), leave_grace), rooms)
    }

    fn presence_event(frame: Frame) -> String {
        match frame {
            Frame::Presence { bytes, .. } => String::from_utf8_lossy(&bytes.v2).into_owned(),
            other => panic!("not a presence change: {other:?}"),
        }
    }

    fn request<'a>(id: &UserId, session: Option<&'a Session>, rooms: &'a [RoomName]) -> OpenRequest<'a> {
        OpenRequest {
            id: id.clone(),
            name: UserName::parse("Ann").unwrap(),
            session,
            max_streams_per_user: 8,
            rooms,
            version_1: false,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn dropping_the_last_hold_is_a_leave_after_the_grace_period() {
        let (presence, rooms) = presence(Duration::from_secs(5));
        let general = [RoomName::general()];
        let mut watcher = rooms.general().ring().subscribe();
        let id = UserId::parse("ann").unwrap();
        let first = presence.open(request(&id, None, &general)).await.expect("admitted");
        let session = first.new_session.clone().expect("the first stream binds the id");
        assert!(presence_event(watcher.recv().await.unwrap()).contains("new-user"));
        let second = presence.open(request(&id, Some(&session), &general)).await.expect("a second tab");
        assert_eq!(second.views[0].version, 1, "a second tab is no new join");

        drop(first);
        drop(second);
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert_eq!(presence.users_online(), 1, "still within the grace period");
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(presence.users_online(), 0);
        assert!(presence_event(watcher.recv().await.unwrap()).contains("user-leave"));
        assert!(presence.authorize(&session).is_none(), "the binding is forgotten");
    }

    #[tokio::test(start_paused = true)]
    async fn a_user_is_in_each_room_a_stream_of_theirs_follows_and_leaves_it_on_its_own() {
        let (presence, rooms) = presence(Duration::from_secs(3));
        let (a, b) = (RoomName::parse("a").unwrap(), RoomName::parse("b").unwrap());
        let id = UserId::parse("ann").unwrap();
        let both = presence.open(request(&id, None, &[a.clone(), b.clone()])).await.expect("admitted");
        let session = both.new_session.clone().expect("bound");
        let in_room = |room: &RoomName| rooms.get(room).is_some_and(|roster| roster.contains(&id));
        assert!(in_room(&a) && in_room(&b) && !in_room(&RoomName::general()));
        // Switching lists: open the new stream, then close the old one.
        let only_b = presence.open(request(&id, Some(&session), std::slice::from_ref(&b))).await.expect("b");
        drop(both);
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert!(!in_room(&a), "a's last stream closed: left after the grace period");
        assert!(rooms.get(&a).is_none(), "a had no messages and nobody in it: gone");
        assert!(in_room(&b), "b is still followed");
        assert!(presence.authorize(&session).is_some(), "the id is still held");
        drop(only_b);
    }

    #[tokio::test]
    async fn a_list_that_would_make_too_many_rooms_is_refused_and_binds_nothing() {
        let mut config = crate::Config::for_tests(std::env::temp_dir());
        config.max_rooms = 2;
        let rooms = Rooms::new(&crate::hub_config(&config), Arc::new(Metrics::default()));
        let presence = LocalPresence::new(rooms.clone(), Duration::from_secs(3));
        let id = UserId::parse("ann").unwrap();
        let list = [RoomName::parse("x").unwrap(), RoomName::parse("y").unwrap()];
        assert!(matches!(presence.open(request(&id, None, &list)).await, Err(OpenError::TooManyRooms)));
        assert_eq!(presence.users_online(), 0, "the refused stream bound nothing");
        assert_eq!(rooms.count(), 1);
        let one = presence.open(request(&id, None, &list[..1])).await.expect("one more room fits");
        assert_eq!(rooms.count(), 2);
        drop(one);
    }
}
