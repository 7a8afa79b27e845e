//! The browser tab: while it is hidden, messages from others are counted, and the count shows in
//! its title ("(3) ssechat"), so a glance at the tab strip says whether anything happened. The
//! count goes back to zero as soon as the tab is seen again.

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

/// Keeps the title in step with `chat.unread`, and clears the count when the tab is seen.
/// Called once per page.
pub fn follow_unread(chat: ChatSignals) {
    let Some(doc) = document() else { return };
    let seen = Closure::<dyn FnMut()>::new(move || {
        if !is_hidden() {
            let _ = chat.unread.try_set(0);
        }
    });
    let _ = doc.add_event_listener_with_callback("visibilitychange", seen.as_ref().unchecked_ref());
    // The listener lives as long as the page, like the document it listens to.
    seen.forget();

    Effect::new(move |_| {
        let unread = chat.unread.get();
        let title = if unread == 0 { ROOM_NAME.to_owned() } else { format!("({unread}) {ROOM_NAME}") };
        doc.set_title(&title);
    });
}
