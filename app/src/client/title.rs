//! The browser tab: while the viewer is away from it, messages from others are counted, and the
//! count shows in its title ("(3) ssechat"), so a glance at the tab strip or the task bar says
//! whether anything happened. Away means hidden (another tab in front, the window minimised)
//! or not focused (another window in front of a visible one, as on a second screen). The count
//! goes back to zero as soon as the tab is both visible and focused again.

use crate::model::{ChatSignals, ROOM_NAME};
use leptos::prelude::*;
use wasm_bindgen::{JsCast, closure::Closure};
use web_sys::VisibilityState;

fn document() -> Option<web_sys::Document> {
    web_sys::window()?.document()
}

/// Whether the tab is hidden (another tab in front, the window minimised).
pub fn is_hidden() -> bool {
    document().is_some_and(|document| document.visibility_state() == VisibilityState::Hidden)
}

/// Whether the viewer is away from the page: it is hidden, or its window is not focused.
pub fn is_away() -> bool {
    is_hidden() || document().is_some_and(|document| !document.has_focus().unwrap_or(true))
}

/// Keeps the title in step with `chat.unread`, and clears the count when the page is seen:
/// visible and focused. Called once per page.
pub fn follow_unread(chat: ChatSignals) {
    let Some(doc) = document() else { return };
    let seen = Closure::<dyn FnMut()>::new(move || {
        if !is_away() {
            let _ = chat.unread.try_set(0);
        }
    });
    let _ = doc.add_event_listener_with_callback("visibilitychange", seen.as_ref().unchecked_ref());
    if let Some(window) = web_sys::window() {
        let _ = window.add_event_listener_with_callback("focus", seen.as_ref().unchecked_ref());
    }
    // The listener lives as long as the page, like the document and window it listens to.
    seen.forget();

    Effect::new(move |_| {
        let unread = chat.unread.get();
        let title = if unread == 0 { ROOM_NAME.to_owned() } else { format!("({unread}) {ROOM_NAME}") };
        doc.set_title(&title);
    });
}
