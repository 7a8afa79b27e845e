//! The stream: one `EventSource` on `/sse?id=…&name=…`, whose named events are decoded with the
//! protocol's own [`ServerEvent::decode`] and applied to the page ([`super::state`]).
//!
//! The browser reconnects an `EventSource` by itself after a dropped stream, sending
//! `Last-Event-ID`; but it gives up for good on any answer that is not a 200 stream (a 409, a
//! 503). Then we reconnect by hand, with backoff (1 s, 2 s, 4 s … 15 s). Because the
//! `EventSource` API hides the answer's status and body, each attempt first probes the same URL
//! with `fetch`: a 200 is aborted at once and the `EventSource` reopened with `last_event_id`
//! (it cannot set headers); a 409 is shown and ends the retries; a 400 goes back to the join
//! form; a 503 waits as long as its `Retry-After` says.
//!
//! A patient start (after this page let go of another id, see `super::Session::rename`) probes
//! first and takes a 409 as "not yet" for a while, since the server keeps the old id for its
//! leave grace period and refuses this browser a second one until then.

use super::{http, identity, state, with_reason};
use crate::{
    components::{ChatSignals, ConnectionState, capitalised},
    protocol::{ServerEvent, User},
};
use leptos::{logging, prelude::*};
use std::{
    cell::{Cell, RefCell},
    rc::{Rc, Weak},
    time::Duration,
};
use wasm_bindgen::{JsCast, closure::Closure};
use web_sys::{AbortController, Event, EventSource, MessageEvent};

/// The first wait before reconnecting by hand; it doubles per failed attempt up to the maximum.
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(15);
/// A `Retry-After` longer than this is taken as this: someone will be looking at the page.
const RETRY_AFTER_MAX: Duration = Duration::from_secs(300);
/// How long a patient start takes a 409 as "not yet", and how often it asks again meanwhile.
/// The server's leave grace period is 3 s by default.
const PATIENCE_MS: f64 = 30_000.0;
const PATIENT_RETRY: Duration = Duration::from_millis(400);

/// Where a new connection starts.
pub struct Start {
    /// The last `seq` this page has, so a new stream continues after it instead of sending
    /// recent history again.
    pub last_seq: Option<u64>,
    /// Whether a 409 may just mean that the server still holds the id this page let go of.
    pub patient: bool,
}

/// An open (or reopening) stream for one joined user. Dropping it closes the stream and stops
/// any reconnect in progress.
pub struct Connection {
    inner: Rc<Inner>,
}

impl Connection {
    /// Opens the stream for `me` (the page already shows the `connecting` state).
    pub fn open(chat: ChatSignals, me: User, start: Start) -> Self {
        let url = format!(
            "/sse?id={}&name={}",
            String::from(js_sys::encode_uri_component(me.id.as_str())),
            String::from(js_sys::encode_uri_component(me.name.as_str())),
        );
        let inner = Rc::new(Inner {
            chat,
            url,
            stopped: Cell::new(false),
            source: RefCell::new(None),
            failures: Cell::new(0),
            reconnecting: Cell::new(false),
            last_seq: Cell::new(start.last_seq),
            patient_until: Cell::new(if start.patient { js_sys::Date::now() + PATIENCE_MS } else { 0.0 }),
        });
        if start.patient {
            Inner::start_reconnecting(&inner, Duration::ZERO, ConnectionState::Connecting);
        } else {
            // Without a `last_event_id` the server starts with recent history.
            Inner::connect(&inner, start.last_seq);
        }
        Self { inner }
    }

    /// The newest `seq` that came over the stream, where another stream would continue.
    pub fn last_seq(&self) -> Option<u64> {
        self.inner.last_seq.get()
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.inner.stopped.set(true);
        // Taken out before it is dropped, so nothing is borrowed while the stream closes.
        let source = self.inner.source.borrow_mut().take();
        drop(source);
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
    /// Attempts that failed since the stream was last live: the backoff's exponent.
    failures: Cell<u32>,
    /// Whether a reconnect task is running, so two errors never start two.
    reconnecting: Cell<bool>,
    /// The newest `seq` that came over the stream: where a stream opened by hand continues
    /// (`last_event_id`). Not the newest shown: the answer to our own `POST` may be newer than
    /// a message the stream has not delivered yet, and continuing after it would skip that one.
    last_seq: Cell<Option<u64>>,
    /// Until when (`Date.now()`) a 409 means "not yet" rather than "no": see [`Start::patient`].
    patient_until: Cell<f64>,
}

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

    fn on_event(&self, name: &'static str, event: &Event) {
        if self.stopped.get() {
            return;
        }
        let Some(data) = event.dyn_ref::<MessageEvent>().and_then(|event| event.data().as_string()) else {
            return;
        };
        self.mark_live();
        match ServerEvent::decode(name, &data) {
            Ok(event) => {
                if let Some(seq) = event.sse_id() {
                    self.last_seq.set(self.last_seq.get().max(Some(seq)));
                }
                state::apply(&self.chat, event);
            }
            // One malformed event is no reason to drop the stream: skip it and say so.
            Err(error) => logging::warn!("ssechat: ignoring an event: {error}"),
        }
    }

    /// The stream is open (its `open` event, or any event, came in).
    fn mark_live(&self) {
        self.failures.set(0);
        // From now on a 409 is a real refusal.
        self.patient_until.set(0.0);
        self.set_status(ConnectionState::Live);
    }

    fn set_status(&self, status: ConnectionState) {
        if self.chat.status.get_untracked() != status {
            self.chat.status.set(status);
        }
    }

    fn on_error(this: &Rc<Self>) {
        if this.stopped.get() {
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

    /// Starts the reconnect task unless one runs. It runs after this handler returns, which
    /// matters: it drops the closed `EventSource` and with it the closure calling us now.
    fn reconnect_by_hand(this: &Rc<Self>) {
        if this.stopped.get() || this.reconnecting.get() {
            return;
        }
        let wait = this.next_backoff();
        Self::start_reconnecting(this, wait, ConnectionState::Reconnecting);
    }

    fn start_reconnecting(this: &Rc<Self>, first_wait: Duration, status: ConnectionState) {
        if this.stopped.get() || this.reconnecting.replace(true) {
            return;
        }
        this.set_status(status);
        let inner = Rc::clone(this);
        wasm_bindgen_futures::spawn_local(async move {
            let closed = inner.source.borrow_mut().take();
            drop(closed);
            Self::reconnect(&inner, first_wait).await;
            inner.reconnecting.set(false);
        });
    }

    async fn reconnect(this: &Rc<Self>, first_wait: Duration) {
        let mut wait = first_wait;
        loop {
            gloo_timers::future::sleep(wait).await;
            if this.stopped.get() {
                return;
            }
            let last_seq = this.last_seq.get();
            let probe = probe(&with_last_event_id(&this.url, last_seq)).await;
            if this.stopped.get() {
                return;
            }
            wait = match probe {
                Probe::Open => {
                    Self::connect(this, last_seq);
                    return;
                }
                Probe::Refused { status: 409, .. } if js_sys::Date::now() < this.patient_until.get() => {
                    PATIENT_RETRY
                }
                Probe::Refused { status, reason } => {
                    this.refuse(status, &reason);
                    return;
                }
                Probe::Invalid(reason) => {
                    this.back_to_join_form(&reason);
                    return;
                }
                Probe::RetryAfter(Some(delay)) => delay.min(RETRY_AFTER_MAX),
                Probe::RetryAfter(None) | Probe::Failed => this.next_backoff(),
            };
        }
    }

    /// The next wait: 1 s, 2 s, 4 s … capped at 15 s.
    fn next_backoff(&self) -> Duration {
        let failures = self.failures.get();
        self.failures.set(failures.saturating_add(1));
        BACKOFF_FIRST.saturating_mul(1 << failures.min(8)).min(BACKOFF_MAX)
    }

    /// A refusal retrying cannot change (409: the id or name is held in another browser).
    fn refuse(&self, status: u16, reason: &str) {
        self.stopped.set(true);
        let sentence = if status == 409 {
            "This name is already in use in another browser, so this page cannot join the chat \
             with it."
        } else {
            "The server refused this connection."
        };
        self.chat.connection_error.set(Some(with_reason(sentence, reason)));
        self.set_status(ConnectionState::Refused);
    }

    /// The server refused the id or name as invalid (400): forget the name, so a reload does not
    /// try it again, and ask for another.
    fn back_to_join_form(&self, reason: &str) {
        self.stopped.set(true);
        identity::forget_name();
        let reason = reason.trim();
        let sentence = if reason.is_empty() {
            "The server refused this name; choose another.".to_owned()
        } else {
            capitalised(reason)
        };
        self.chat.join_error.set(Some(sentence));
        self.chat.me.set(None);
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

/// What a probe of the stream's URL said.
enum Probe {
    /// 200: the stream would open.
    Open,
    /// 409 or another 4xx, with the server's reason: retrying will not help.
    Refused { status: u16, reason: String },
    /// 400: the id or name is invalid.
    Invalid(String),
    /// 503: busy; retry after the server's delay, if it gave one.
    RetryAfter(Option<Duration>),
    /// No answer, or a server error: retry with backoff.
    Failed,
}

/// Asks the server whether the stream would open, and if not, why.
async fn probe(url: &str) -> Probe {
    // The probe must not stay open next to the stream it stands in for.
    let controller = AbortController::new().ok();
    let signal = controller.as_ref().map(AbortController::signal);
    let Some(response) = http::fetch("GET", url, None, signal.as_ref()).await else {
        return Probe::Failed;
    };
    let status = response.status();
    if status == 200 {
        if let Some(controller) = &controller {
            controller.abort();
        }
        return Probe::Open;
    }
    let retry_after = http::retry_after(&response).map(|secs| Duration::from_secs(secs.into()));
    let reason = http::text(&response).await;
    match status {
        400 => Probe::Invalid(reason),
        503 => Probe::RetryAfter(retry_after),
        401..=499 => Probe::Refused { status, reason },
        _ => Probe::Failed,
    }
}

fn with_last_event_id(url: &str, last_seq: Option<u64>) -> String {
    match last_seq {
        Some(seq) => format!("{url}&last_event_id={seq}"),
        None => url.to_owned(),
    }
}
