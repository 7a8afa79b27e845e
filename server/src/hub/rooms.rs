//! The rooms that exist, each a [`Roster`] (who is in it) with its [`Ring`] (its events), and
//! the one place messages enter them: [`Rooms::publish`], the store's feed.
//!
//! A room exists from its first join while it has users or messages (`general` always);
//! [`Rooms::enter`] creates what a stream's list names, refusing past `--max-rooms` (instances
//! sharing a Redis check the limit there, and their mirror creates rooms with
//! [`Rooms::get_or_create_decided`]), and [`Rooms::remove_if_unused`] lets a room go when its last user left and it never had a
//! message.
//!
//! **One order for several rooms.** `seq` is one sequence over every room, and a stream that
//! follows several rooms must write their messages in `seq` order: a client that reconnects
//! with `Last-Event-ID` N is owed everything after N, so nothing older than what it was last
//! sent may still be on its way. A committed batch can hold messages of several rooms, put on
//! their rings one room after another. So the rooms keep the *cut*: the newest `seq` whose
//! batch is on every ring it belongs to. Publishing a batch moves the cut past it only once
//! the batch is on all its rings; a stream opening reads the cut after subscribing to its
//! rings, takes history up to it and everything after it live; a stream following several
//! rooms takes from its rings only what is at or below the cut, then sorts by `seq`.

use super::{HubConfig, Ring, Roster, lock, ring::Frame};
use crate::{
    metrics::Metrics,
    store::{MessageStore, StoreError},
};
use app::protocol::{ChatMessage, RoomName, RoomSummary};
use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

/// The most frames a ring of a room other than `general` holds for its slowest stream.
const ROOM_BUFFER: usize = 512;

/// A stream's list would create more rooms than `--max-rooms` allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyRooms;

struct RoomsInner {
    rooms: Mutex<HashMap<RoomName, Roster>>,
    max_rooms: usize,
    /// The cut (see the module comment), taken while a batch is published.
    cut: Mutex<u64>,
    /// The cut, readable without the lock by streams draining several rings.
    cut_now: AtomicU64,
    stream_buffer: usize,
    retention: u64,
    large_room_threshold: usize,
    metrics: Arc<Metrics>,
}

/// A handle to the rooms. Cloning is shallow: the store's feed holds one, the hub another.
#[derive(Clone)]
pub struct Rooms {
    inner: Arc<RoomsInner>,
}

impl Rooms {
    /// The rooms of a server with no messages yet: `general`, empty.
    pub fn new(config: &HubConfig, metrics: Arc<Metrics>) -> Self {
        let rooms = Self {
            inner: Arc::new(RoomsInner {
                rooms: Mutex::default(),
                max_rooms: config.max_rooms.max(1),
                cut: Mutex::new(0),
                cut_now: AtomicU64::new(0),
                stream_buffer: config.stream_buffer,
                retention: config.retention,
                large_room_threshold: config.large_room_threshold,
                metrics,
            }),
        };
        rooms.room_or_new(&mut lock(&rooms.inner.rooms), &RoomName::general());
        rooms
    }

    fn room_or_new(&self, rooms: &mut HashMap<RoomName, Roster>, name: &RoomName) -> Roster {
        rooms
            .entry(name.clone())
            .or_insert_with(|| {
                // `general` takes the configured buffer; the other rooms a smaller one, since
                // each ring's buffer is allocated whole and a thousand rooms may exist.
                let buffer = if name.is_general() {
                    self.inner.stream_buffer
                } else {
                    self.inner.stream_buffer.min(ROOM_BUFFER)
                };
                let ring = Ring::new(name.clone(), buffer, self.inner.retention);
                Roster::new(ring, self.inner.large_room_threshold)
            })
            .clone()
    }

    /// Creates the rooms the store has messages of and fills their recent caches; the cut
    /// starts at the newest message.
    pub async fn preload(&self, store: &dyn MessageStore) -> Result<(), StoreError> {
        let heads = store.rooms().await?;
        let mut newest = 0;
        for head in &heads {
            let roster = self.room_or_new(&mut lock(&self.inner.rooms), &head.room);
            roster.ring().preload(store).await?;
            newest = newest.max(head.last_seq);
        }
        let general = self.general();
        if !heads.iter().any(|head| head.room.is_general()) {
            general.ring().preload(store).await?;
        }
        let mut cut = lock(&self.inner.cut);
        *cut = (*cut).max(newest);
        self.inner.cut_now.store(*cut, Ordering::Release);
        Ok(())
    }

    /// `general`, which always exists.
    pub fn general(&self) -> Roster {
        self.room_or_new(&mut lock(&self.inner.rooms), &RoomName::general())
    }

    /// The room of this name, if it exists.
    pub fn get(&self, name: &RoomName) -> Option<Roster> {
        lock(&self.inner.rooms).get(name).cloned()
    }

    /// How many rooms exist (never none: `general` always does).
    pub fn count(&self) -> usize {
        lock(&self.inner.rooms).len()
    }

    /// Runs `enter` on the rosters of `names`, creating the rooms that do not exist yet, or
    /// refuses when that would make more than `--max-rooms`. Under the rooms' lock, so a room
    /// cannot be let go between being found and being entered.
    pub(crate) fn enter<T>(
        &self,
        names: &[RoomName],
        enter: impl FnOnce(Vec<Roster>) -> T,
    ) -> Result<T, TooManyRooms> {
        let mut rooms = lock(&self.inner.rooms);
        let missing = names.iter().filter(|name| !rooms.contains_key(*name)).count();
        if rooms.len() + missing > self.inner.max_rooms {
            return Err(TooManyRooms);
        }
        let rosters = names.iter().map(|name| self.room_or_new(&mut rooms, name)).collect();
        Ok(enter(rosters))
    }

    /// The room of this name, created if it does not exist, whatever `--max-rooms` says. For
    /// the shared presence's mirror only ([`super::SharedPresence`]): it applies joins the
    /// instances sharing a Redis already decided together, having checked the limit across
    /// all of them there, while this instance's own count of rooms may lag behind theirs (a
    /// leave not applied yet). Checking again here would refuse a join the other instances
    /// already announce.
    pub(crate) fn get_or_create_decided(&self, name: &RoomName) -> Roster {
        self.room_or_new(&mut lock(&self.inner.rooms), name)
    }

    /// Lets a room go once nobody is in it and it never had a message (a stream that follows
    /// it keeps its user in it).
    pub(crate) fn remove_if_unused(&self, name: &RoomName) {
        if name.is_general() {
            return;
        }
        let mut rooms = lock(&self.inner.rooms);
        let unused = rooms.get(name).is_some_and(|roster| roster.len() == 0 && roster.ring().head() == 0);
        if unused {
            rooms.remove(name);
        }
    }

    /// The store's feed: records each room's messages of a committed batch in its ring, runs
    /// `before_waking` (see [`crate::store::MessageFeed`]), hands them to the rooms' streams,
    /// then moves the cut past the batch.
    pub fn publish(&self, messages: &[ChatMessage], before_waking: &mut dyn FnMut()) {
        let Some(last) = messages.last() else { return before_waking() };
        let mut cut = lock(&self.inner.cut);
        if let Some(first) = messages.first()
            && first.seq > cut.saturating_add(1)
        {
            // Messages were committed that this feed never delivered (a shared store trimmed
            // its feed before this instance read it). Every room's memory may lack some: from
            // here, replays from before them are read from the store.
            tracing::warn!(from = *cut + 1, to = first.seq - 1, "the feed skipped messages");
            for roster in lock(&self.inner.rooms).values() {
                roster.ring().forget_through(first.seq - 1);
            }
        }
        // In order of first appearance (the order does not matter: the cut moves only once
        // all are on their rings). A batch of a busy server holds hundreds of rooms.
        let mut by_room: Vec<(&RoomName, Vec<&ChatMessage>)> = Vec::new();
        let mut index: HashMap<&RoomName, usize> = HashMap::new();
        for message in messages.iter().filter(|message| message.seq > *cut) {
            match index.get(&message.room) {
                Some(&at) => by_room[at].1.push(message),
                None => {
                    index.insert(&message.room, by_room.len());
                    by_room.push((&message.room, vec![message]));
                }
            }
        }
        let frames: Vec<(Ring, Frame)> = by_room
            .iter()
            .filter_map(|(name, list)| {
                // A message is durable before it is fed: its room exists, whatever the limit.
                let ring = self.room_or_new(&mut lock(&self.inner.rooms), name).ring().clone();
                let frame = ring.record(list)?;
                Some((ring, frame))
            })
            .collect();
        let fanned: usize = frames.iter().map(|(_, frame)| frame_len(frame)).sum();
        self.inner.metrics.messages_fanned_out(fanned as u64);
        before_waking();
        for (ring, frame) in frames {
            ring.send(frame);
        }
        *cut = (*cut).max(last.seq);
        self.inner.cut_now.store(*cut, Ordering::Release);
    }

    /// The cut, for a stream that has just subscribed to its rings: every message up to it is
    /// in the rooms' history, every later one reaches the stream live.
    pub(crate) fn cut(&self) -> u64 {
        *lock(&self.inner.cut)
    }

    /// The cut as last published, without the lock.
    pub(crate) fn cut_now(&self) -> u64 {
        self.inner.cut_now.load(Ordering::Acquire)
    }

    /// Every room, most recent message first, rooms without messages last by name.
    pub fn summaries(&self) -> Vec<RoomSummary> {
        let rosters: Vec<Roster> = lock(&self.inner.rooms).values().cloned().collect();
        let mut summaries: Vec<RoomSummary> = rosters
            .iter()
            .map(|roster| {
                let head = roster.ring().head();
                RoomSummary {
                    room: roster.ring().room().clone(),
                    users: roster.len() as u64,
                    last_seq: (head > 0).then_some(head),
                }
            })
            .collect();
        summaries.sort_by(|a, b| b.last_seq.cmp(&a.last_seq).then_with(|| a.room.cmp(&b.room)));
        summaries
    }

    /// Every room's roster, for the periodic work done on each (large rooms' summaries).
    pub(crate) fn all(&self) -> Vec<Roster> {
        lock(&self.inner.rooms).values().cloned().collect()
    }
}

fn frame_len(frame: &Frame) -> usize {
    match frame {
        Frame::Messages { seqs, .. } => seqs.len(),
        Frame::Presence { .. } | Frame::Summary { .. } => 0,
    }
}
