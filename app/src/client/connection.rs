//! The stream: one `EventSource` per browser (the leading tab's, see [`super::tabs`]) on `/sse?id=…&name=…&rooms=…`, following every room
//! this browser follows (protocol version 2), whose named events are decoded with the
//! protocol's own [`ServerEvent::decode_v2`] and applied to the room they name
//! ([`super::state`]). One `Last-Event-ID` resumes every room at once. When the rooms followed
//! change, the session opens a new `Connection` with the new list and the last `seq`
//! ([`Connection::hand_over`]), and closes this one only once the new one is open: the server
//! sees no leave and no join in the rooms on both lists, however long the new stream takes.
//! The rules of reconnecting (backoff with jitter, what each answer means, `Retry-After`,
//! silence) are plain Rust in [`crate::reconnect`]; this module drives them with the browser's
//! timers.
//!
//! The browser reconnects an `EventSource` by itself after a dropped stream, sending
//! `Last-Event-ID`; but it gives up for good on any answer that is not a 200 stream (a 409, a
//! 503, a proxy's 404). Then we reconnect by hand, with jittered backoff. Because the
//! `EventSource` API hides the answer's status and body, each attempt first probes the same URL
//! with `fetch`, for at most [`reconnect::PROBE_TIMEOUT`] (a server that accepts but never
//! answers is a failed attempt, not an endless "Reconnecting…"): a 200 is aborted and the
//! `EventSource` reopened with `last_event_id` (it cannot set headers); a 409 is shown and ends
//! the retries; a 400 goes back to the join form; anything else is retried, after its
//! `Retry-After` when it has one.
//!
//! ## The probe is not a second stream
//!
//! A 200 probe *is* a stream of this user on the server, next to the one it stands in for. So
//! the probe reads nothing of its body: as soon as the status is in, it aborts the request,
//! waits for its body to be cancelled, and lets the browser's event loop turn once, all before
//! the `EventSource` is created. The server sees the probe close right away (its stream count
//! for the user goes back down, within the leave grace period, so nobody sees a leave); the
//! probe never holds one of the user's streams while the real one is open.
//!
//! ## Silence and the network
//!
//! A half-open stream (see [`crate::reconnect`], "Why silence means reconnect") is noticed by
//! a timer: after [`reconnect::SILENCE_LIMIT`] without any event, the stream is closed and
//! opened again with `last_event_id`, without a probe (if that fails, its `error` starts the
//! usual reconnect) and without showing "Reconnecting…", since in a quiet room this is routine.
//! The window's `offline` event closes the stream and stops every attempt (the page shows
//! `offline`); `online` reconnects at once, from the first backoff step.
//!
//! A patient start (after this page let go of another id, see `super::Session::rename`) probes
//! first and takes a 409 as "not yet" for a while, since the server keeps the old id for its
//! leave grace period and refuses this browser a second one until then.

use super::{
    http, identity,
    state::{self, Notifying},
    tabs::Channel,
    with_reason,
};
use crate::{
    model::{
        ChatSignals, ConnectionState, capitalised,
        rooms::SERVER_FULL,
        tabs::{TabMessage, WireEvent},
    },
    protocol::{RoomName, ServerEvent, User},
    reconnect::{self, Backoff, Next, Silence},
};
use gloo_timers::callback::{Interval, Timeout};
use leptos::{logging, prelude::*};
use std::{
    cell::{Cell, RefCell},
    rc::{Rc, Weak},
    time::Duration,
};
use wasm_bindgen::{JsCast, closure::Closure};
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortController, Event, EventSource, MessageEvent};

/// How long a patient start takes a 409 as "not yet". The server's leave grace period is 3 s by
/// default.
const PATIENCE_MS: f64 = 30_000.0;

/// Where a new connection starts.
pub struct Start {
    /// The last `seq` this page has, so a new stream continues after it instead of sending
    /// recent history again.
    pub last_seq: Option<u64>,
    /// Whether a 409 may just mean that the server still holds the id this page let go of.
    pub patient: bool,
    /// The rooms this stream follows.
    pub rooms: Vec<RoomName>,
    /// Those the previous stream did not follow: the ones given up if the server has no room
    /// for more (`409 too many rooms`).
    pub added: Vec<RoomName>,
}

/// An open (or reopening) stream for one joined user. Dropping it closes the stream and stops
/// any reconnect in progress, its silence timer and its `online`/`offline` listeners (and
/// closes the stream it took over from, if it still holds it).
pub struct Connection {
    inner: Rc<Inner>,
    _watch: Watch,
}

impl Connection {
    /// Opens the stream for `me` (the page already shows the `connecting` state). With a
    /// `relay`, every event is also told to the other tabs, as it came.
    pub fn open(chat: ChatSignals, me: User, start: Start, relay: Option<Rc<Channel>>) -> Self {
        Self::open_after(None, chat, me, start, relay)
    }

    /// Opens a stream that follows other rooms in place of this one. This one stays open until
    /// the new one is (its `open` event), so the rooms on both lists never lose the user, however
    /// long the new stream takes to open (the protocol: open the new stream, "then close the old
    /// one"). Meanwhile it is silent: its events are left to the new stream, which resumes after
    /// `start.last_seq`, and it neither reconnects nor shows a status. If the new stream is
    /// refused for good or the browser goes offline, this one is closed then.
    pub fn hand_over(self, chat: ChatSignals, me: User, start: Start, relay: Option<Rc<Channel>>) -> Self {
        let held = self.retire();
        Self::open_after(held, chat, me, start, relay)
    }

    /// Silences this connection and returns the one whose stream should stay open until a
    /// successor is: this one, or, when this one never opened, the one it still holds (this one
    /// is then closed). So however fast the rooms change, a user holds at most two streams.
    fn retire(self) -> Option<Self> {
        self.inner.stopped.set(true);
        if self.inner.was_live.get() {
            return Some(self);
        }
        self.inner.predecessor.borrow_mut().take()
    }

    fn open_after(
        predecessor: Option<Self>,
        chat: ChatSignals,
        me: User,
        start: Start,
        relay: Option<Rc<Channel>>,
    ) -> Self {
        let rooms: Vec<&str> = start.rooms.iter().map(RoomName::as_str).collect();
        let rooms = rooms.join(",");
        // Room names are `[a-z0-9_-]`: nothing in them needs escaping.
        let url = format!(
            "/sse?id={}&name={}&rooms={}",
            String::from(js_sys::encode_uri_component(me.id.as_str())),
            String::from(js_sys::encode_uri_component(me.name.as_str())),
            rooms,
        );
        let inner = Rc::new(Inner {
            chat,
            url,
            stopped: Cell::new(false),
            source: RefCell::new(None),
            backoff: Cell::new(Backoff::default()),
            task: Cell::new(0),
            reconnecting: Cell::new(false),
            offline: Cell::new(false),
            silence: Cell::new(Silence::default()),
            last_seq: Cell::new(start.last_seq),
            patient_until: Cell::new(if start.patient { js_sys::Date::now() + PATIENCE_MS } else { 0.0 }),
            added: start.added,
            settle: RefCell::new(None),
            relay,
            was_live: Cell::new(false),
            predecessor: RefCell::new(predecessor),
        });
        let watch = Watch::start(&inner);
        if !browser_is_online() {
            inner.go_offline();
        } else if start.patient {
            Inner::start_reconnecting(&inner, Duration::ZERO, ConnectionState::Connecting);
        } else {
            // Without a `last_event_id` the server starts with recent history.
            Inner::connect(&inner, start.last_seq);
        }
        Self { inner, _watch: watch }
    }

    /// The newest `seq` that came over the stream, where another stream would continue.
    pub fn last_seq(&self) -> Option<u64> {
        self.inner.last_seq.get()
    }

    /// Another tab came into view while this stream waits to reconnect: try at once. This tab
    /// may be hidden, and a hidden tab's timers can be stretched to a minute by the browser,
    /// which would leave the tab in view waiting on a backoff it cannot see.
    pub fn try_now(&self) {
        let inner = &self.inner;
        if inner.stopped.get() || inner.offline.get() || !inner.reconnecting.get() {
            return;
        }
        Inner::start_reconnecting(inner, Duration::ZERO, inner.chat.status.get_untracked());
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.inner.stopped.set(true);
        self.inner.close_source();
        // A reconnect task may keep `inner` alive a while longer: the stream held must not.
        self.inner.let_predecessor_go();
    }
}

/// The state behind a [`Connection`], shared with its event handlers and reconnect task.
/// Handlers hold it weakly: the `Connection` alone keeps it (and so its `EventSource`) alive.
struct Inner {
    chat: ChatSignals,
    /// `/sse?id=…&name=…`; each attempt may add `&last_event_id=…`.
    url: String,
    /// Set when the connection is dropped or refused for good: every task checks it after
    /// each wait.
    stopped: Cell<bool>,
    source: RefCell<Option<Source>>,
    /// Failed attempts since the stream was last live.
    backoff: Cell<Backoff>,
    /// The number of the reconnect task that may act: starting a task (or going offline)
    /// makes every older one stop at its next check.
    task: Cell<u64>,
    /// Whether a reconnect task is running, so two errors never start two.
    reconnecting: Cell<bool>,
    /// Whether the browser said it is offline: then nothing is tried until it is back.
    offline: Cell<bool>,
    /// When the stream last showed a sign of life.
    silence: Cell<Silence>,
    /// The newest `seq` that came over the stream: where a stream opened by hand continues
    /// (`last_event_id`). Not the newest shown: the answer to our own `POST` may be newer than
    /// a message the stream has not delivered yet, and continuing after it would skip that one.
    last_seq: Cell<Option<u64>>,
    /// Until when (`Date.now()`) a 409 means "not yet" rather than "no": see [`Start::patient`].
    patient_until: Cell<f64>,
    /// See [`Start::added`].
    added: Vec<RoomName>,
    /// Ends `ChatSignals::history_arriving` once the stream has been quiet for
    /// [`HISTORY_SETTLE_MS`]; rearmed by every event while history arrives.
    settle: RefCell<Option<Timeout>>,
    /// The other tabs, when this tab leads.
    relay: Option<Rc<Channel>>,
    /// Whether the stream was ever open.
    was_live: Cell<bool>,
    /// The connection this one took over from ([`Connection::hand_over`]), kept open and silent
    /// until this one is open.
    predecessor: RefCell<Option<Connection>>,
}

impl Inner {
    fn tell_tabs(&self, message: &TabMessage) {
        if let Some(relay) = &self.relay {
            relay.post(message);
        }
    }

    /// Closes the stream this one took over from, if it still holds it. Taken out before it
    /// is dropped, so nothing is borrowed while it closes.
    fn let_predecessor_go(&self) {
        let predecessor = self.predecessor.borrow_mut().take();
        drop(predecessor);
    }
}

/// How long a newly opened stream must stay quiet before what it sent counts as history
/// delivered: the server writes a stream's history in one go, so its events arrive back to back.
pub const HISTORY_SETTLE_MS: u32 = 300;

impl Inner {
    /// Opens an `EventSource` and subscribes to every event of the protocol.
    fn connect(this: &Rc<Self>, last_seq: Option<u64>) {
        let url = with_last_event_id(&this.url, last_seq);
        let es = match EventSource::new(&url) {
            Ok(es) => es,
            Err(error) => {
                logging::warn!("ssechat: cannot open the stream: {error:?}");
                Self::reconnect_by_hand(this);
                return;
            }
        };
        // A new stream gets a whole silence interval to say something.
        this.touch();
        // It starts with history (recent messages, or what a reconnect missed): the log is
        // busy until that burst is over, so a screen reader does not read it out one by one.
        this.chat.history_arriving.set(true);
        let mut source = Source { es, listeners: Vec::new() };
        for name in ServerEvent::NAMES {
            let weak = Rc::downgrade(this);
            source.listen(name, move |event| {
                if let Some(inner) = weak.upgrade() {
                    inner.on_event(name, &event);
                }
            });
        }
        let weak = Rc::downgrade(this);
        source.listen("open", move |_| {
            if let Some(inner) = weak.upgrade() {
                inner.mark_live();
            }
        });
        let weak: Weak<Self> = Rc::downgrade(this);
        source.listen("error", move |_| {
            if let Some(inner) = weak.upgrade() {
                Self::on_error(&inner);
            }
        });
        *this.source.borrow_mut() = Some(source);
    }

    /// Closes the `EventSource`, if any. Taken out before it is dropped, so nothing is borrowed
    /// while the stream closes.
    fn close_source(&self) {
        let source = self.source.borrow_mut().take();
        drop(source);
    }

    fn on_event(&self, name: &'static str, event: &Event) {
        if self.stopped.get() {
            return;
        }
        let Some(data) = event.dyn_ref::<MessageEvent>().and_then(|event| event.data().as_string()) else {
            return;
        };
        self.mark_live();
        self.tell_tabs(&TabMessage::Event(WireEvent { name: name.to_owned(), data: data.clone() }));
        match ServerEvent::decode_v2(name, &data) {
            Ok((room, event)) => {
                if let Some(seq) = event.sse_id() {
                    self.last_seq.set(self.last_seq.get().max(Some(seq)));
                }
                state::apply(&self.chat, &room, event, Notifying::Here);
            }
            // One malformed event is no reason to drop the stream: skip it and say so.
            Err(error) => logging::warn!("ssechat: ignoring an event: {error}"),
        }
    }

    /// The stream is open (its `open` event, or any event, came in).
    fn mark_live(&self) {
        // The server has this stream, and with it the user in every room it follows.
        self.was_live.set(true);
        self.let_predecessor_go();
        self.touch();
        self.settle_history();
        let mut backoff = self.backoff.get();
        backoff.reset();
        self.backoff.set(backoff);
        // From now on a 409 is a real refusal.
        self.patient_until.set(0.0);
        self.set_status(ConnectionState::Live);
    }

    /// While history arrives, (re)starts the wait after which it is over.
    fn settle_history(&self) {
        if !self.chat.history_arriving.get_untracked() {
            return;
        }
        let history_arriving = self.chat.history_arriving;
        let timeout = Timeout::new(HISTORY_SETTLE_MS, move || {
            let _ = history_arriving.try_set(false);
        });
        // Dropping the previous `Timeout` cancels it.
        *self.settle.borrow_mut() = Some(timeout);
    }

    fn touch(&self) {
        let mut silence = self.silence.get();
        silence.touch(js_sys::Date::now());
        self.silence.set(silence);
    }

    fn set_status(&self, status: ConnectionState) {
        if self.chat.status.get_untracked() != status {
            self.chat.status.set(status);
        }
    }

    fn on_error(this: &Rc<Self>) {
        if this.stopped.get() || this.offline.get() {
            return;
        }
        let closed =
            this.source.borrow().as_ref().is_none_or(|source| source.es.ready_state() == EventSource::CLOSED);
        if closed {
            Self::reconnect_by_hand(this);
        } else {
            // The browser is already reconnecting, with `Last-Event-ID`.
            this.set_status(ConnectionState::Reconnecting);
        }
    }

    /// The silence timer: a stream that said nothing for too long is taken for dead and opened
    /// again at once (see the module's documentation). Only an open or opening stream is
    /// watched; a reconnect task or the offline state has its own pace.
    fn check_silence(this: &Rc<Self>) {
        if this.stopped.get()
            || this.offline.get()
            || this.reconnecting.get()
            || this.source.borrow().is_none()
        {
            return;
        }
        if this.silence.get().is_too_long(js_sys::Date::now()) {
            logging::log!("ssechat: no event for {:?}; opening the stream again", reconnect::SILENCE_LIMIT);
            this.close_source();
            Self::connect(this, this.last_seq.get());
        }
    }

    /// The window's `offline`: close the stream and stop trying until `online`.
    fn go_offline(&self) {
        if self.stopped.get() {
            return;
        }
        self.offline.set(true);
        // Any reconnect task stops at its next check.
        self.task.set(self.task.get() + 1);
        self.reconnecting.set(false);
        self.close_source();
        self.let_predecessor_go();
        self.set_status(ConnectionState::Offline);
    }

    /// The window's `online`: reconnect at once, from the first backoff step. An `online`
    /// while the stream is fine changes nothing.
    fn go_online(this: &Rc<Self>) {
        if this.stopped.get() {
            return;
        }
        let was_offline = this.offline.replace(false);
        let open = this
            .source
            .borrow()
            .as_ref()
            .is_some_and(|source| source.es.ready_state() != EventSource::CLOSED);
        if !was_offline && (open || this.reconnecting.get()) {
            return;
        }
        this.backoff.set(Backoff::default());
        Self::start_reconnecting(this, Duration::ZERO, ConnectionState::Reconnecting);
    }

    /// Starts the reconnect task unless one runs. It runs after this handler returns, which
    /// matters: it drops the closed `EventSource` and with it the closure calling us now.
    fn reconnect_by_hand(this: &Rc<Self>) {
        if this.stopped.get() || this.offline.get() || this.reconnecting.get() {
            return;
        }
        let wait = this.next_backoff();
        Self::start_reconnecting(this, wait, ConnectionState::Reconnecting);
    }

    /// Starts a reconnect task; one already running stops at its next check.
    fn start_reconnecting(this: &Rc<Self>, first_wait: Duration, status: ConnectionState) {
        if this.stopped.get() || this.offline.get() {
            return;
        }
        let task = this.task.get() + 1;
        this.task.set(task);
        this.reconnecting.set(true);
        this.set_status(status);
        let inner = Rc::clone(this);
        wasm_bindgen_futures::spawn_local(async move {
            inner.close_source();
            Self::reconnect(&inner, first_wait, task).await;
            if inner.task.get() == task {
                inner.reconnecting.set(false);
            }
        });
    }

    /// Whether reconnect task `task` may still act.
    fn may_act(&self, task: u64) -> bool {
        !self.stopped.get() && !self.offline.get() && self.task.get() == task
    }

    async fn reconnect(this: &Rc<Self>, first_wait: Duration, task: u64) {
        let mut wait = first_wait;
        loop {
            gloo_timers::future::sleep(wait).await;
            if !this.may_act(task) {
                return;
            }
            let last_seq = this.last_seq.get();
            let answer = probe(&with_last_event_id(&this.url, last_seq)).await;
            if !this.may_act(task) {
                return;
            }
            let patient = js_sys::Date::now() < this.patient_until.get();
            let status = answer.as_ref().map(|answer| answer.status);
            let retry_after = answer.as_ref().and_then(|answer| answer.retry_after);
            let reason = answer.map(|answer| answer.reason).unwrap_or_default();
            wait = match reconnect::after_probe(status, retry_after, patient) {
                Next::Open => {
                    Self::connect(this, last_seq);
                    return;
                }
                Next::Invalid => {
                    this.back_to_join_form(&reason);
                    return;
                }
                Next::Refused => {
                    this.refuse(&reason);
                    return;
                }
                Next::RetryIn(delay) => delay,
                Next::Backoff => this.next_backoff(),
            };
        }
    }

    /// The next wait, drawn at random below 1 s, 2 s, 4 s … 15 s ([`Backoff`]).
    fn next_backoff(&self) -> Duration {
        let mut backoff = self.backoff.get();
        let wait = backoff.next_wait(js_sys::Math::random());
        self.backoff.set(backoff);
        wait
    }

    /// A refusal retrying cannot change (409: the id or name is held in another browser, or
    /// the server has no room for another room).
    fn refuse(&self, reason: &str) {
        self.stopped.set(true);
        // The session then opens a stream for the rooms left, which takes over the stream this
        // one still holds (see `retire`).
        if reason.contains("too many rooms") && self.give_up_new_rooms() {
            return;
        }
        self.let_predecessor_go();
        let sentence = "This name is already in use in another browser, so this page cannot join the chat \
                        with it.";
        self.chat.connection_error.set(Some(with_reason(sentence, reason)));
        self.set_status(ConnectionState::Refused);
    }

    /// `409 too many rooms`: the rooms this stream added are given up (all but `general` when
    /// it added none, as after a reload with rooms that are gone), and the page says why. The
    /// session then opens a stream for what is left. Returns whether any room was given up.
    fn give_up_new_rooms(&self) -> bool {
        let chat = self.chat;
        let mut changed = false;
        chat.followed.maybe_update(|followed| {
            let mut doomed = self.added.clone();
            if doomed.is_empty() {
                doomed = followed.names().into_iter().filter(|room| !room.is_general()).collect();
                if followed.follow(RoomName::general()) == Ok(true) {
                    changed = true;
                    self.tell_tabs(&TabMessage::Follow { room: RoomName::general() });
                }
            }
            for room in &doomed {
                changed |= followed.unfollow(room);
                self.tell_tabs(&TabMessage::Unfollow { room: room.clone() });
            }
            changed
        });
        if !changed {
            return false;
        }
        let first = chat.followed.with_untracked(|followed| followed.first());
        if !chat.followed.with_untracked(|followed| followed.contains(&chat.current.get_untracked())) {
            chat.current.set(first);
        }
        chat.room_error.set(Some(SERVER_FULL.to_owned()));
        true
    }

    /// The server refused the id or name as invalid (400): forget the name, so a reload does not
    /// try it again, and ask for another.
    fn back_to_join_form(&self, reason: &str) {
        self.stopped.set(true);
        self.let_predecessor_go();
        identity::forget_name();
        let reason = reason.trim();
        let sentence = if reason.is_empty() {
            "The server refused this name; choose another.".to_owned()
        } else {
            capitalised(reason)
        };
        self.tell_tabs(&TabMessage::JoinRefused { sentence: sentence.clone() });
        self.chat.join_error.set(Some(sentence));
        self.chat.me.set(None);
    }
}

/// Whether the browser thinks it has a network (`navigator.onLine`); `true` when it cannot say.
fn browser_is_online() -> bool {
    web_sys::window().is_none_or(|window| window.navigator().on_line())
}

/// What watches a connection from outside its stream: the silence timer and the window's
/// `online`/`offline` listeners. All hold the connection weakly; dropping this stops them.
struct Watch {
    _silence: Interval,
    window: Option<web_sys::Window>,
    listeners: Vec<(&'static str, Listener)>,
}

impl Watch {
    fn start(inner: &Rc<Inner>) -> Self {
        let weak = Rc::downgrade(inner);
        let period = u32::try_from(reconnect::SILENCE_CHECK.as_millis()).unwrap_or(u32::MAX);
        let silence = Interval::new(period, move || {
            if let Some(inner) = weak.upgrade() {
                Inner::check_silence(&inner);
            }
        });
        let mut watch = Self { _silence: silence, window: web_sys::window(), listeners: Vec::new() };
        let weak = Rc::downgrade(inner);
        watch.listen("offline", move |_| {
            if let Some(inner) = weak.upgrade() {
                inner.go_offline();
            }
        });
        let weak = Rc::downgrade(inner);
        watch.listen("online", move |_| {
            if let Some(inner) = weak.upgrade() {
                Inner::go_online(&inner);
            }
        });
        watch
    }

    fn listen(&mut self, name: &'static str, handler: impl FnMut(Event) + 'static) {
        let Some(window) = &self.window else { return };
        let closure = Listener::new(handler);
        let _ = window.add_event_listener_with_callback(name, closure.as_ref().unchecked_ref());
        self.listeners.push((name, closure));
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(window) = &self.window {
            for (name, closure) in &self.listeners {
                let _ = window.remove_event_listener_with_callback(name, closure.as_ref().unchecked_ref());
            }
        }
    }
}

/// One `EventSource` and the closures it calls. The closures must live as long as the source
/// may call them; dropping this closes the source first, then detaches and frees them.
struct Source {
    es: EventSource,
    listeners: Vec<(&'static str, Listener)>,
}

/// A Rust handler the browser can call.
type Listener = Closure<dyn FnMut(Event)>;

impl Source {
    fn listen(&mut self, name: &'static str, handler: impl FnMut(Event) + 'static) {
        let closure = Listener::new(handler);
        // `addEventListener` only throws for a callback that is not a function; ours is one.
        let _ = self.es.add_event_listener_with_callback(name, closure.as_ref().unchecked_ref());
        self.listeners.push((name, closure));
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        self.es.close();
        for (name, closure) in &self.listeners {
            let _ = self.es.remove_event_listener_with_callback(name, closure.as_ref().unchecked_ref());
        }
    }
}

/// What the server answered a probe of the stream's URL.
struct Answer {
    status: u16,
    retry_after: Option<Duration>,
    /// The plain-text reason of a refusal; empty for a 200, whose body is never read.
    reason: String,
}

/// Asks the server whether the stream would open, and if not, why. `None` when there was no
/// answer within [`reconnect::PROBE_TIMEOUT`] (or none at all).
async fn probe(url: &str) -> Option<Answer> {
    // One controller for both ends of the probe: the deadline, and closing a 200 at once.
    let controller = AbortController::new().ok();
    let signal = controller.as_ref().map(AbortController::signal);
    let deadline = controller.clone().map(|controller| {
        let millis = u32::try_from(reconnect::PROBE_TIMEOUT.as_millis()).unwrap_or(u32::MAX);
        Timeout::new(millis, move || controller.abort())
    });
    let response = http::fetch("GET", url, None, signal.as_ref()).await?;
    let status = response.status();
    if status == 200 {
        // The probe must not stay open next to the stream it stands in for (see the module's
        // documentation): abort without reading, wait for the body to be cancelled (at once,
        // since the abort errored it), then let the event loop turn before the caller opens the
        // `EventSource`.
        if let Some(controller) = &controller {
            controller.abort();
        }
        if let Some(body) = response.body() {
            let _ = JsFuture::from(body.cancel()).await;
        }
        drop(deadline);
        gloo_timers::future::sleep(Duration::ZERO).await;
        return Some(Answer { status, retry_after: None, reason: String::new() });
    }
    let retry_after = http::retry_after_wait(&response);
    // Still under the deadline: a body that never ends is cut off, and reads as empty.
    let reason = http::text(&response).await;
    drop(deadline);
    Some(Answer { status, retry_after, reason })
}

fn with_last_event_id(url: &str, last_seq: Option<u64>) -> String {
    match last_seq {
        Some(seq) => format!("{url}&last_event_id={seq}"),
        None => url.to_owned(),
    }
}
