//! The browser side of the chat (feature `hydrate` only): who this browser is
//! ([`identity`]), the `EventSource` connection ([`connection`]), how its events change the
//! page ([`state`]) and posting messages ([`post`]). [`Session`] ties them to the page: the page
//! calls it after hydration and from its forms, and it never runs on the server.

mod connection;
mod identity;
pub(crate) mod post;
mod state;

use crate::{
    components::{ChatSignals, ConnectionState, Roster, Timeline, capitalised},
    protocol::{User, UserName},
};
use connection::Connection;
use leptos::prelude::*;

/// The chat page's browser session: its signals and, once joined, its one open connection.
/// Copying it is shallow (both fields are handles), so the page's callbacks each hold one.
#[derive(Clone, Copy)]
pub struct Session {
    chat: ChatSignals,
    /// `EventSource` and its closures are not `Send`: they live in the page's local arena and are
    /// dropped (which closes the stream) on a new join or when the page is cleaned up.
    connection: StoredValue<Option<Connection>, LocalStorage>,
}

impl Session {
    pub fn new(chat: ChatSignals) -> Self {
        Self { chat, connection: StoredValue::new_local(None) }
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
        chat.roster.set(Roster::default());
        chat.timeline.set(Timeline::default());
        chat.status.set(ConnectionState::Connecting);
        chat.me.set(Some(me.clone()));
        // Replacing the previous connection drops it, which closes its stream.
        self.connection.set_value(Some(Connection::open(chat, me)));
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
pub fn mark_hydrated() {
    let body = web_sys::window().and_then(|window| window.document()).and_then(|doc| doc.body());
    if let Some(body) = body {
        let _ = body.set_attribute("data-hydrated", "true");
    }
}

/// A sentence of ours followed by the server's plain-text reason, when it gave one.
fn with_reason(sentence: &str, reason: &str) -> String {
    let reason = reason.trim();
    if reason.is_empty() { sentence.to_owned() } else { format!("{sentence} ({reason})") }
}
