//! The browser side of the chat (feature `hydrate` only): who this browser is
//! ([`identity`]), the `EventSource` connection ([`connection`]), how its events change the
//! page ([`state`]), the tab's title ([`tab`]), the clock and locale of message times
//! ([`time`]), the `ResizeObserver` behind the page's watch on element sizes ([`resize`]), and
//! the plain requests: posting messages ([`post`]) and paging the user list
//! ([`users`]), both over [`http`]. [`Session`] ties them to the page; [`start`] turns it into
//! the page's [`ChatActions`], which the components call without knowing this module. It never
//! runs on the server.
//!
//! ## Changing one's name
//!
//! The server binds a name to an id for as long as the id is held (an open stream, or the leave
//! grace period after the last one), and a browser session holds one id at a time. So a new
//! name cannot be had under the same id, nor under a new id at once: [`Session::rename`] closes
//! the stream, makes a new id (`crypto.randomUUID()`), and joins with it as soon as the server
//! has let the old one go, asking again on every 409 until then ([`connection`]'s patient
//! start). Others see the old name leave and the new one join; this page keeps its
//! conversation and continues after the last message it had.

mod connection;
mod http;
mod identity;
mod post;
mod resize;
mod state;
mod tab;
mod time;
mod users;

use crate::{
    model::{ChatActions, ChatSignals, ConnectionState, Notice, Reply, Roster, Timeline, capitalised},
    protocol::{User, UserName},
};
use connection::{Connection, Start};
use leptos::prelude::*;

pub use resize::resize_watch;
pub use time::clock;

/// Starts the browser side of the chat page and returns the page's actions. Called once, while
/// the page is built: its effect runs after hydration (effects never run on the server, and the
/// first run comes after the server's DOM has been adopted); it marks the page interactive,
/// keeps the tab's title, and rejoins a stored name (a reload is the same user). The page's
/// cleanup closes the stream.
pub fn start(chat: ChatSignals) -> ChatActions {
    let session = Session::new(chat);
    Effect::new(move |_| {
        untrack(|| {
            mark_hydrated();
            tab::follow_unread(chat);
            session.resume();
        })
    });
    on_cleanup(move || session.close());
    ChatActions {
        join: Callback::new(move |name| session.join(name)),
        rename: Callback::new(move |name| session.rename(name)),
        leave: Callback::new(move |()| session.leave()),
        start_over: Callback::new(move |()| session.start_over()),
        send: Callback::new(|text| Box::pin(async move { post::send_message(&text).await }) as Reply<_>),
        page_users: Callback::new(|after: Option<String>| {
            Box::pin(async move { users::page(after.as_deref()).await }) as Reply<_>
        }),
    }
}

/// The chat page's browser session: its signals and, once joined, its one open connection.
/// Copying it is shallow (every field is a handle), so the page's callbacks each hold one.
#[derive(Clone, Copy)]
pub struct Session {
    chat: ChatSignals,
    /// `EventSource` and its closures are not `Send`: they live in the page's local arena and are
    /// dropped (which closes the stream) on a new join or when the page is cleaned up.
    connection: StoredValue<Option<Connection>, LocalStorage>,
    /// Set once this page has let go of an id: the server may hold it for a few seconds more,
    /// and until then it refuses this browser another one (409), so the next join waits.
    released_an_id: StoredValue<bool>,
}

impl Session {
    pub fn new(chat: ChatSignals) -> Self {
        Self { chat, connection: StoredValue::new_local(None), released_an_id: StoredValue::new(false) }
    }

    /// Joins again after a page load: with a name submitted before the page was interactive
    /// (the form then loaded `/?name=…`), else with the name this browser stored, so a reload
    /// is the same user.
    pub fn resume(self) {
        if let Some(raw) = identity::take_name_from_url() {
            match UserName::parse(&raw) {
                Ok(name) => self.join(name),
                Err(reason) => self.chat.join_error.set(Some(capitalised(&reason.to_string()))),
            }
            return;
        }
        if let Some(name) = identity::stored_name() {
            self.join(name);
        }
    }

    /// Joins as `name` with this browser's id, from a clean slate, and opens the stream.
    pub fn join(self, name: UserName) {
        let me = User { id: identity::user_id(), name };
        identity::remember_name(&me.name);
        let chat = self.chat;
        chat.connection_error.set(None);
        chat.join_error.set(None);
        chat.join_info.set(None);
        chat.roster.set(Roster::default());
        chat.timeline.set(Timeline::default());
        chat.status.set(ConnectionState::Connecting);
        chat.me.set(Some(me.clone()));
        let start = Start { last_seq: None, patient: self.released_an_id.get_value() };
        // Replacing the previous connection drops it, which closes its stream.
        self.connection.set_value(Some(Connection::open(chat, me, start)));
    }

    /// Speaks under a new name from now on: a new id, joined once the old one is let go (see the
    /// module's documentation). The conversation stays, and continues where it was.
    pub fn rename(self, name: UserName) {
        let last_seq =
            self.connection.with_value(|connection| connection.as_ref().and_then(Connection::last_seq));
        self.close();
        identity::forget();
        let me = User { id: identity::user_id(), name };
        identity::remember_name(&me.name);
        let chat = self.chat;
        chat.connection_error.set(None);
        chat.status.set(ConnectionState::Connecting);
        chat.me.set(Some(me.clone()));
        chat.timeline.update(|timeline| timeline.add_notice(Notice::Renamed(me.name.clone())));
        self.released_an_id.set_value(true);
        self.connection.set_value(Some(Connection::open(chat, me, Start { last_seq, patient: true })));
    }

    /// Leaves the room: closes the stream (the server announces the leave after its grace
    /// period) and forgets name and id, so a reload shows the join form and the next join is
    /// a new user.
    pub fn leave(self) {
        self.close();
        identity::forget();
        self.released_an_id.set_value(true);
        let chat = self.chat;
        chat.me.set(None);
        chat.connection_error.set(None);
        chat.roster.set(Roster::default());
        chat.timeline.set(Timeline::default());
        chat.unread.set(0);
        chat.join_info.set(Some("You left the chat. Join again whenever you like.".to_owned()));
    }

    /// After a refusal: forget this browser's name and id (the id may be what is held
    /// elsewhere) and show the join form again.
    pub fn start_over(self) {
        self.close();
        identity::forget();
        self.chat.connection_error.set(None);
        self.chat.me.set(None);
    }

    /// Closes the stream, if any. Safe to call more than once and during cleanup.
    pub fn close(self) {
        let _closed = self.connection.try_update_value(Option::take);
    }
}

/// Marks `<body data-hydrated="true">` once the page is interactive: before that, a click does
/// nothing our code sees, so tools that drive the page (the end-to-end tests) wait for it.
fn mark_hydrated() {
    let body = web_sys::window().and_then(|window| window.document()).and_then(|doc| doc.body());
    if let Some(body) = body {
        let _ = body.set_attribute("data-hydrated", "true");
    }
}

/// A sentence of ours followed by the server's plain-text reason, when it gave one.
fn with_reason(sentence: &str, reason: &str) -> String {
    let reason = reason.trim();
    if reason.is_empty() { sentence.to_owned() } else { format!("{sentence} {}", capitalised(reason)) }
}
