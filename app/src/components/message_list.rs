//! The conversation: messages in `seq` order, with inline notices (joins, leaves, lost history).
//! [`Timeline`] (`crate::model::timeline`) is the data behind it. The list is keyed (`<For>`), so a
//! new message renders its own row and nothing else; each row formats its times once. Messages are rendered as text nodes, never as HTML: whatever
//! people type, it cannot become markup; only `http(s)://` addresses become links
//! ([`super::links`]).
//!
//! The list follows new messages while the reader is at its bottom. Someone who scrolled up to
//! read is left where they are, and a "N new messages" button takes them down when they want.

use super::links::{Piece, split_links};
use crate::{
    model::{Line, Notice, Shown, Timeline, time, time::Clock},
    protocol::{User, UserId},
};
use leptos::{either::Either, html, prelude::*};

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
    let clock = Clock::expect();
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
        now.set(clock.now.run(()));
        let tick = set_interval_with_handle(move || now.set(clock.now.run(())), CLOCK_TICK).ok();
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
                    {match row.line {
                        Line::Message(shown) => {
                            let own = my_id().as_ref() == Some(&shown.message.id);
                            Either::Left(message_item(shown, own, row.continued, now, clock))
                        }
                        Line::Notice(notice) => Either::Right(notice_item(notice)),
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

/// One message: author and time (visually hidden when it continues a group, but still read
/// out), and the text, which keeps its line breaks (CSS `pre-wrap`) and links its addresses.
/// Its time was parsed once, when it was added; it is formatted once, here.
fn message_item(shown: Shown, own: bool, continued: bool, now: RwSignal<f64>, clock: Clock) -> impl IntoView {
    let Shown { message, at } = shown;
    let (exact, date) =
        at.map_or_else(Default::default, |at| (clock.local.run((at, true)), clock.local.run((at, false))));
    let when = move || match at {
        Some(at) => time::ago(at, now.get()).map_or_else(|| date.clone(), |ago| clock.relative.run(ago)),
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

    #[test]
    fn avatars_keep_their_colour_and_initial() {
        let id = UserId::parse("abc").unwrap();
        assert_eq!(avatar_class(&id), avatar_class(&id));
        assert!(avatar_class(&id).starts_with("avatar c"));
        assert_eq!(initial("élodie"), "É");
        assert_eq!(initial(""), "");
    }
}
