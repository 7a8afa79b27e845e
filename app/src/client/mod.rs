//! The browser side of the chat (feature `hydrate` only): who this browser is
//! ([`identity`]), the `EventSource` connection ([`connection`]), how its events change the
//! page ([`state`]), the tab's title ([`tab`]), the clock and locale of message times
//! ([`time`]), the `ResizeObserver` behind the page's watch on element sizes ([`resize`]), and
//! the plain requests: posting messages ([`post`]), paging the user list ([`users`]) and the
//! rooms' requests and stored list ([`rooms`]), over [`http`] and [`storage`]. [`Session`] ties them to the page; [`start`] turns it into
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
//!
//! ## Rooms
//!
//! The page follows a set of rooms ([`Followed`], stored by [`rooms`]) with one stream. When
//! the set changes (a room joined or left, the address naming a new room, a room the server
//! had no place for), [`Session::rooms_changed`] opens a stream for the new set, resuming from
//! the last `seq`, and then drops the old one. A resumed stream brings no history of a room it
//! did not follow before, so a room followed meanwhile gets its newest messages from
//! `GET /messages`.

mod connection;
mod http;
mod identity;
mod post;
mod resize;
mod rooms;
mod state;
mod storage;
mod tab;
mod time;
mod users;

use crate::{
    model::{ChatActions, ChatSignals, ConnectionState, Followed, Notice, Reply, capitalised},
    protocol::{RoomName, User, UserName},
};
use connection::{Connection, Start};
use leptos::prelude::*;

pub use resize::resize_watch;
pub use time::clock;

/// Starts the browser side of the chat page and returns the page's actions. Called once, while
/// the page is built. It follows the rooms stored at the last visit and the one the address
/// names at once, before the first stream opens. Its effect runs after hydration (effects never
/// run on the server, and the first run comes after the server's DOM has been adopted); it
/// marks the page interactive, keeps the tab's title, and rejoins a stored name (a reload is the
/// same user). Another effect follows changes of the rooms followed. The page's cleanup closes
/// the stream.
pub fn start(chat: ChatSignals) -> ChatActions {
    let session = Session::new(chat);
    // Nothing shows the rooms before joining, so this changes nothing the server rendered.
    chat.followed.set(rooms::stored());
    session.open_room(chat.current.get_untracked());
    chat.followed.with_untracked(rooms::remember);
    let names = Memo::new(move |_| chat.followed.with(Followed::names));
    Effect::new(move |previous: Option<Vec<RoomName>>| {
        let now = names.get();
        if let Some(previous) = previous
            && previous != now
        {
            untrack(|| session.rooms_changed(&previous, &now));
        }
        now
    });
    Effect::new(move |_| {
        untrack(|| {
            mark_hydrated();
            chat.enter_sends.set(!touch_screen());
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
        open_room: Callback::new(move |room| session.open_room(room)),
        leave_room: Callback::new(move |room| session.leave_room(room)),
        send: Callback::new(|(room, text): (RoomName, _)| {
            Box::pin(async move { post::send_message(&room, &text).await }) as Reply<_>
        }),
        page_users: Callback::new(|(room, after): (RoomName, Option<String>)| {
            Box::pin(async move { users::page(&room, after.as_deref()).await }) as Reply<_>
        }),
        messages: Callback::new(|(room, before): (RoomName, Option<u64>)| {
            Box::pin(async move { rooms::messages(&room, before).await }) as Reply<_>
        }),
        list_rooms: Callback::new(|()| Box::pin(rooms::list()) as Reply<_>),
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
        chat.forget_rooms();
        chat.followed.update(Followed::reset_news);
        chat.status.set(ConnectionState::Connecting);
        chat.me.set(Some(me.clone()));
        let rooms = chat.followed.with_untracked(Followed::names);
        let start =
            Start { last_seq: None, patient: self.released_an_id.get_value(), rooms, added: Vec::new() };
        // Replacing the previous connection drops it, which closes its stream.
        self.connection.set_value(Some(Connection::open(chat, me, start)));
        // A fresh stream opens with each room's recent history, which is not news: the news
        // starts after the newest message the server has now.
        leptos::task::spawn_local(async move {
            if let Ok(list) = rooms::list().await {
                let newest = list.rooms.iter().filter_map(|room| room.last_seq).max().unwrap_or(0);
                let _ = chat.followed.try_update(|followed| followed.news_after(newest));
            }
        });
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
        let current = chat.room(&chat.current.get_untracked());
        current.timeline.update(|timeline| timeline.add_notice(Notice::Renamed(me.name.clone())));
        self.released_an_id.set_value(true);
        if let Some(seq) = last_seq {
            chat.followed.update(|followed| followed.news_after(seq));
        }
        let rooms = chat.followed.with_untracked(Followed::names);
        let start = Start { last_seq, patient: true, rooms, added: Vec::new() };
        self.connection.set_value(Some(Connection::open(chat, me, start)));
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
        chat.forget_rooms();
        chat.followed.update(Followed::reset_news);
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

    /// The address names `room`: follow it unless that would be one room too many (then say
    /// so, and show a room already followed), and show it.
    pub fn open_room(self, room: RoomName) {
        let chat = self.chat;
        let mut refused = None;
        chat.followed.maybe_update(|followed| match followed.follow(room.clone()) {
            Ok(new) => new,
            Err(sentence) => {
                refused = Some(sentence);
                false
            }
        });
        if let Some(sentence) = refused {
            chat.room_error.set(Some(sentence.to_owned()));
            if !chat.followed.with_untracked(|followed| followed.contains(&chat.current.get_untracked())) {
                chat.current.set(chat.followed.with_untracked(Followed::first));
            }
            return;
        }
        if chat.current.get_untracked() != room {
            chat.room_error.set(None);
            chat.current.set(room.clone());
        }
        chat.followed.maybe_update(|followed| followed.mark_read(&room));
    }

    /// Stops following `room`; if it was shown, the first room followed is shown instead.
    pub fn leave_room(self, room: RoomName) {
        let chat = self.chat;
        let left = chat.followed.try_maybe_update(|followed| {
            let left = followed.unfollow(&room);
            (left, left)
        });
        if left == Some(true) && chat.current.get_untracked() == room {
            chat.current.set(chat.followed.with_untracked(Followed::first));
        }
    }

    /// The rooms followed went from `previous` to `now`: remember them, let go of the rooms
    /// left, and, once joined, follow the new set with a new stream that resumes where the old
    /// one was (see the module's documentation).
    fn rooms_changed(self, previous: &[RoomName], now: &[RoomName]) {
        let chat = self.chat;
        chat.followed.with_untracked(rooms::remember);
        for room in previous.iter().filter(|room| !now.contains(room)) {
            chat.forget_room(room);
        }
        let Some(me) = chat.me.get_untracked() else { return };
        let Some(last_seq) =
            self.connection.with_value(|connection| connection.as_ref().map(Connection::last_seq))
        else {
            return;
        };
        let added: Vec<RoomName> = now.iter().filter(|room| !previous.contains(room)).cloned().collect();
        if let Some(seq) = last_seq {
            // Whatever the new stream brings after this is news.
            chat.followed.update(|followed| followed.news_after(seq));
        }
        let start = Start { last_seq, patient: false, rooms: now.to_vec(), added: added.clone() };
        // The new stream opens before the old one is dropped, so the rooms on both lists see
        // no leave and no join.
        let connection = Connection::open(chat, me, start);
        self.connection.set_value(Some(connection));
        for room in added {
            self.load_newest(room);
        }
    }

    /// Shows the newest messages of a room followed while the stream was open.
    fn load_newest(self, room: RoomName) {
        let chat = self.chat;
        leptos::task::spawn_local(async move {
            let Ok(page) = rooms::messages(&room, None).await else { return };
            if !chat.followed.with_untracked(|followed| followed.contains(&room)) {
                return;
            }
            let state = chat.room(&room);
            state.scroll_back.update(|scroll_back| scroll_back.more = page.more);
            state.timeline.update(|timeline| {
                for message in page.messages {
                    timeline.add_message(message);
                }
            });
        });
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

/// Whether the main pointer is a finger (`pointer: coarse`): a phone or a tablet, whose
/// on-screen keyboard has no Shift+Enter.
fn touch_screen() -> bool {
    web_sys::window()
        .and_then(|window| window.match_media("(pointer: coarse)").ok().flatten())
        .is_some_and(|query| query.matches())
}
