//! What the page can ask for: join, rename, leave, start over, open or leave a room, send a
//! message, page the user list, read a room's history back, list the server's rooms, ask for
//! notifications and choose which rooms notify of everything, choose a theme. The components call these and never know who answers; the browser's session
//! (`client/`) provides the real ones, and the server build provides [`ChatActions::inert`],
//! since nothing is ever asked during server rendering (the server renders the join form, and
//! its submit handler only runs once the page is hydrated). That is why no component needs a
//! `cfg(feature = "hydrate")` branch to ask for anything, and why neither side imports the other.
//!
//! They travel as Leptos context: `lib.rs` provides one [`ChatActions`] for the chat page, and
//! each component takes it with [`ChatActions::expect`].

use super::{SendFailure, tabs::Theme};
use crate::protocol::{ChatMessage, MessageText, MessagesPage, RoomList, RoomName, UserName, UsersPage};
use leptos::prelude::*;
use std::{future::Future, pin::Pin};

/// An answer that comes later: a request's outcome, awaited by the component that asked (on
/// the browser's one thread, so it need not be `Send`).
pub type Reply<T> = Pin<Box<dyn Future<Output = T>>>;

/// An action that asks the server for something: `In` says what, and the reply is the answer
/// or why it could not be had, as a sentence.
pub type Request<In, T> = Callback<In, Reply<Result<T, String>>>;

/// What a send comes to: the message as stored (when the answer could be read), or why it was
/// not sent.
pub type Sent = Result<Option<ChatMessage>, SendFailure>;

/// The page's actions. Copying it is shallow: every field is a handle to one stored callback.
#[derive(Debug, Clone, Copy)]
pub struct ChatActions {
    /// Joins as this name with this browser's id, from a clean slate.
    pub join: Callback<UserName>,
    /// Speaks under a new name from now on (a new id; the conversation stays).
    pub rename: Callback<UserName>,
    /// Leaves the room and forgets this browser's name and id.
    pub leave: Callback<()>,
    /// After a refusal: forget name and id and show the join form again.
    pub start_over: Callback<()>,
    /// The address names this room: follow it if need be (or say why not, in
    /// `ChatSignals::room_error`) and show it. The room shown afterwards is
    /// `ChatSignals::current`, which the page makes the address again.
    pub open_room: Callback<RoomName>,
    /// Stops following a room (the stream is opened again without it).
    pub leave_room: Callback<RoomName>,
    /// Posts a message in a room: `Ok` carries it as stored (when the answer could be read),
    /// `Err` says why it was not sent.
    pub send: Callback<(RoomName, MessageText), Reply<Sent>>,
    /// A page of the whole user list of a large room, after this cursor (from the start when
    /// `None`), or why it could not be had.
    pub page_users: Request<(RoomName, Option<String>), UsersPage>,
    /// A page of a room's history before this `seq` (the newest when `None`), or why it could
    /// not be had.
    pub messages: Request<(RoomName, Option<u64>), MessagesPage>,
    /// Every room of the server, or why the list could not be had.
    pub list_rooms: Request<(), RoomList>,
    /// Asks the browser's permission to show notifications (from a button: never on load).
    pub ask_permission: Callback<()>,
    /// Turns "notify of every message" on or off for a room, in every tab.
    pub notify_all: Callback<(RoomName, bool)>,
    /// Takes a colour scheme, in every tab.
    pub set_theme: Callback<Theme>,
}

impl ChatActions {
    /// Actions that do nothing, for the server build: it renders the page but never runs it.
    /// Should one be called anyway, a request fails with a sentence rather than hanging.
    pub fn inert() -> Self {
        Self {
            join: Callback::new(|_| {}),
            rename: Callback::new(|_| {}),
            leave: Callback::new(|()| {}),
            start_over: Callback::new(|()| {}),
            send: Callback::new(|_| {
                Box::pin(async {
                    Err(SendFailure { sentence: NOT_IN_A_BROWSER.to_owned(), retry_after_secs: None })
                }) as Reply<_>
            }),
            open_room: Callback::new(|_| {}),
            leave_room: Callback::new(|_| {}),
            page_users: Callback::new(|_| Box::pin(async { Err(NOT_IN_A_BROWSER.to_owned()) }) as Reply<_>),
            messages: Callback::new(|_| Box::pin(async { Err(NOT_IN_A_BROWSER.to_owned()) }) as Reply<_>),
            list_rooms: Callback::new(|()| Box::pin(async { Err(NOT_IN_A_BROWSER.to_owned()) }) as Reply<_>),
            ask_permission: Callback::new(|()| {}),
            notify_all: Callback::new(|_| {}),
            set_theme: Callback::new(|_| {}),
        }
    }

    /// The chat page's actions, as provided to it.
    ///
    /// # Panics
    ///
    /// Outside the chat page, where nobody provided them: a wiring mistake, not a user's.
    pub fn expect() -> Self {
        expect_context()
    }
}

/// What an inert action answers.
const NOT_IN_A_BROWSER: &str = "The chat only works in a browser.";
