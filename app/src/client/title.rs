//! The browser tab: while the viewer is away from it, messages from others are counted, and the
//! count shows in its title ("(3) ssechat") and on its icon (a red badge), so a glance at the
//! tab strip or the task bar says whether anything happened. Away means hidden (another tab in front, the window minimised)
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
        show_on_icon(&doc, unread);
    });
}

/// The page's icon: the app's own, or a badge with the count. The badge is an SVG `data:` URL,
/// which the Content-Security-Policy allows for images, drawn without a canvas.
fn show_on_icon(doc: &web_sys::Document, unread: u32) {
    let Ok(Some(link)) = doc.query_selector("link[rel='icon']") else { return };
    let href = if unread == 0 { ICON.to_owned() } else { badge(unread) };
    let _ = link.set_attribute("href", &href);
}

const ICON: &str = "/favicon.ico";

/// A red disc with the count in white ("99+" past 99), URL-encoded for a `data:` address.
fn badge(unread: u32) -> String {
    let count = if unread > 99 { "99+".to_owned() } else { unread.to_string() };
    let size = if count.len() > 2 { 13 } else { 18 };
    format!(
        "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 32 32'%3E\
         %3Ccircle cx='16' cy='16' r='16' fill='%23c62828'/%3E\
         %3Ctext x='16' y='22' font-size='{size}' font-family='sans-serif' font-weight='bold' \
         text-anchor='middle' fill='white'%3E{count}%3C/text%3E%3C/svg%3E"
    )
}
