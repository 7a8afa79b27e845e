//! Reading a room's history back: when the reader scrolls near the top of the list, the page of
//! older messages before the oldest shown comes from `GET /messages` (through the page's
//! actions) and goes above, and the list is scrolled by what was added, so what the reader was
//! looking at stays where it was: no jump.
//!
//! Memory stays bounded: the timeline keeps at most `MAX_MESSAGES`, dropping the newest while
//! the reader is far back (then "Jump to the newest" asks for the newest page again), and back
//! at the bottom the pages read back are let go again ([`KEEP_AT_BOTTOM`]).
//!
//! Like the follower, the same code builds for the server and the browser: the list's
//! [`NodeRef`] is never filled on the server, and scroll events never happen there.

use super::follow::BottomFollower;
use crate::{
    model::{ChatActions, ScrollBack, Timeline},
    protocol::RoomName,
};
use leptos::{either::Either, html, prelude::*, wasm_bindgen::JsCast, web_sys};

/// How close to the top (in pixels) the reader must be for the older page to be asked for.
const NEAR_TOP_PX: i32 = 200;
/// Back at the bottom, a list longer than [`TRIM_FROM`] keeps this many of the newest.
const KEEP_AT_BOTTOM: usize = 300;
const TRIM_FROM: usize = 600;
/// Further from the bottom than this many screens, "Jump to the newest" shows.
const FAR_UP_SCREENS: i32 = 3;
/// How many frames reading back waits for the rows it added to be laid out.
const FRAMES_TO_WAIT: u32 = 30;

/// Reads one room's history back into its list. Copying it is shallow.
#[derive(Clone, Copy)]
pub struct Reader {
    list: NodeRef<html::Ol>,
    room: StoredValue<RoomName>,
    timeline: RwSignal<Timeline>,
    state: RwSignal<ScrollBack>,
    far_up: RwSignal<bool>,
    actions: ChatActions,
}

impl Reader {
    pub fn new(
        list: NodeRef<html::Ol>,
        room: RoomName,
        timeline: RwSignal<Timeline>,
        state: RwSignal<ScrollBack>,
    ) -> Self {
        Self {
            list,
            room: StoredValue::new(room),
            timeline,
            state,
            far_up: RwSignal::new(false),
            actions: ChatActions::expect(),
        }
    }

    /// Whether the reader is far from the bottom (tracked).
    pub fn far_up(self) -> bool {
        self.far_up.get()
    }

    /// The line above the oldest message: what scrolling up does, loading, a failure with a way
    /// to try again, or the start of the room. It is one line whatever it says, so a page
    /// starting to load moves nothing.
    pub fn status(self) -> Option<impl IntoView> {
        let ScrollBack { more, loading, error } = self.state.get();
        if self.timeline.with(Timeline::is_empty) {
            return None;
        }
        Some(match error {
            Some(error) if !loading => Either::Left(view! {
                <li data-testid="history-status" class="notice history">
                    <span role="alert">{error}</span>
                    " "
                    <button type="button" class="link" on:click=move |_| self.load_older()>
                        "Try again"
                    </button>
                </li>
            }),
            _ => {
                let text = if loading {
                    "Loading older messages…"
                } else if more {
                    "Scroll up for older messages."
                } else {
                    "This is the start of the room."
                };
                Either::Right(view! { <li data-testid="history-status" class="notice history">{text}</li> })
            }
        })
    }

    /// The list scrolled: near the top the older page is asked for; far up, the way back
    /// down is offered; back at the bottom a long read back is let go.
    pub fn on_scroll(self, follower: BottomFollower) {
        let Some(list) = self.list.get_untracked() else { return };
        let top = list.scroll_top();
        let from_bottom = list.scroll_height() - top - list.client_height();
        let far = from_bottom > FAR_UP_SCREENS * list.client_height().max(1);
        if self.far_up.get_untracked() != far {
            self.far_up.set(far);
        }
        if top <= NEAR_TOP_PX {
            self.load_older();
        } else if follower.is_at_bottom()
            && self.timeline.with_untracked(|timeline| timeline.len() > TRIM_FROM && !timeline.is_detached())
        {
            self.timeline.update(|timeline| {
                timeline.trim_to_newest(KEEP_AT_BOTTOM);
            });
            self.state.update(|state| state.more = true);
        }
    }

    /// Asks for the page before the oldest message shown, unless one is on its way or there is
    /// nothing older.
    pub fn load_older(self) {
        let ScrollBack { more, loading, .. } = self.state.get_untracked();
        let Some(before) = self.timeline.with_untracked(Timeline::oldest_seq) else { return };
        if !more || loading {
            return;
        }
        self.state.update(|state| {
            state.loading = true;
            state.error = None;
        });
        let reply = self.actions.messages.run((self.room.get_value(), Some(before)));
        leptos::task::spawn_local(async move {
            let page = reply.await;
            // Where the message after the oldest stands now (see `second_oldest_seq`): the rows
            // go in above it, and the list scrolls by as much as it moves. (Not measured from the bottom: new
            // messages may arrive there meanwhile.) The list may be gone by now (another room
            // is shown): the page still goes into the room's timeline, which outlives it.
            let steady =
                self.timeline.try_with_untracked(Timeline::second_oldest_seq).flatten().unwrap_or(before);
            let anchor = self.list.try_get_untracked().flatten().and_then(|list| row_offset(&list, steady));
            match page {
                Ok(page) => {
                    let added = self.timeline.try_update(|timeline| timeline.add_older(page.messages));
                    let _ = self.state.try_update(|state| {
                        state.loading = false;
                        state.more = page.more;
                    });
                    if let (Some(anchor), Some(1..)) = (anchor, added) {
                        self.keep_in_place(steady, anchor, FRAMES_TO_WAIT);
                    }
                }
                Err(reason) => {
                    let _ = self.state.try_update(|state| {
                        state.loading = false;
                        state.error = Some(reason);
                    });
                }
            }
        });
    }

    /// Once the rows read back are in, scrolls by as much as the row of message `seq` moved
    /// from `anchor`, so what the reader was looking at stays put. Rows above it were added, so
    /// it must move: until it has (the view may not have caught up with the timeline by the next
    /// frame on a busy machine), this looks again on each frame, `frames` more times.
    fn keep_in_place(self, seq: u64, anchor: i32, frames: u32) {
        request_animation_frame(move || {
            let Some(Some(list)) = self.list.try_get_untracked() else { return };
            match row_offset(&list, seq) {
                Some(now) if now != anchor => list.set_scroll_top(list.scroll_top() + (now - anchor)),
                Some(_) if frames > 0 => self.keep_in_place(seq, anchor, frames - 1),
                _ => {}
            }
        });
    }

    /// "Jump to the newest": down to the bottom, after asking for the newest page again if
    /// reading back let it go.
    pub fn jump_to_newest(self, follower: BottomFollower) {
        self.far_up.set(false);
        if !self.timeline.with_untracked(Timeline::is_detached) {
            follower.jump_to_bottom();
            return;
        }
        let reply = self.actions.messages.run((self.room.get_value(), None));
        leptos::task::spawn_local(async move {
            if let Ok(page) = reply.await {
                let _ = self.timeline.try_update(|timeline| timeline.restart(page.messages));
                let _ = self.state.try_update(|state| state.more = page.more);
                follower.jump_to_bottom();
            }
        });
    }
}

/// How far down its offset parent the row of message `seq` is, if it is shown.
fn row_offset(list: &web_sys::Element, seq: u64) -> Option<i32> {
    let row = list.query_selector(&format!("li[data-seq=\"{seq}\"]")).ok().flatten()?;
    Some(row.dyn_into::<web_sys::HtmlElement>().ok()?.offset_top())
}
