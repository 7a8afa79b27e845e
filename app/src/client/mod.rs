//! The browser side of the chat (feature `hydrate` only): who this browser is
//! ([`identity`]), the `EventSource` connection ([`connection`]), how its events change the
//! page ([`state`]), the other tabs of this browser ([`tabs`]), the tab's title ([`title`]), the clock and locale of message times
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
//! the last `seq`, and closes the old one once the new one is open. A resumed stream brings no
//! history of a room it did not follow before, so a room followed meanwhile gets its newest
//! messages from `GET /messages`.
//!
//! ## Tabs
//!
//! The tabs of one browser share one stream: the one that holds the leader's lock opens it
//! and relays it, the others show what it relays and post directly (see
//! [`crate::model::tabs`]). Whatever the viewer does that the server or storage sees (join,
//! rename, leave, follow or leave a room) is done in the tab where they did it, which tells the
//! others: they change what they show, and the leader its stream, without writing storage
//! again (a late echo must not undo a newer change).

mod connection;
mod http;
mod identity;
mod notify;
mod post;
mod prefs;
mod resize;
mod rooms;
mod state;
mod storage;
mod tabs;
mod time;
mod title;
mod users;

use crate::{
    model::{
        ChatActions, ChatSignals, ConnectionState, Followed, Notice, Reply, Timeline, capitalised,
        tabs::{StreamMirror, TabMessage, Theme, WireEvent, snapshot},
    },
    protocol::{RoomName, ServerEvent, User, UserName},
};
use connection::{Connection, Start};
use gloo_timers::callback::Timeout;
use leptos::{logging, prelude::*};
use std::rc::Rc;
use tabs::Channel;
use wasm_bindgen::{JsCast, closure::Closure};

pub use resize::resize_watch;
pub use time::clock;

/// Starts the browser side of the chat page and returns the page's actions. Called once, while
/// the page is built. It follows the rooms stored at the last visit and the one the address
/// names at once, before the first stream opens. Its effect runs after hydration (effects never
/// run on the server, and the first run comes after the server's DOM has been adopted); it
/// marks the page interactive, keeps the tab's title, joins the other tabs of this browser
/// (see [`crate::model::tabs`]) and rejoins a stored name (a reload is the same user). Other
/// effects follow changes of the rooms followed, and tell the other tabs what the stream is
/// doing while this tab leads. The page's cleanup closes the stream.
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
        let mirror = StreamMirror {
            status: chat.status.get(),
            error: chat.connection_error.get(),
            history_arriving: chat.history_arriving.get(),
        };
        if session.relays() {
            session.tell_tabs(&TabMessage::Stream(mirror));
        }
    });
    Effect::new(move |_| prefs::apply_theme(chat.theme.get()));
    // A room left for another was seen up to its newest message (see `remember_seen`).
    Effect::new(move |previous: Option<RoomName>| {
        let now = chat.current.get();
        if let Some(previous) = previous
            && previous != now
        {
            untrack(|| session.remember_seen(&previous));
        }
        now
    });
    Effect::new(move |_| {
        untrack(|| {
            mark_hydrated();
            chat.enter_sends.set(!touch_screen());
            chat.permission.set(notify::permission());
            chat.notify_rooms.set(prefs::notify_rooms());
            chat.theme.set(prefs::theme());
            title::follow_unread(chat);
            session.join_the_other_tabs();
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
        ask_permission: Callback::new(move |()| session.ask_permission()),
        notify_all: Callback::new(move |(room, on)| session.notify_all(room, on)),
        set_theme: Callback::new(move |theme| session.set_theme(theme)),
    }
}

/// This tab's part among the tabs of the browser (see [`crate::model::tabs`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Another tab leads, or none yet: this one shows what the leader relays.
    Following,
    /// This tab holds the lock, and with it the browser's one stream, which it relays.
    Leading,
    /// No Web Locks or no `BroadcastChannel`: this tab holds a stream of its own and relays
    /// nothing.
    Alone,
}

/// Where this tab stands among the others.
struct TabLink {
    /// A random name for this tab, so a snapshot reaches the tab that asked for it.
    tab: String,
    role: Role,
    /// Whether this (following) tab has the leader's snapshot: until then, relayed events are
    /// ignored, since the snapshot will hold them.
    synced: bool,
    /// The newest `seq` relayed to this tab: where its stream continues if it comes to lead.
    newest_seq: Option<u64>,
    /// Ends a snapshot's `aria-busy`.
    settle: Option<Timeout>,
}

/// The chat page's browser session: its signals and, once joined, its one open connection.
/// Copying it is shallow (every field is a handle), so the page's callbacks each hold one.
#[derive(Clone, Copy)]
pub struct Session {
    chat: ChatSignals,
    /// `EventSource` and its closures are not `Send`: they live in the page's local arena and are
    /// dropped (which closes the stream) on a new join or when the page is cleaned up. Only a
    /// leading (or lone) tab has one.
    connection: StoredValue<Option<Connection>, LocalStorage>,
    /// Set once this page has let go of an id: the server may hold it for a few seconds more,
    /// and until then it refuses this browser another one (409), so the next join waits.
    released_an_id: StoredValue<bool>,
    /// The channel to the other tabs, once opened (never where the browser has none).
    channel: StoredValue<Option<Rc<Channel>>, LocalStorage>,
    link: StoredValue<TabLink, LocalStorage>,
}

impl Session {
    pub fn new(chat: ChatSignals) -> Self {
        let link = TabLink {
            tab: random_tab_name(),
            role: Role::Following,
            synced: false,
            newest_seq: None,
            settle: None,
        };
        Self {
            chat,
            connection: StoredValue::new_local(None),
            released_an_id: StoredValue::new(false),
            channel: StoredValue::new_local(None),
            link: StoredValue::new_local(link),
        }
    }

    /// Opens the channel to the other tabs and queues for the lead. Without either, this tab
    /// is alone: it keeps a stream of its own.
    fn join_the_other_tabs(self) {
        let channel = Channel::open(move |message| self.on_tab_message(message));
        let has_channel = channel.is_some();
        self.channel.set_value(channel.map(Rc::new));
        let queued = has_channel && tabs::lead_when_possible(move || self.take_the_lead());
        if !queued {
            self.link.update_value(|link| link.role = Role::Alone);
        }
        show_role(self.role());
        self.tell_visibility();
        let Some(window) = web_sys::window() else { return };
        let seen = Closure::<dyn FnMut()>::new(move || {
            self.tell_visibility();
            if title::is_hidden() {
                self.remember_seen(&self.chat.current.get_untracked());
            } else if !self.holds_stream()
                && self.chat.status.get_untracked() == ConnectionState::Reconnecting
            {
                self.tell_tabs(&TabMessage::Hurry);
            }
        });
        if let Some(document) = window.document() {
            let _ =
                document.add_event_listener_with_callback("visibilitychange", seen.as_ref().unchecked_ref());
        }
        // A closing tab is hidden for good.
        let gone = Closure::<dyn FnMut()>::new(move || {
            let tab = self.link.with_value(|link| link.tab.clone());
            self.tell_tabs(&TabMessage::Visibility { tab, visible: false });
            self.remember_seen(&self.chat.current.get_untracked());
        });
        let _ = window.add_event_listener_with_callback("pagehide", gone.as_ref().unchecked_ref());
        // Both live as long as the page, like the document and window they listen to.
        seen.forget();
        gone.forget();
    }

    /// Tells the other tabs whether this one is visible: the leader notifies only while none is.
    fn tell_visibility(self) {
        let tab = self.link.with_value(|link| link.tab.clone());
        self.tell_tabs(&TabMessage::Visibility { tab, visible: !title::is_hidden() });
    }

    /// `room` was seen up to its newest message: stored, so that after a reload "New since
    /// you were last here" starts after it.
    fn remember_seen(self, room: &RoomName) {
        if self.chat.me.with_untracked(Option::is_none) {
            return;
        }
        if let Some(seq) = self.chat.room(room).timeline.with_untracked(Timeline::newest_seq) {
            prefs::remember_seen(room, seq);
        }
    }

    /// Gives each room followed the stored point it was seen up to, unless it knows a newer one.
    fn restore_seen(self, rooms: &[RoomName]) {
        let stored = prefs::seen();
        for room in rooms {
            if let Some(&seq) = stored.get(room) {
                let state = self.chat.room(room);
                if state.seen_through.get_untracked().is_none_or(|known| known < seq) {
                    state.seen_through.set(Some(seq));
                }
            }
        }
    }

    /// The "Turn on notifications" button: the browser asks, every tab learns the answer.
    fn ask_permission(self) {
        let chat = self.chat;
        leptos::task::spawn_local(async move {
            let permission = notify::ask().await;
            let _ = chat.permission.try_set(permission);
            self.tell_tabs(&TabMessage::Permission { permission });
        });
    }

    /// "Notify of every message" in `room`, on or off, in every tab.
    fn notify_all(self, room: RoomName, on: bool) {
        let mut changed = false;
        self.chat.notify_rooms.maybe_update(|rooms| {
            changed = rooms.set(room.clone(), on);
            changed
        });
        if changed {
            self.chat.notify_rooms.with_untracked(prefs::remember_notify_rooms);
            self.tell_tabs(&TabMessage::NotifyAll { room, on });
        }
        if on && self.chat.permission.get_untracked() == crate::model::Permission::Ask {
            self.ask_permission();
        }
    }

    /// A theme, in every tab.
    fn set_theme(self, theme: Theme) {
        self.chat.theme.set(theme);
        prefs::remember_theme(theme);
        self.tell_tabs(&TabMessage::Theme { theme });
    }

    fn role(self) -> Role {
        self.link.with_value(|link| link.role)
    }

    /// Whether this tab holds a stream (leading, or alone).
    fn holds_stream(self) -> bool {
        self.role() != Role::Following
    }

    /// Whether this tab relays its stream to the others.
    fn relays(self) -> bool {
        self.role() == Role::Leading
    }

    fn tell_tabs(self, message: &TabMessage) {
        self.channel.with_value(|channel| {
            if let Some(channel) = channel {
                channel.post(message);
            }
        });
    }

    /// The channel a new connection relays over: only a leader's does.
    fn relay(self) -> Option<Rc<Channel>> {
        if self.relays() { self.channel.with_value(Clone::clone) } else { None }
    }

    /// This tab got the lock: the previous leader closed, or there was none. It opens the
    /// browser's stream, continuing after the newest `seq` relayed to it, and tells the others.
    fn take_the_lead(self) {
        let Some(newest_seq) = self.link.try_update_value(|link| {
            link.role = Role::Leading;
            link.newest_seq
        }) else {
            return;
        };
        show_role(Role::Leading);
        self.tell_tabs(&TabMessage::Leading);
        let Some(me) = self.chat.me.try_get_untracked().flatten() else { return };
        let rooms = self.chat.followed.with_untracked(Followed::names);
        let start = Start { last_seq: newest_seq, patient: false, rooms, added: Vec::new() };
        self.connection.set_value(Some(Connection::open(self.chat, me, start, self.relay())));
    }

    /// Another tab said something.
    fn on_tab_message(self, message: TabMessage) {
        let chat = self.chat;
        let following = self.role() == Role::Following;
        let joined = chat.me.try_with_untracked(Option::is_some).unwrap_or(false);
        match message {
            TabMessage::Event(event) => {
                if following && joined && self.link.with_value(|link| link.synced) {
                    self.apply_relayed(&event);
                }
            }
            TabMessage::Stream(mirror) => {
                if following && joined {
                    self.show_stream(mirror);
                }
            }
            TabMessage::Leading => {
                if following && joined && !self.link.with_value(|link| link.synced) {
                    self.say_hello();
                }
            }
            TabMessage::Hello { tab } => {
                if self.relays() && joined {
                    self.send_snapshot(tab);
                }
            }
            TabMessage::Snapshot { to, events, last_seq, stream } => {
                let for_me = self.link.with_value(|link| link.tab == to && !link.synced);
                if for_me && following && joined {
                    self.start_from_snapshot(&events, last_seq, stream);
                }
            }
            TabMessage::Joined { user } => {
                if chat.me.with_untracked(|me| me.as_ref() != Some(&user)) {
                    self.join_here(user);
                }
            }
            TabMessage::Renamed { user } => {
                if chat.me.with_untracked(|me| me.as_ref() != Some(&user)) {
                    self.rename_here(user);
                }
            }
            TabMessage::Left => {
                if joined {
                    self.leave_here(Some("You left the chat in another tab. Join again whenever you like."));
                }
            }
            TabMessage::JoinRefused { sentence } => {
                if following {
                    self.close();
                    chat.join_error.set(Some(sentence));
                    chat.me.set(None);
                }
            }
            TabMessage::Follow { room } => {
                chat.followed.maybe_update(|followed| followed.follow(room).unwrap_or(false));
            }
            TabMessage::Unfollow { room } => self.leave_room_here(room),
            TabMessage::NotifyAll { room, on } => {
                chat.notify_rooms.maybe_update(|rooms| rooms.set(room, on));
            }
            TabMessage::Theme { theme } => chat.theme.set(theme),
            TabMessage::Permission { permission } => chat.permission.set(permission),
            TabMessage::Hurry => self.connection.with_value(|connection| {
                if let Some(connection) = connection {
                    connection.try_now();
                }
            }),
            TabMessage::Visibility { tab, visible } => notify::tab_visibility(tab, visible),
        }
    }

    /// Asks the leader for what it has.
    fn say_hello(self) {
        let tab = self.link.with_value(|link| link.tab.clone());
        self.tell_tabs(&TabMessage::Hello { tab });
    }

    /// The leader's answer to a hello: every followed room's people and newest messages. A
    /// room its stream does not follow yet is left out: its `all-users`, relayed when it
    /// comes, is what tells the new tab it may post there.
    fn send_snapshot(self, to: String) {
        let chat = self.chat;
        let mut events = Vec::new();
        for room in chat.followed.with_untracked(Followed::names) {
            let state = chat.room(&room);
            if !state.in_room.get_untracked() {
                continue;
            }
            state.roster.with_untracked(|roster| {
                state.timeline.with_untracked(|timeline| events.extend(snapshot(&room, roster, timeline)));
            });
        }
        let last_seq =
            self.connection.with_value(|connection| connection.as_ref().and_then(Connection::last_seq));
        let stream = StreamMirror {
            status: chat.status.get_untracked(),
            error: chat.connection_error.get_untracked(),
            history_arriving: chat.history_arriving.get_untracked(),
        };
        self.tell_tabs(&TabMessage::Snapshot { to, events, last_seq, stream });
    }

    /// A following tab starts from the leader's snapshot: a burst of history, so the message
    /// log is busy while it goes in.
    fn start_from_snapshot(self, events: &[WireEvent], last_seq: Option<u64>, stream: StreamMirror) {
        let chat = self.chat;
        chat.history_arriving.set(true);
        self.link.update_value(|link| {
            link.synced = true;
            link.newest_seq = link.newest_seq.max(last_seq);
        });
        for event in events {
            self.apply_relayed(event);
        }
        let settle = Timeout::new(connection::HISTORY_SETTLE_MS, move || {
            let _ = chat.history_arriving.try_set(false);
        });
        self.link.update_value(|link| link.settle = Some(settle));
        chat.status.set(stream.status);
        chat.connection_error.set(stream.error);
    }

    /// One event the leader's stream carried, applied here as if this tab's own stream had.
    fn apply_relayed(self, event: &WireEvent) {
        match ServerEvent::decode_v2(&event.name, &event.data) {
            Ok((room, event)) => {
                if let Some(seq) = event.sse_id() {
                    self.link.update_value(|link| link.newest_seq = link.newest_seq.max(Some(seq)));
                }
                state::apply(&self.chat, &room, event, state::Notifying::Elsewhere);
            }
            Err(error) => logging::warn!("ssechat: ignoring a relayed event: {error}"),
        }
    }

    /// What the leader's stream is doing, shown here.
    fn show_stream(self, mirror: StreamMirror) {
        let chat = self.chat;
        if chat.status.get_untracked() != mirror.status {
            chat.status.set(mirror.status);
        }
        chat.connection_error.set(mirror.error);
        if !mirror.history_arriving {
            self.link.update_value(|link| link.settle = None);
        }
        chat.history_arriving.set(mirror.history_arriving);
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

    /// Joins as `name` with this browser's id, from a clean slate, and tells the other tabs.
    pub fn join(self, name: UserName) {
        let me = User { id: identity::user_id(), name };
        identity::remember_name(&me.name);
        self.tell_tabs(&TabMessage::Joined { user: me.clone() });
        self.join_here(me);
    }

    /// Shows the chat as `me`, from a clean slate: with a stream of its own when this tab
    /// holds the stream, else from the leader's snapshot.
    fn join_here(self, me: User) {
        let chat = self.chat;
        chat.connection_error.set(None);
        chat.join_error.set(None);
        chat.join_info.set(None);
        chat.forget_rooms();
        chat.followed.update(Followed::reset_news);
        chat.status.set(ConnectionState::Connecting);
        chat.me.set(Some(me.clone()));
        self.restore_seen(&chat.followed.with_untracked(Followed::names));
        if self.holds_stream() {
            let rooms = chat.followed.with_untracked(Followed::names);
            let start =
                Start { last_seq: None, patient: self.released_an_id.get_value(), rooms, added: Vec::new() };
            // Replacing the previous connection drops it, which closes its stream.
            self.connection.set_value(Some(Connection::open(chat, me, start, self.relay())));
        } else {
            self.link.update_value(|link| {
                link.synced = false;
                link.newest_seq = None;
            });
            self.say_hello();
        }
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
    /// module's documentation). The conversation stays, and continues where it was. Every tab
    /// takes the new name.
    pub fn rename(self, name: UserName) {
        identity::forget();
        let me = User { id: identity::user_id(), name };
        identity::remember_name(&me.name);
        self.tell_tabs(&TabMessage::Renamed { user: me.clone() });
        self.rename_here(me);
    }

    fn rename_here(self, me: User) {
        let last_seq = self
            .connection
            .with_value(|connection| connection.as_ref().and_then(Connection::last_seq))
            .or_else(|| self.link.with_value(|link| link.newest_seq));
        self.close();
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
        if self.holds_stream() {
            let rooms = chat.followed.with_untracked(Followed::names);
            let start = Start { last_seq, patient: true, rooms, added: Vec::new() };
            self.connection.set_value(Some(Connection::open(chat, me, start, self.relay())));
        }
    }

    /// Leaves the chat: closes the stream (the server announces the leave after its grace
    /// period) and forgets name and id, so a reload shows the join form and the next join is
    /// a new user. Every tab leaves.
    pub fn leave(self) {
        identity::forget();
        self.tell_tabs(&TabMessage::Left);
        self.leave_here(Some("You left the chat. Join again whenever you like."));
    }

    /// Shows the join form again, with `info` above it, and lets the stream go.
    fn leave_here(self, info: Option<&str>) {
        self.close();
        self.released_an_id.set_value(true);
        let chat = self.chat;
        chat.me.set(None);
        chat.connection_error.set(None);
        chat.forget_rooms();
        chat.followed.update(Followed::reset_news);
        chat.unread.set(0);
        chat.join_info.set(info.map(str::to_owned));
    }

    /// After a refusal: forget this browser's name and id (the id may be what is held
    /// elsewhere) and show the join form again, in every tab.
    pub fn start_over(self) {
        identity::forget();
        self.tell_tabs(&TabMessage::Left);
        self.leave_here(None);
    }

    /// The address names `room`: follow it unless that would be one room too many (then say
    /// so, and show a room already followed), and show it. The other tabs follow it too.
    pub fn open_room(self, room: RoomName) {
        let chat = self.chat;
        let mut refused = None;
        let mut new = false;
        chat.followed.maybe_update(|followed| match followed.follow(room.clone()) {
            Ok(followed) => {
                new = followed;
                followed
            }
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
        if new {
            self.tell_tabs(&TabMessage::Follow { room: room.clone() });
        }
        if chat.current.get_untracked() != room {
            chat.room_error.set(None);
            chat.current.set(room.clone());
        }
        chat.followed.maybe_update(|followed| followed.mark_read(&room));
    }

    /// Stops following `room`, in every tab.
    pub fn leave_room(self, room: RoomName) {
        self.tell_tabs(&TabMessage::Unfollow { room: room.clone() });
        self.leave_room_here(room);
    }

    /// Stops following `room`; if it was shown, the first room followed is shown instead.
    fn leave_room_here(self, room: RoomName) {
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
    /// left, show the newest messages of the rooms added, and, where this tab holds the
    /// stream, follow the new set with a new stream that resumes where the old one was (see
    /// the module's documentation).
    fn rooms_changed(self, previous: &[RoomName], now: &[RoomName]) {
        let chat = self.chat;
        chat.followed.with_untracked(rooms::remember);
        for room in previous.iter().filter(|room| !now.contains(room)) {
            chat.forget_room(room);
        }
        let Some(me) = chat.me.get_untracked() else { return };
        let added: Vec<RoomName> = now.iter().filter(|room| !previous.contains(room)).cloned().collect();
        self.restore_seen(&added);
        for room in &added {
            self.load_newest(room.clone());
        }
        let Some(Some(old)) = self.connection.try_update_value(Option::take) else { return };
        let last_seq = old.last_seq();
        if let Some(seq) = last_seq {
            // Whatever the new stream brings after this is news.
            chat.followed.update(|followed| followed.news_after(seq));
        }
        let start = Start { last_seq, patient: false, rooms: now.to_vec(), added };
        // The old stream stays open until the new one is, so the rooms on both lists see no
        // leave and no join.
        self.connection.set_value(Some(old.hand_over(chat, me, start, self.relay())));
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

/// A name for this tab, unique among the browser's tabs.
fn random_tab_name() -> String {
    format!("{:016x}", (js_sys::Math::random() * 2f64.powi(53)) as u64)
}

/// Marks `<body data-hydrated="true">` once the page is interactive: before that, a click does
/// nothing our code sees, so tools that drive the page (the end-to-end tests) wait for it.
fn mark_hydrated() {
    let body = web_sys::window().and_then(|window| window.document()).and_then(|doc| doc.body());
    if let Some(body) = body {
        let _ = body.set_attribute("data-hydrated", "true");
    }
}

/// Marks `<body data-tab-role="…">` (`leading`, `following`, `alone`): which tab holds the
/// browser's stream, for whoever looks (the end-to-end tests, a developer in the inspector).
fn show_role(role: Role) {
    let body = web_sys::window().and_then(|window| window.document()).and_then(|doc| doc.body());
    if let Some(body) = body {
        let name = match role {
            Role::Following => "following",
            Role::Leading => "leading",
            Role::Alone => "alone",
        };
        let _ = body.set_attribute("data-tab-role", name);
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
