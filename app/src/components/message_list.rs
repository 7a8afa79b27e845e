//! The conversation: messages in `seq` order, with inline notices (joins, leaves, lost history).
//! [`Timeline`] is the data behind it, plain Rust so its ordering, de-duplication and grouping
//! are tested without a browser. Messages are rendered as text nodes, never as HTML: whatever
//! people type, it cannot become markup; only `http(s)://` addresses become links
//! ([`super::links`]).
//!
//! The list follows new messages while the reader is at its bottom. Someone who scrolled up to
//! read is left where they are, and a "N new messages" button takes them down when they want.

use super::{
    links::{Piece, split_links},
    time,
};
use crate::protocol::{ChatMessage, User, UserId, UserName};
use leptos::{either::Either, html, prelude::*};

/// What one line of the conversation is.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(
    not(feature = "hydrate"),
    allow(dead_code, reason = "notices come from crate::client, which only the browser build compiles")
)]
pub enum Entry {
    Message(ChatMessage),
    Joined(UserName),
    Left(UserName),
    /// This browser now speaks under another name.
    Renamed(UserName),
    /// `history-gap`: messages we asked for are no longer retained.
    Gap,
}

/// Keys for `<For>`: a message is known by its `seq`; notices have no identity of their own, so
/// they are numbered as they arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKey {
    Message(u64),
    Notice(u64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineEntry {
    pub key: EntryKey,
    pub entry: Entry,
}

/// The most entries kept: past it the oldest go, so a tab left open for days stays fast.
const MAX_ENTRIES: usize = 1000;

/// The conversation as this browser has seen it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Timeline {
    entries: Vec<TimelineEntry>,
    notices: u64,
    /// The highest `seq` shown, so the usual case (a newer message) is a push.
    last_seq: Option<u64>,
    /// Messages added so far (never decreases), so the view can tell how many are new.
    added: u64,
    /// The author of the message added last.
    last_author: Option<UserId>,
}

#[cfg_attr(
    not(feature = "hydrate"),
    allow(dead_code, reason = "fed by crate::client, which only the browser build compiles")
)]
impl Timeline {
    /// Adds a message unless its `seq` is already shown (a replay after a reconnect, or the
    /// answer to our own `POST` racing its broadcast). Messages stay in `seq` order; notices
    /// stay where they arrived. Returns whether the message was new.
    pub fn add_message(&mut self, message: ChatMessage) -> bool {
        let seq = message.seq;
        let author = message.id.clone();
        let entry = TimelineEntry { key: EntryKey::Message(seq), entry: Entry::Message(message) };
        if self.last_seq.is_none_or(|last| seq > last) {
            // The usual case: the newest message so far goes at the end.
            self.last_seq = Some(seq);
            self.push(entry);
        } else {
            let mut insert_at = self.entries.len();
            for (index, existing) in self.entries.iter().enumerate() {
                if let EntryKey::Message(existing_seq) = existing.key {
                    if existing_seq == seq {
                        return false;
                    }
                    if existing_seq > seq {
                        insert_at = index;
                        break;
                    }
                }
            }
            self.entries.insert(insert_at, entry);
        }
        self.added += 1;
        self.last_author = Some(author);
        true
    }

    pub fn add_notice(&mut self, notice: Entry) {
        self.notices += 1;
        self.push(TimelineEntry { key: EntryKey::Notice(self.notices), entry: notice });
    }

    fn push(&mut self, entry: TimelineEntry) {
        if self.entries.len() >= MAX_ENTRIES {
            self.entries.remove(0);
        }
        self.entries.push(entry);
    }

    #[cfg(test)]
    pub fn entries(&self) -> &[TimelineEntry] {
        &self.entries
    }

    /// How many messages were ever added, and by whom the last one was.
    pub fn added(&self) -> (u64, Option<&UserId>) {
        (self.added, self.last_author.as_ref())
    }

    /// The entries as the list shows them: each message knows whether it continues a group
    /// (same author as the message just before it, within [`time::GROUP_WINDOW_MS`]), which
    /// hides its author line.
    pub fn rows(&self) -> Vec<Row> {
        let mut previous: Option<(&UserId, Option<f64>)> = None;
        self.entries
            .iter()
            .map(|entry| {
                let continued = match &entry.entry {
                    Entry::Message(message) => {
                        let at = time::parse_ts_ms(&message.ts);
                        let continued = previous.is_some_and(|(author, before)| {
                            author == &message.id
                                && matches!((before, at), (Some(before), Some(at)) if at - before < time::GROUP_WINDOW_MS)
                        });
                        previous = Some((&message.id, at));
                        continued
                    }
                    _ => {
                        previous = None;
                        false
                    }
                };
                Row { key: (entry.key, continued), entry: entry.entry.clone(), continued }
            })
            .collect()
    }
}

/// One line as the list renders it. The key includes `continued`, so a line whose grouping
/// changes (a late message arrived before it) is rendered again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub key: (EntryKey, bool),
    pub entry: Entry,
    pub continued: bool,
}

/// How close to the bottom (in pixels) the reader must be for new messages to scroll the list.
#[cfg(feature = "hydrate")]
const AT_BOTTOM_PX: i32 = 40;

/// How often relative times ("2 min ago") are brought up to date.
#[cfg(feature = "hydrate")]
const CLOCK_TICK: std::time::Duration = std::time::Duration::from_secs(20);

/// The conversation list and its "new messages" button.
#[component]
pub fn MessageList(
    #[prop(into)] timeline: Signal<Timeline>,
    #[prop(into)] me: Signal<Option<User>>,
) -> impl IntoView {
    let list: NodeRef<html::Ol> = NodeRef::new();
    // Messages that arrived while the reader was scrolled up.
    let unseen = RwSignal::new(0u64);
    // The time relative times are measured against, moved on by a timer.
    let now = RwSignal::new(0.0f64);
    // Who "me" is does not change while a message is shown: a new name is a new id, and messages
    // already shown stay the viewer's own.
    let my_id = move || me.with_untracked(|me| me.as_ref().map(|me| me.id.clone()));

    // Whether the reader is at the bottom, so new messages should follow; and where the list was
    // at the last `scroll` event. Scroll events come a frame late, after whatever else changed
    // meanwhile (messages added below, a resize), so only a move up takes the reader away from
    // the bottom, and our own scrolling to the bottom says so at once.
    #[cfg(feature = "hydrate")]
    let at_bottom = StoredValue::new(true);
    #[cfg(feature = "hydrate")]
    let last_top = StoredValue::new(0);
    #[cfg(feature = "hydrate")]
    let pin_to_bottom = move |list: &web_sys::Element| {
        list.set_scroll_top(list.scroll_height());
        // `try_`: a resize can be reported while the list is being taken down.
        let _ = last_top.try_set_value(list.scroll_top());
        let _ = at_bottom.try_set_value(true);
    };
    #[cfg(feature = "hydrate")]
    let scroll_to_bottom = move || {
        // After the browser has laid out what was just added.
        request_animation_frame(move || {
            if let Some(list) = list.get_untracked() {
                pin_to_bottom(&list);
            }
        });
    };
    #[cfg(feature = "hydrate")]
    {
        now.set(time::now_ms());
        let tick = set_interval_with_handle(move || now.set(time::now_ms()), CLOCK_TICK).ok();
        on_cleanup(move || {
            if let Some(tick) = tick {
                tick.clear();
            }
        });

        // Follow new messages while the reader is at the bottom (and always one's own); count
        // them while the reader is not.
        Effect::new(move |previous: Option<u64>| {
            let (added, last_author) = timeline.with(|timeline| {
                let (added, author) = timeline.added();
                (added, author.cloned())
            });
            let new = previous.map_or(0, |previous| added.saturating_sub(previous));
            let reset = previous.is_none_or(|previous| added < previous);
            let own = last_author.is_some() && last_author == my_id();
            if reset || at_bottom.get_value() || (new > 0 && own) {
                unseen.set(0);
                scroll_to_bottom();
            } else if new > 0 {
                unseen.update(|unseen| *unseen += new);
            }
            added
        });
    }

    // The list can shrink without a scroll (the composer grows, the window or an on-screen
    // keyboard takes room): a reader at the bottom stays there.
    #[cfg(feature = "hydrate")]
    {
        let observer = StoredValue::new_local(None::<StickOnResize>);
        Effect::new(move |_| {
            if let Some(element) = list.get() {
                let scroller: web_sys::Element = element.clone().into();
                let callback = wasm_bindgen::closure::Closure::<dyn FnMut()>::new(move || {
                    if at_bottom.try_get_value() == Some(true) {
                        pin_to_bottom(&scroller);
                    }
                });
                let js_function: &js_sys::Function = wasm_bindgen::JsCast::unchecked_ref(callback.as_ref());
                if let Ok(resize) = web_sys::ResizeObserver::new(js_function) {
                    resize.observe(&element);
                    observer.set_value(Some(StickOnResize { observer: resize, _callback: callback }));
                }
            }
        });
    }

    let on_scroll = move |_| {
        #[cfg(feature = "hydrate")]
        if let Some(list) = list.get_untracked() {
            let top = list.scroll_top();
            let moved_up = top < last_top.get_value();
            last_top.set_value(top);
            let near = list.scroll_height() - top - list.client_height() <= AT_BOTTOM_PX;
            let bottom = near || (!moved_up && at_bottom.get_value());
            at_bottom.set_value(bottom);
            if bottom && unseen.get_untracked() > 0 {
                unseen.set(0);
            }
        }
    };
    let show_new = move |_| {
        unseen.set(0);
        #[cfg(feature = "hydrate")]
        scroll_to_bottom();
    };

    view! {
        <div class="messages">
            <ol
                data-testid="message-list"
                class="message-list"
                node_ref=list
                aria-live="polite"
                aria-label="Messages"
                tabindex="0"
                on:scroll=on_scroll
            >
                <For each=move || timeline.with(Timeline::rows) key=|row| row.key let:row>
                    {match row.entry {
                        Entry::Message(message) => {
                            let own = my_id().as_ref() == Some(&message.id);
                            Either::Left(message_item(message, own, row.continued, now))
                        }
                        notice => Either::Right(notice_item(notice)),
                    }}
                </For>
            </ol>
            {move || {
                let count = unseen.get();
                (count > 0)
                    .then(|| {
                        view! {
                            <button
                                type="button"
                                data-testid="new-messages"
                                class="new-messages"
                                on:click=show_new
                            >
                                {if count == 1 {
                                    "1 new message".to_owned()
                                } else {
                                    format!("{count} new messages")
                                }}
                                <span aria-hidden="true">" ↓"</span>
                            </button>
                        }
                    })
            }}
        </div>
    }
}

/// A `ResizeObserver` on the list and the closure it calls; dropped with the list, which stops
/// the observer before the closure goes.
#[cfg(feature = "hydrate")]
struct StickOnResize {
    observer: web_sys::ResizeObserver,
    _callback: wasm_bindgen::closure::Closure<dyn FnMut()>,
}

#[cfg(feature = "hydrate")]
impl Drop for StickOnResize {
    fn drop(&mut self) {
        self.observer.disconnect();
    }
}

/// A join, a leave, a new name or lost history, as one muted line.
fn notice_item(notice: Entry) -> impl IntoView {
    let (testid, class, text) = match notice {
        Entry::Joined(name) => ("notice", "notice", format!("{name} joined")),
        Entry::Left(name) => ("notice", "notice", format!("{name} left")),
        Entry::Renamed(name) => ("notice", "notice", format!("You are now {name}")),
        _ => ("gap-notice", "notice gap", "Some older messages are no longer available.".to_owned()),
    };
    view! { <li data-testid=testid class=class>{text}</li> }
}

/// One message: author and time (visually hidden when it continues a group, but still read
/// out), and the text, which keeps its line breaks (CSS `pre-wrap`) and links its addresses.
fn message_item(message: ChatMessage, own: bool, continued: bool, now: RwSignal<f64>) -> impl IntoView {
    let at = time::parse_ts_ms(&message.ts);
    #[cfg(feature = "hydrate")]
    let (exact, date) =
        at.map_or_else(Default::default, |at| (time::local(at, true), time::local(at, false)));
    #[cfg(not(feature = "hydrate"))]
    let (exact, date) = (String::new(), String::new());
    let when = move || match at {
        Some(at) => time::relative(at, now.get()).unwrap_or_else(|| date.clone()),
        None => String::new(),
    };
    let group_title = continued.then(|| exact.clone());
    let name = message.name.to_string();
    let pieces = split_links(message.message.as_str())
        .into_iter()
        .map(|piece| match piece {
            Piece::Text(text) => Either::Left(text.to_owned()),
            Piece::Link(url) => {
                let (href, url) = (url.to_owned(), url.to_owned());
                Either::Right(view! { <a href=href target="_blank" rel="noopener noreferrer">{url}</a> })
            }
        })
        .collect_view();

    view! {
        <li
            data-testid="message"
            class="message"
            class:own=own
            class:continued=continued
            data-seq=message.seq.to_string()
            data-own=if own { "true" } else { "false" }
            title=group_title
        >
            <div class="message-meta">
                <span class=avatar_class(&message.id) aria-hidden="true">{initial(&name)}</span>
                <span data-testid="message-author" class="author">{name}</span>
                <time data-testid="message-time" datetime=message.ts.clone() title=exact>{when}</time>
            </div>
            <p data-testid="message-text" class="text">{pieces}</p>
        </li>
    }
}

/// The first letter of a name, for avatars.
pub fn initial(name: &str) -> String {
    name.chars().next().map(|c| c.to_uppercase().collect()).unwrap_or_default()
}

/// One of eight avatar colours, the same for an id everywhere.
pub fn avatar_class(id: &UserId) -> String {
    let hash =
        id.as_str().bytes().fold(0u32, |hash, byte| hash.wrapping_mul(31).wrapping_add(u32::from(byte)));
    format!("avatar c{}", hash % 8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::MessageText;

    fn message_by(seq: u64, author: &str, ts: &str) -> ChatMessage {
        ChatMessage {
            id: UserId::parse(author).unwrap(),
            name: UserName::parse(author).unwrap(),
            message: MessageText::parse(&format!("message {seq}")).unwrap(),
            seq,
            ts: ts.into(),
        }
    }

    fn message(seq: u64) -> ChatMessage {
        message_by(seq, "a", "2026-11-24T10:00:00Z")
    }

    fn keys(timeline: &Timeline) -> Vec<EntryKey> {
        timeline.entries().iter().map(|entry| entry.key).collect()
    }

    #[test]
    fn a_replayed_seq_is_shown_once() {
        let mut timeline = Timeline::default();
        assert!(timeline.add_message(message(1)));
        assert!(timeline.add_message(message(2)));
        assert!(!timeline.add_message(message(1)));
        assert!(!timeline.add_message(message(2)));
        assert_eq!(keys(&timeline), [EntryKey::Message(1), EntryKey::Message(2)]);
        assert_eq!(timeline.added().0, 2);
    }

    #[test]
    fn a_late_message_takes_its_place_by_seq() {
        let mut timeline = Timeline::default();
        timeline.add_message(message(1));
        timeline.add_message(message(3));
        timeline.add_message(message(2));
        assert_eq!(keys(&timeline), [EntryKey::Message(1), EntryKey::Message(2), EntryKey::Message(3)]);
        timeline.add_message(message(4));
        assert_eq!(timeline.entries().last().map(|entry| entry.key), Some(EntryKey::Message(4)));
    }

    #[test]
    fn notices_stay_where_they_arrived_and_new_messages_follow_them() {
        let mut timeline = Timeline::default();
        timeline.add_message(message(1));
        timeline.add_notice(Entry::Joined(UserName::parse("Bob").unwrap()));
        timeline.add_message(message(2));
        timeline.add_notice(Entry::Gap);
        assert_eq!(
            keys(&timeline),
            [EntryKey::Message(1), EntryKey::Notice(1), EntryKey::Message(2), EntryKey::Notice(2)]
        );
    }

    #[test]
    fn consecutive_messages_by_one_author_within_minutes_are_grouped() {
        let mut timeline = Timeline::default();
        timeline.add_message(message_by(1, "ann", "2026-11-24T10:00:00Z"));
        timeline.add_message(message_by(2, "ann", "2026-11-24T10:04:00Z"));
        timeline.add_message(message_by(3, "bob", "2026-11-24T10:04:30Z"));
        timeline.add_message(message_by(4, "ann", "2026-11-24T10:05:00Z"));
        timeline.add_message(message_by(5, "ann", "2026-11-24T10:20:00Z"));
        timeline.add_notice(Entry::Joined(UserName::parse("Cleo").unwrap()));
        timeline.add_message(message_by(6, "ann", "2026-11-24T10:20:01Z"));
        let continued: Vec<bool> = timeline.rows().iter().map(|row| row.continued).collect();
        assert_eq!(continued, [false, true, false, false, false, false, false]);
    }

    #[test]
    fn the_oldest_entries_go_past_the_limit() {
        let mut timeline = Timeline::default();
        for seq in 1..=(MAX_ENTRIES as u64 + 5) {
            timeline.add_message(message(seq));
        }
        assert_eq!(timeline.entries().len(), MAX_ENTRIES);
        assert_eq!(timeline.entries()[0].key, EntryKey::Message(6));
        assert_eq!(timeline.added().0, MAX_ENTRIES as u64 + 5);
    }

    #[test]
    fn avatars_keep_their_colour_and_initial() {
        let id = UserId::parse("abc").unwrap();
        assert_eq!(avatar_class(&id), avatar_class(&id));
        assert!(avatar_class(&id).starts_with("avatar c"));
        assert_eq!(initial("élodie"), "É");
        assert_eq!(initial(""), "");
    }
}
