//! [`ChatSignals`]: everything the chat page shows, as signals. The browser's connection
//! (`client/`) writes them and the components read them. They exist in the server build
//! too, where nobody has joined yet, so the server renders exactly the join form the browser
//! then hydrates.

use super::{ConnectionState, Followed, NotifyRooms, Permission, RoomState, tabs::Theme};
use crate::protocol::{RoomName, User};
use leptos::prelude::*;
use std::collections::HashMap;

/// Where the keyboard focus goes once what the viewer just did has changed the page: the
/// element they used is gone (the join form after joining, the account menu after leaving), and
/// a focus left on `body` makes a keyboard or screen reader user start over from the top.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FocusNext {
    /// After joining: the composer, to say something.
    Composer,
    /// After leaving: the join form's name field, to come back.
    JoinName,
}

/// Everything the chat page shows, as signals. Copying it is shallow: every field is a handle
/// to the same signal, so the connection and the views share one state.
#[derive(Debug, Clone, Copy)]
pub struct ChatSignals {
    /// Who this browser joined as; `None` shows the join form.
    pub me: RwSignal<Option<User>>,
    pub status: RwSignal<ConnectionState>,
    /// Why the stream was refused for good (a 409): shown with a way to start over.
    pub connection_error: RwSignal<Option<String>>,
    /// Why joining failed: the name parser's reason, or the server's 400.
    pub join_error: RwSignal<Option<String>>,
    /// News shown above the join form ("You left the chat.").
    pub join_info: RwSignal<Option<String>>,
    /// The room shown, as its address names it. The page moves the address when the browser
    /// side shows another room (a room refused, a room left).
    pub current: RwSignal<RoomName>,
    /// The rooms this browser follows, with their unread counts: the sidebar.
    pub followed: RwSignal<Followed>,
    /// Why a room could not be followed (51 rooms, the server's 409): shown in the sidebar.
    pub room_error: RwSignal<Option<String>>,
    /// Each followed room's own state, made on first use and let go when the room is left.
    rooms: StoredValue<HashMap<RoomName, RoomState>>,
    /// Messages by others that arrived while the tab was hidden: shown in the tab's title.
    pub unread: RwSignal<u32>,
    /// Taken (and cleared) by the element it names when that element appears.
    pub focus_next: RwSignal<Option<FocusNext>>,
    /// Whether Enter sends (a keyboard) or adds a line (a touch screen, whose on-screen
    /// keyboard shows "send" on its Enter key but has no Shift+Enter for a new line: the Send
    /// button sends there). True until the browser says it is a touch screen.
    pub enter_sends: RwSignal<bool>,
    /// A stream just opened and its history is arriving: the message log is `aria-busy`
    /// meanwhile, so a screen reader does not read a burst of old messages out one by one.
    pub history_arriving: RwSignal<bool>,
    /// Whether the browser may show notifications.
    pub permission: RwSignal<Permission>,
    /// The rooms that notify of every message, not only of mentions.
    pub notify_rooms: RwSignal<NotifyRooms>,
    /// A message to bring into view in the room shown (a notification was clicked): its `seq`.
    pub show_message: RwSignal<Option<u64>>,
    /// The colour scheme chosen.
    pub theme: RwSignal<Theme>,
}

impl ChatSignals {
    /// A page nobody has joined yet, showing `current`: what the server renders and the
    /// browser hydrates.
    pub fn new(current: RoomName) -> Self {
        Self {
            me: RwSignal::new(None),
            status: RwSignal::new(ConnectionState::default()),
            connection_error: RwSignal::new(None),
            join_error: RwSignal::new(None),
            join_info: RwSignal::new(None),
            current: RwSignal::new(current),
            followed: RwSignal::new(Followed::default()),
            room_error: RwSignal::new(None),
            rooms: StoredValue::new(HashMap::new()),
            unread: RwSignal::new(0),
            focus_next: RwSignal::new(None),
            enter_sends: RwSignal::new(true),
            history_arriving: RwSignal::new(false),
            permission: RwSignal::new(Permission::default()),
            notify_rooms: RwSignal::new(NotifyRooms::default()),
            show_message: RwSignal::new(None),
            theme: RwSignal::new(Theme::default()),
        }
    }

    /// The state of room `name`, made empty on first use.
    pub fn room(&self, name: &RoomName) -> RoomState {
        self.rooms
            .try_update_value(|rooms| rooms.entry(name.clone()).or_default().clone())
            .unwrap_or_default()
    }

    /// Lets go of a room's state (it was left): its messages, people and draft.
    pub fn forget_room(&self, name: &RoomName) {
        let _ = self.rooms.try_update_value(|rooms| rooms.remove(name));
    }

    /// Lets go of every room's state, for a new start (a new join, leaving the chat).
    pub fn forget_rooms(&self) {
        let _ = self.rooms.try_update_value(HashMap::clear);
    }

    /// Takes the focus meant for `target` with `focus`, which focuses the element and says
    /// whether it was there to focus (it reads the element's `NodeRef`, so the effect runs
    /// again once the element is mounted).
    pub fn take_focus(&self, target: FocusNext, focus: impl Fn() -> bool + 'static) {
        let focus_next = self.focus_next;
        Effect::new(move |_| {
            if focus_next.get_untracked() == Some(target) && focus() {
                focus_next.set(None);
            }
        });
    }

    /// The chat page's signals, as provided to it (see `crate::model::actions`).
    ///
    /// # Panics
    ///
    /// Outside the chat page, where nobody provided them: a wiring mistake, not a user's.
    pub fn expect() -> Self {
        expect_context()
    }
}

impl Default for ChatSignals {
    fn default() -> Self {
        Self::new(RoomName::general())
    }
}
