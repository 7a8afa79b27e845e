//! [`ChatSignals`]: everything the chat page shows, as signals. The browser's connection
//! (`client/`) writes them and the components read them. They exist in the server build
//! too, where nobody has joined yet, so the server renders exactly the join form the browser
//! then hydrates.

use super::{ConnectionState, Roster, Timeline};
use crate::protocol::User;
use leptos::prelude::*;

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
    pub roster: RwSignal<Roster>,
    pub timeline: RwSignal<Timeline>,
    /// Messages by others that arrived while the tab was hidden: shown in the tab's title.
    pub unread: RwSignal<u32>,
}

impl ChatSignals {
    /// A page nobody has joined yet: what the server renders and the browser hydrates.
    pub fn new() -> Self {
        Self {
            me: RwSignal::new(None),
            status: RwSignal::new(ConnectionState::default()),
            connection_error: RwSignal::new(None),
            join_error: RwSignal::new(None),
            join_info: RwSignal::new(None),
            roster: RwSignal::new(Roster::default()),
            timeline: RwSignal::new(Timeline::default()),
            unread: RwSignal::new(0),
        }
    }
}

impl ChatSignals {
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
        Self::new()
    }
}
