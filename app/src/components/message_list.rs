//! The conversation: messages in `seq` order, with inline notices (joins, leaves, lost history).
//! [`Timeline`] is the data behind it, plain Rust so its ordering and de-duplication are tested
//! without a browser. Messages are rendered as text nodes, never as HTML: whatever people type,
//! it cannot become markup.

use crate::protocol::{ChatMessage, User, UserName};
use leptos::{html, prelude::*};

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

/// The conversation as this browser has seen it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Timeline {
    entries: Vec<TimelineEntry>,
    notices: u64,
    /// The highest `seq` shown, so the usual case (a newer message) is a push.
    last_seq: Option<u64>,
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
        let entry = TimelineEntry { key: EntryKey::Message(seq), entry: Entry::Message(message) };
        if self.last_seq.is_none_or(|last| seq > last) {
            // The usual case: the newest message so far goes at the end.
            self.last_seq = Some(seq);
            self.entries.push(entry);
            return true;
        }
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
        true
    }

    pub fn add_notice(&mut self, notice: Entry) {
        self.notices += 1;
        self.entries.push(TimelineEntry { key: EntryKey::Notice(self.notices), entry: notice });
    }

    pub fn entries(&self) -> &[TimelineEntry] {
        &self.entries
    }
}

/// Renders a message's `ts` (RFC 3339 UTC) as local `HH:MM`. Only the browser knows the local
/// time zone; the server never renders a message (they arrive over the stream), so it shows
/// nothing rather than a time in the wrong zone.
fn local_time(ts: &str) -> String {
    #[cfg(feature = "hydrate")]
    {
        let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_str(ts));
        if date.get_time().is_nan() {
            return String::new();
        }
        format!("{:02}:{:02}", date.get_hours(), date.get_minutes())
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = ts;
        String::new()
    }
}

/// How close to the bottom (in pixels) the reader must be for new messages to scroll the list:
/// someone reading older messages is not yanked away from them.
const STICK_TO_BOTTOM_PX: i32 = 160;

/// The conversation list.
#[component]
pub fn MessageList(
    #[prop(into)] timeline: Signal<Timeline>,
    #[prop(into)] me: Signal<Option<User>>,
) -> impl IntoView {
    let list: NodeRef<html::Ol> = NodeRef::new();
    // Who "me" is does not change while the list is shown (a new join starts a new list).
    let my_id = move || me.with_untracked(|me| me.as_ref().map(|me| me.id.clone()));

    // Follow new entries while the reader is at the bottom. Effects run after the DOM update,
    // so the new entry is already part of `scroll_height`: allow for its height.
    Effect::new(move |previous_len: Option<usize>| {
        let len = timeline.with(|timeline| timeline.entries().len());
        if let Some(list) = list.get() {
            let newest_height = list.last_element_child().map_or(0, |child| child.client_height());
            let distance = list.scroll_height() - list.scroll_top() - list.client_height();
            let first_render = previous_len.is_none();
            let grew = previous_len.is_some_and(|previous| len > previous);
            if first_render || (grew && distance < STICK_TO_BOTTOM_PX + newest_height) {
                list.set_scroll_top(list.scroll_height());
            }
        }
        len
    });

    view! {
        <ol data-testid="message-list" class="message-list" node_ref=list aria-live="polite">
            <For
                each=move || timeline.with(|timeline| timeline.entries().to_vec())
                key=|entry| entry.key
                let:entry
            >
                {match entry.entry {
                    Entry::Message(message) => {
                        let own = my_id().as_ref() == Some(&message.id);
                        view! { <MessageItem message own/> }.into_any()
                    }
                    Entry::Joined(name) => {
                        view! { <li data-testid="notice" class="notice">{format!("{name} joined")}</li> }
                            .into_any()
                    }
                    Entry::Left(name) => {
                        view! { <li data-testid="notice" class="notice">{format!("{name} left")}</li> }
                            .into_any()
                    }
                    Entry::Gap => {
                        view! {
                            <li data-testid="gap-notice" class="notice gap">
                                "Some older messages are no longer available."
                            </li>
                        }
                            .into_any()
                    }
                }}
            </For>
        </ol>
    }
    .into_any()
}

/// One message: author, local time and the text, which keeps its line breaks (CSS `pre-wrap`).
#[component]
fn MessageItem(message: ChatMessage, own: bool) -> impl IntoView {
    let time = local_time(&message.ts);
    view! {
        <li
            data-testid="message"
            class="message"
            class:own=own
            data-seq=message.seq.to_string()
            data-own=if own { "true" } else { "false" }
        >
            <div class="message-meta">
                <span data-testid="message-author" class="author">{message.name.to_string()}</span>
                <time data-testid="message-time" datetime=message.ts.clone()>{time}</time>
            </div>
            <p data-testid="message-text" class="text">{message.message.to_string()}</p>
        </li>
    }
    .into_any()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{MessageText, UserId};

    fn message(seq: u64) -> ChatMessage {
        ChatMessage {
            id: UserId::parse("a").unwrap(),
            name: UserName::parse("Ann").unwrap(),
            message: MessageText::parse(&format!("message {seq}")).unwrap(),
            seq,
            ts: "2026-11-24T10:00:00Z".into(),
        }
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
}
