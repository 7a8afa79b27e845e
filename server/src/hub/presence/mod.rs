//! Presence: who holds which `id`, who is in which room, and whether a new stream may open.
//!
//! One instance alone decides by itself ([`LocalPresence`]); instances sharing one Redis decide
//! together ([`SharedPresence`], over the Redis client in [`cluster`]). The server picks one at
//! start and hands it to the hub, which admits every stream through the [`Presence`] trait and
//! never asks which it has. Either way the rules are those of [`room::Room`], and this
//! instance's view of each room is a [`Roster`], which announces each change on the room's
//! ring.

pub(super) mod cluster;
mod local;
pub(super) mod room;
mod roster;
mod shared;

pub use local::LocalPresence;
pub(crate) use roster::RoomView;
pub use roster::Roster;
pub use shared::SharedPresence;

use super::OpenError;
use crate::session::Session;
use app::protocol::{RoomName, User, UserId, UserName};
use futures_util::future::BoxFuture;

/// Keeps an admitted stream counted in the room; dropping it closes the stream there (and,
/// when it was the user's last, the user leaves after the grace period). Each presence has its
/// own kind, so it is boxed.
pub(crate) type StreamHold = Box<dyn Send + Sync>;

/// A stream the room admitted.
pub(crate) struct Admission {
    /// The user as bound (the bound name, not necessarily the one asked for).
    pub user: User,
    /// The cookie to set, when this stream bound the `id`.
    pub new_session: Option<Session>,
    /// For each room the stream follows, in the order asked: its cursor on the room's ring and
    /// its opening view of the room, which shows the user.
    pub views: Vec<RoomView>,
    pub hold: StreamHold,
}

/// What a stream asks to be admitted with.
pub(crate) struct OpenRequest<'a> {
    pub id: UserId,
    pub name: UserName,
    pub session: Option<&'a Session>,
    pub max_streams_per_user: usize,
    /// The rooms it follows: at least one, none twice.
    pub rooms: &'a [RoomName],
    /// It speaks version 1 (it follows `general` only).
    pub version_1: bool,
}

/// Decides who holds which `id` and who is in which room. Chosen once at start; the hub never
/// asks which it has.
pub(crate) trait Presence: Send + Sync {
    /// Admits a stream, or refuses it: checks identity, the per-user limit and the room limit,
    /// records the stream in each of its rooms, announces the joins, and answers once this
    /// instance's rosters show the user, with the stream subscribed to each room's ring.
    fn open<'a>(&'a self, request: OpenRequest<'a>) -> BoxFuture<'a, Result<Admission, OpenError>>;

    /// The user a session speaks for, if the session is current.
    fn authorize(&self, session: &Session) -> Option<User>;

    /// Distinct users in any room.
    fn users_online(&self) -> usize;

    /// False while what the rooms are kept in cannot be reached.
    fn is_healthy(&self) -> bool;
}
