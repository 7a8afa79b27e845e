//! The conversation: messages in `seq` order, with inline notices (joins, leaves, lost history).
//! [`Timeline`] (`crate::model::timeline`) is the data behind it. The list is keyed (`<For>`), so a
//! new message renders its own row and nothing else; each row formats its times once. Messages are rendered as text nodes, never as HTML: whatever
//! people type, it cannot become markup; only `http(s)://` addresses become links
//! ([`super::links`]).
//!
//! The list follows new messages while the reader is at its bottom ([`follow`]). Someone who
//! scrolled up to read is left where they are, and a "N new messages" button takes them down
//! when they want. Scrolling to the top reads the room's history back, a page at a time
//! ([`scroll_back`]); far up, "Jump to the newest" takes the reader back down.

mod follow;
mod scroll_back;

use super::{
    links::{Piece, split_links},
    truth,
};
use crate::{
    model::{ChatSignals, Line, Notice, ScrollBack, Shown, Timeline, time, time::Clock},
    protocol::{RoomName, User, UserId},
};
use follow::BottomFollower;
use leptos::{either::Either, html, prelude::*, wasm_bindgen::JsCast, web_sys};
use scroll_back::Reader;

/// How often relative times ("2 min ago") are brought up to date.
const CLOCK_TICK: std::time::Duration = std::time::Duration::from_secs(20);

/// One room's conversation list, its "new messages" and "jump to the newest" buttons.
#[component]
pub fn MessageList(
    room: RoomName,
    /// Written too: pages read back go into it.
    timeline: RwSignal<Timeline>,
    scroll_back: RwSignal<ScrollBack>,
    #[prop(into)] me: Signal<Option<User>>,
    /// The first message that is new since the viewer last left this room, if any: a divider
    /// goes above it.
    #[prop(into)]
    first_new: Signal<Option<u64>>,
) -> impl IntoView {
    let list: NodeRef<html::Ol> = NodeRef::new();
    let clock = Clock::expect();
    let now = ticking_now(clock);
    // Who "me" is does not change while a message is shown: a new name is a new id, and messages
    // already shown stay the viewer's own.
    let my_id = move || me.with_untracked(|me| me.as_ref().map(|me| me.id.clone()));
    let follower = BottomFollower::new(list, timeline.into(), move |author| my_id().as_ref() == Some(author));
    let reader = Reader::new(list, room, timeline, scroll_back);
    // A burst of history (a stream's first, or a page read back) is not news to announce.
    let history_arriving = use_context::<ChatSignals>().map(|chat| chat.history_arriving);
    bring_into_view_when_asked(list);
    let busy = move || {
        history_arriving.is_some_and(|arriving| arriving.get()) || scroll_back.with(|state| state.loading)
    };

    view! {
        <div class="messages">
            // The log region, not the list, is what a screen reader follows: `role="log"` may
            // not sit on an `<ol>` (its items would lose their list), and `aria-relevant`
            // "additions" announces new rows only, never a row's text changing, so the
            // relative times ticking in it ("1 min ago") are not read out again.
            <div
                class="message-log"
                role="log"
                aria-live="polite"
                aria-relevant="additions"
                aria-label="Messages"
                aria-busy=move || truth(busy())
            >
            <ol
                data-testid="message-list"
                class="message-list"
                node_ref=list
                aria-label="Messages"
                tabindex="0"
                on:scroll=move |_| {
                    follower.on_scroll();
                    reader.on_scroll(follower);
                }
            >
                {move || reader.status()}
                <For each=move || timeline.with(Timeline::rows) key=|row| row.key let:row>
                    {match row.line {
                        Line::Message(shown) => {
                            let own = my_id().as_ref() == Some(&shown.message.id);
                            let seq = shown.message.seq;
                            let new = Signal::derive(move || first_new.get() == Some(seq));
                            Either::Left(message_item(shown, own, row.continued, new, now, clock))
                        }
                        Line::Notice(notice) => Either::Right(notice_item(notice)),
                    }}
                </For>
            </ol>
            </div>
            {move || {
                let count = follower.unseen();
                (count > 0)
                    .then(|| {
                        view! {
                            <button
                                type="button"
                                data-testid="new-messages"
                                class="new-messages"
                                on:click=move |_| follower.jump_to_bottom()
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
            {move || {
                (reader.far_up() && follower.unseen() == 0)
                    .then(|| {
                        view! {
                            <button
                                type="button"
                                data-testid="jump-to-newest"
                                class="new-messages"
                                on:click=move |_| reader.jump_to_newest(follower)
                            >
                                "Jump to the newest"
                                <span aria-hidden="true">" ↓"</span>
                            </button>
                        }
                    })
            }}
        </div>
    }
}

/// The time relative times are measured against: the clock's now, moved on every [`CLOCK_TICK`]
/// while the list is shown. The timer is started by an effect, so only ever in the browser
/// (on the server the inert clock stands still), and cleared with the list.
fn ticking_now(clock: Clock) -> ReadSignal<f64> {
    let now = RwSignal::new(clock.now.run(()));
    Effect::new(move |_| {
        let tick = set_interval_with_handle(move || now.set(clock.now.run(())), CLOCK_TICK).ok();
        on_cleanup(move || {
            if let Some(tick) = tick {
                tick.clear();
            }
        });
    });
    now.read_only()
}

/// A join, a leave, a new name or lost history, as one muted line.
fn notice_item(notice: Notice) -> impl IntoView {
    let (testid, class, text) = match notice {
        Notice::Joined(name) => ("notice", "notice", format!("{name} joined")),
        Notice::Left(name) => ("notice", "notice", format!("{name} left")),
        Notice::Renamed(name) => ("notice", "notice", format!("You are now {name}")),
        Notice::Gap => {
            ("gap-notice", "notice gap", "Some older messages are no longer available.".to_owned())
        }
    };
    view! { <li data-testid=testid class=class>{text}</li> }
}

/// A message asked for elsewhere (a notification clicked: `ChatSignals::show_message`) is
/// scrolled into view, marked and focused once its row is there; the ask is then done with.
fn bring_into_view_when_asked(list: NodeRef<html::Ol>) {
    let Some(chat) = use_context::<ChatSignals>() else { return };
    Effect::new(move |_| {
        let Some(seq) = chat.show_message.get() else { return };
        let Some(list) = list.get() else { return };
        if let Ok(Some(row)) = list.query_selector(&format!("li[data-seq=\"{seq}\"]")) {
            let _ = row.set_attribute("tabindex", "-1");
            let _ = row.set_attribute("data-highlight", "true");
            row.scroll_into_view();
            if let Ok(row) = row.dyn_into::<web_sys::HtmlElement>() {
                let _ = row.focus();
            }
        }
        chat.show_message.set(None);
    });
}

/// One message: author and time (visually hidden when it continues a group, but still read
/// out), and the text, which keeps its line breaks (CSS `pre-wrap`) and links its addresses.
/// Its time was parsed once, when it was added; it is formatted once, here.
fn message_item(
    shown: Shown,
    own: bool,
    continued: bool,
    new: Signal<bool>,
    now: ReadSignal<f64>,
    clock: Clock,
) -> impl IntoView {
    let Shown { message, at } = shown;
    let (exact, date) =
        at.map_or_else(Default::default, |at| (clock.local.run((at, true)), clock.local.run((at, false))));
    let when = move || match at {
        Some(at) => time::ago(at, now.get()).map_or_else(|| date.clone(), |ago| clock.relative.run(ago)),
        None => String::new(),
    };
    // The first new message starts a group of its own below the divider: its author shows.
    let continued = move || continued && !new.get();
    let group_title = {
        let exact = exact.clone();
        move || continued().then(|| exact.clone())
    };
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
        {move || new.get().then(|| {
            view! {
                <li data-testid="new-divider" class="new-divider">
                    <span>"New since you were last here"</span>
                </li>
            }
        })}
        <li
            data-testid="message"
            class="message"
            class:own=own
            class:continued=continued
            data-seq=message.seq.to_string()
            data-own=truth(own)
            // A grouped message shows its time on hover (the tooltip), and when it has the
            // focus: `-1` lets a tap focus it without adding a Tab stop per message.
            tabindex=move || continued().then_some("-1")
            title=group_title
        >
            <div class="message-meta">
                <span class=avatar_class(&message.id) aria-hidden="true">{initial(&name)}</span>
                <span data-testid="message-author" class="author">{name}</span>
                // What ticks is hidden from screen readers; they read the exact time, which
                // never changes.
                <time data-testid="message-time" datetime=message.ts.clone() title=exact.clone() aria-hidden="true">
                    {when}
                </time>
                <span class="sr-only">{exact}</span>
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

    #[test]
    fn avatars_keep_their_colour_and_initial() {
        let id = UserId::parse("abc").unwrap();
        assert_eq!(avatar_class(&id), avatar_class(&id));
        assert!(avatar_class(&id).starts_with("avatar c"));
        assert_eq!(initial("élodie"), "É");
        assert_eq!(initial(""), "");
    }
}
