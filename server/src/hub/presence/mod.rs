//! Presence: who is in the room, and whether a new stream may join it.
//!
//! One instance alone decides by itself ([`LocalPresence`]); instances sharing one Redis decide
//! together ([`SharedPresence`], over the Redis client in [`cluster`]). The server picks one at
//! start and hands it to the hub, which admits every stream through the [`Presence`] trait and
//! never asks which it has. Either way the rules are those of [`room::Room`], and this
//! instance's view of the room is a [`Roster`], which announces each change on the ring.

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
use app::protocol::{User, UserId, UserName};
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
    /// The stream's cursor on the ring and its opening view of the room, which shows the user.
    pub view: RoomView,
    pub hold: StreamHold,
}

/// Decides who is in the room. Chosen once at start; the hub never asks which it has.
pub(crate) trait Presence: Send + Sync {
    /// This instance's view of the room.
    fn roster(&self) -> &Roster;

    /// Admits a stream for `id`, or refuses it: checks identity and the per-user limit,
    /// records the stream, announces the join when it is one, and answers once this instance's
    /// roster shows the user, with the stream subscribed to the ring.
    fn open<'a>(
        &'a self,
        id: UserId,
        name: UserName,
        session: Option<&'a Session>,
        max_streams_per_user: usize,
    ) -> BoxFuture<'a, Result<Admission, OpenError>>;

    /// False while what the room is kept in cannot be reached.
    fn is_healthy(&self) -> bool;
}
