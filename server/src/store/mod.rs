//! Where messages live. The store assigns every message its `seq` and makes it durable before
//! it is acknowledged; the hub is fed from the store (its [`MessageFeed`]), never from the
//! handler, so that every instance sharing a store delivers the same sequence.
//!
//! The trait is what the hub and the handlers need (append, read after a `seq`, read the last
//! N, read before a `seq`, list the rooms), not what SQLite offers, so that a Redis
//! implementation can stand beside it.
//!
//! **Rooms.** `seq` is one sequence for the whole server; each message belongs to one room,
//! and every read is of one room. Retention is per room: a room keeps its newest
//! `retention` messages, whatever the other rooms do. What a room lost is told by its
//! *horizon*, the `seq` of its newest message no longer retained (0 when it lost none): a
//! client that last saw `seq` X is owed a `history-gap` for the room exactly when the horizon
//! is above X. Seqs of one room are not consecutive (the other rooms' messages come between),
//! so the horizon cannot be read from the seqs themselves.

mod redis;
mod sqlite;

pub use redis::RedisStore;
pub use sqlite::SqliteStore;

use app::protocol::{ChatMessage, MessageText, RoomName, User};
use futures_util::future::BoxFuture;
use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};
use tokio::sync::{mpsc, oneshot};

/// Receives every appended message once it is durable, in `seq` order, with no gap. Called on
/// the store's writer: it must not block.
///
/// The second argument runs once the batch is recorded where new streams find it (the hub's
/// recent cache) and before the open streams are woken. The embedded store answers its posts
/// there: an answered post is then in the history of every stream opened after it, and the
/// answers do not wait while thousands of streams are woken (on one core, waking the streams'
/// thread can hand it the CPU for a whole fan-out round).
pub type MessageFeed = Arc<dyn Fn(&[ChatMessage], &mut dyn FnMut()) + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store cannot take writes now (closing, or its backend is down). Retry later.
    #[error("the message store is unavailable")]
    Unavailable,
    #[error("message store failure: {0}")]
    Backend(String),
}

/// What one room retains after a given `seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replay {
    /// The room's retained messages after the asked-for `seq`, in order (at most the asked
    /// limit).
    pub messages: Vec<ChatMessage>,
    /// The room's horizon: the `seq` of its newest message that is no longer retained, 0 when
    /// it lost none (see the module comment).
    pub horizon: u64,
}

/// One page of a room's history before a `seq`, for scroll-back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Oldest first.
    pub messages: Vec<ChatMessage>,
    /// Whether older retained messages of the room exist.
    pub more: bool,
}

/// A room that has retained messages, and its newest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomHead {
    pub room: RoomName,
    pub last_seq: u64,
}

/// What a store's writer receives: a job (an append to commit; for SQLite, also a read, since
/// its writer owns the only connection), or the request to finish.
pub(crate) enum Command<A, D> {
    Job(A),
    /// Everything queued before this is written; then the writer stops and answers on `done`.
    Close {
        done: D,
    },
}

/// Group commit's gathering step: `first` plus every command already queued, up to `max`
/// jobs in `batch`, stopping at a close, which is returned. The appends in `batch` then go to
/// disk in one commit, so concurrent posts share one sync.
pub(crate) fn gather<A, D>(
    first: Command<A, D>,
    queue: &mut tokio::sync::mpsc::Receiver<Command<A, D>>,
    batch: &mut Vec<A>,
    max: usize,
) -> Option<D> {
    let mut next = Some(first);
    while let Some(command) = next.take() {
        match command {
            Command::Job(job) => batch.push(job),
            Command::Close { done } => return Some(done),
        }
        if batch.len() < max {
            next = queue.try_recv().ok();
        }
    }
    None
}

/// A store's `close`: marks it closed (new appends are refused from here on), asks its writer
/// to finish what is queued, and waits for the writer's word, which is returned (`None` when
/// the writer had already stopped).
pub(crate) async fn close_writer<A, T>(
    closed: &AtomicBool,
    commands: &mpsc::Sender<Command<A, oneshot::Sender<T>>>,
) -> Option<T> {
    closed.store(true, Ordering::Release);
    let (done, finished) = oneshot::channel();
    commands.send(Command::Close { done }).await.ok()?;
    finished.await.ok()
}

pub trait MessageStore: Send + Sync + 'static {
    /// Appends a message to `room`, assigning its `seq` and `ts`; resolves once it is durable
    /// and, for the embedded store, recorded by the feed (with Redis every instance's feed
    /// tails the shared stream, so the answer may come first: a stream opened meanwhile gets
    /// it live).
    fn append(
        &self,
        author: User,
        room: RoomName,
        text: MessageText,
    ) -> BoxFuture<'_, Result<ChatMessage, StoreError>>;

    /// The retained messages of `room` with `seq > after`, oldest first, at most `limit`, and
    /// the room's horizon.
    fn read_after<'a>(
        &'a self,
        room: &'a RoomName,
        after: u64,
        limit: usize,
    ) -> BoxFuture<'a, Result<Replay, StoreError>>;

    /// The last `n` retained messages of `room`, oldest first.
    fn read_last<'a>(
        &'a self,
        room: &'a RoomName,
        n: usize,
    ) -> BoxFuture<'a, Result<Vec<ChatMessage>, StoreError>>;

    /// The newest `limit` retained messages of `room` with `seq < before` (all, without
    /// `before`), oldest first, and whether older ones are retained.
    fn read_before<'a>(
        &'a self,
        room: &'a RoomName,
        before: Option<u64>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Page, StoreError>>;

    /// Every room with retained messages, with its newest `seq`.
    fn rooms(&self) -> BoxFuture<'_, Result<Vec<RoomHead>, StoreError>>;

    /// Waits until every accepted write is durable and stops taking new ones.
    fn close(&self) -> BoxFuture<'_, ()>;
}
