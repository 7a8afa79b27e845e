//! Following the bottom of the message list: while the reader is at the bottom, new messages
//! (and always one's own) scroll into view; someone who scrolled up to read is left where they
//! are, and the messages that arrive meanwhile are counted for the "N new messages" button.
//!
//! The list can also shrink without any scroll (the composer grows, the window or an on-screen
//! keyboard takes room); a `ResizeObserver` keeps a reader who was at the bottom there.
//!
//! The same code builds for the server and the browser, with no `hydrate` gate: the list's
//! [`NodeRef`] is never filled on the server, effects never run there, and the one thing only
//! the browser has, the `ResizeObserver`, is asked for through the page's [`ResizeWatch`]
//! (inert on the server).

use crate::{
    model::{ResizeWatch, Timeline},
    protocol::UserId,
};
use leptos::{html, prelude::*, web_sys};

/// How close to the bottom (in pixels) the reader must be for new messages to scroll the list.
const AT_BOTTOM_PX: i32 = 40;

/// Keeps one scrolling list at its bottom while the reader is there. Copying it is shallow:
/// every field is a handle, so the list's event handlers each hold one.
#[derive(Clone, Copy)]
pub struct BottomFollower {
    list: NodeRef<html::Ol>,
    /// Whether the reader is at the bottom, so new messages should follow. Scroll events come a
    /// frame late, after whatever else changed meanwhile (messages added below, a resize), so
    /// only a move up takes the reader away from the bottom, and our own scrolling to the
    /// bottom says so at once.
    at_bottom: StoredValue<bool>,
    /// Where the list was at the last `scroll` event, to tell a move up from one down.
    last_top: StoredValue<i32>,
    /// Messages that arrived while the reader was scrolled up.
    unseen: RwSignal<u64>,
}

impl BottomFollower {
    /// Follows `list`, which shows `timeline`: new rows scroll into view while the reader is at
    /// the bottom, and always those of `is_mine`'s author; otherwise they are counted.
    pub fn new(
        list: NodeRef<html::Ol>,
        timeline: Signal<Timeline>,
        is_mine: impl Fn(&UserId) -> bool + 'static,
    ) -> Self {
        let follower = Self {
            list,
            at_bottom: StoredValue::new(true),
            last_top: StoredValue::new(0),
            unseen: RwSignal::new(0),
        };
        Effect::new(move |previous: Option<u64>| {
            let (added, own) = timeline.with(|timeline| {
                let (added, author) = timeline.added();
                (added, author.is_some_and(&is_mine))
            });
            follower.on_added(previous, added, own);
            added
        });
        let resizes = ResizeWatch::expect();
        Effect::new(move |_| {
            if let Some(list) = list.get() {
                // The watch ends when this effect runs again or goes with the list. `try_`: a
                // resize can be reported while the list is being taken down.
                let on_resize = Callback::new(move |()| {
                    if follower.at_bottom.try_get_value() == Some(true)
                        && let Some(Some(list)) = follower.list.try_get_untracked()
                    {
                        follower.pin_to_bottom(&list);
                    }
                });
                resizes.watch.run((list.into(), on_resize));
            }
        });
        follower
    }

    /// How many messages arrived while the reader was scrolled up (tracked).
    pub fn unseen(self) -> u64 {
        self.unseen.get()
    }

    /// The reader scrolled: at (or near) the bottom the count of unseen messages goes.
    pub fn on_scroll(self) {
        let Some(list) = self.list.get_untracked() else { return };
        let top = list.scroll_top();
        let moved_up = top < self.last_top.get_value();
        self.last_top.set_value(top);
        let near = list.scroll_height() - top - list.client_height() <= AT_BOTTOM_PX;
        let bottom = near || (!moved_up && self.at_bottom.get_value());
        self.at_bottom.set_value(bottom);
        if bottom && self.unseen.get_untracked() > 0 {
            self.unseen.set(0);
        }
    }

    /// Whether the reader is at the bottom, as far as the list knows.
    pub fn is_at_bottom(self) -> bool {
        self.at_bottom.get_value()
    }

    /// The reader asked for the newest messages ("N new messages").
    pub fn jump_to_bottom(self) {
        self.unseen.set(0);
        self.scroll_to_bottom();
    }

    /// The timeline has now `added` rows in all, `previous` at the last look; `own` when the
    /// newest is the reader's own.
    fn on_added(self, previous: Option<u64>, added: u64, own: bool) {
        match on_added(previous, added, self.at_bottom.get_value(), own) {
            OnAdded::FollowToBottom => {
                self.unseen.set(0);
                self.scroll_to_bottom();
            }
            OnAdded::CountUnseen(new) => self.unseen.update(|unseen| *unseen += new),
            OnAdded::Nothing => {}
        }
    }

    /// Scrolls to the bottom once the browser has laid out what was just added.
    fn scroll_to_bottom(self) {
        request_animation_frame(move || {
            if let Some(list) = self.list.get_untracked() {
                self.pin_to_bottom(&list);
            }
        });
    }

    fn pin_to_bottom(self, list: &web_sys::Element) {
        list.set_scroll_top(list.scroll_height());
        // `try_`: a resize can be reported while the list is being taken down.
        let _ = self.last_top.try_set_value(list.scroll_top());
        let _ = self.at_bottom.try_set_value(true);
    }
}

/// What a change of the timeline asks of the list.
#[derive(Debug, PartialEq, Eq)]
enum OnAdded {
    /// Scroll to the bottom, with nothing left unseen.
    FollowToBottom,
    /// This many more messages arrived out of the reader's sight.
    CountUnseen(u64),
    Nothing,
}

/// The rule, apart from the DOM: the timeline has now `added` rows in all, `previous` at the
/// last look (`None` the first time, and fewer than before when it started over, as on a new
/// join); the reader is `at_bottom` or not; `own` when the newest row is the reader's own.
fn on_added(previous: Option<u64>, added: u64, at_bottom: bool, own: bool) -> OnAdded {
    let new = previous.map_or(0, |previous| added.saturating_sub(previous));
    let reset = previous.is_none_or(|previous| added < previous);
    if reset || at_bottom || (new > 0 && own) {
        OnAdded::FollowToBottom
    } else if new > 0 {
        OnAdded::CountUnseen(new)
    } else {
        OnAdded::Nothing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_at_the_bottom_follows_new_messages() {
        assert_eq!(on_added(Some(5), 7, true, false), OnAdded::FollowToBottom);
    }

    #[test]
    fn a_reader_who_scrolled_up_gets_new_messages_counted() {
        assert_eq!(on_added(Some(5), 8, false, false), OnAdded::CountUnseen(3));
        assert_eq!(on_added(Some(5), 5, false, false), OnAdded::Nothing);
    }

    #[test]
    fn ones_own_message_is_followed_from_anywhere() {
        assert_eq!(on_added(Some(5), 6, false, true), OnAdded::FollowToBottom);
    }

    #[test]
    fn a_first_look_or_a_timeline_that_started_over_goes_to_the_bottom() {
        assert_eq!(on_added(None, 40, false, false), OnAdded::FollowToBottom);
        assert_eq!(on_added(Some(40), 0, false, false), OnAdded::FollowToBottom);
    }
}
