//! One followed room's state: its conversation, its people, the draft typed into it and how
//! far back its history has been read ([`RoomState`]). Each room has its own signals, so an
//! event in a room that is not shown re-renders nothing, and switching rooms loses nothing:
//! the composer's draft and the scroll-back position stay with the room.
//!
//! The signals are reference-counted (`ArcRwSignal`), not owned by the view that happens to
//! show the room: a room outlives every view of it, until it is left.

use super::{Roster, Timeline};
use leptos::prelude::*;

/// Where reading back through a room's history stands (`GET /messages`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrollBack {
    /// Whether older messages may be retained: true until a page says otherwise.
    pub more: bool,
    /// Whether a page is on its way, so one scroll never asks twice.
    pub loading: bool,
    /// Why the last page could not be had.
    pub error: Option<String>,
}

impl Default for ScrollBack {
    fn default() -> Self {
        Self { more: true, loading: false, error: None }
    }
}

/// One room's signals. Cloning it is shallow: every field is a handle to the same signal.
#[derive(Debug, Clone)]
pub struct RoomState {
    pub timeline: ArcRwSignal<Timeline>,
    pub roster: ArcRwSignal<Roster>,
    /// What was typed into the composer and not sent yet.
    pub draft: ArcRwSignal<String>,
    pub scroll_back: ArcRwSignal<ScrollBack>,
    /// The newest `seq` the room showed when the viewer last left it for another room: what
    /// came after it, by others, is new when they come back ("New since you were last here").
    pub seen_through: ArcRwSignal<Option<u64>>,
    /// Whether the browser's stream follows the room yet: set when its `all-users` arrives.
    /// Until then the server refuses a post there (403 `not in room`), so the composer waits
    /// rather than offer a Send that can only fail: a room just joined is followed only once
    /// the stream that names it has opened.
    pub in_room: ArcRwSignal<bool>,
}

impl Default for RoomState {
    fn default() -> Self {
        Self {
            timeline: ArcRwSignal::new(Timeline::default()),
            roster: ArcRwSignal::new(Roster::default()),
            draft: ArcRwSignal::new(String::new()),
            scroll_back: ArcRwSignal::new(ScrollBack::default()),
            seen_through: ArcRwSignal::new(None),
            in_room: ArcRwSignal::new(false),
        }
    }
}
