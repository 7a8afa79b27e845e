//! Desktop notifications in the browser: the permission (`Notification.permission`, asked from
//! a button), which tabs of the chat are visible (each tab says so over the tabs' channel), and
//! the notification itself, whose click brings the message into view. The rules are
//! [`crate::model::notify`]'s; only the tab holding the browser's stream calls [`consider`].

use super::title;
use crate::{
    model::{
        ChatSignals, Permission,
        notify::{notification_text, should_notify},
    },
    protocol::ChatMessage,
};
use leptos::prelude::*;
use std::{cell::RefCell, collections::HashMap};
use wasm_bindgen::{JsCast, JsValue, closure::Closure};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Notification, NotificationOptions, NotificationPermission};

thread_local! {
    /// The other tabs of the chat, by name, and whether each is visible. A closed tab said
    /// "hidden" as it went.
    static VISIBLE_TABS: RefCell<HashMap<String, bool>> = RefCell::new(HashMap::new());
}

/// What the browser allows now. `Notification` is missing in some browsers (and in insecure
/// contexts): calling it there would throw, so look first.
pub fn permission() -> Permission {
    let Some(window) = web_sys::window() else { return Permission::Unsupported };
    let exists = js_sys::Reflect::get(&window, &JsValue::from_str("Notification"))
        .is_ok_and(|value| value.is_function());
    if !exists {
        return Permission::Unsupported;
    }
    match Notification::permission() {
        NotificationPermission::Granted => Permission::Granted,
        NotificationPermission::Denied => Permission::Denied,
        _ => Permission::Ask,
    }
}

/// Asks for the permission (the browser shows its prompt) and says what it is afterwards.
pub async fn ask() -> Permission {
    if permission() != Permission::Ask {
        return permission();
    }
    if let Ok(promise) = Notification::request_permission() {
        let _ = JsFuture::from(promise).await;
    }
    permission()
}

/// Another tab became visible or hidden. How many others are visible shows as `<body
/// data-other-tabs-in-view>`, for whoever looks (the end-to-end tests wait on it).
pub fn tab_visibility(tab: String, visible: bool) {
    let in_view = VISIBLE_TABS.with(|tabs| {
        let mut tabs = tabs.borrow_mut();
        tabs.insert(tab, visible);
        tabs.values().filter(|visible| **visible).count()
    });
    let body = web_sys::window().and_then(|window| window.document()).and_then(|doc| doc.body());
    if let Some(body) = body {
        let _ = body.set_attribute("data-other-tabs-in-view", &in_view.to_string());
    }
}

/// Whether this tab or any other of the chat is visible.
fn a_tab_is_visible() -> bool {
    !title::is_hidden() || VISIBLE_TABS.with(|tabs| tabs.borrow().values().any(|visible| *visible))
}

/// A new message by someone else came over the stream: raise a notification if it calls for
/// one. Its click focuses this tab and shows the message in its room.
pub fn consider(chat: ChatSignals, message: &ChatMessage, mentions_me: bool) {
    let notifies_all = chat.notify_rooms.with_untracked(|rooms| rooms.contains(&message.room));
    // Read again each time: the browser's settings can change it whenever.
    if !should_notify(permission(), mentions_me, notifies_all, a_tab_is_visible()) {
        return;
    }
    let (title, body) = notification_text(message);
    let options = NotificationOptions::new();
    options.set_body(&body);
    options.set_tag(&format!("ssechat-{}", message.seq));
    options.set_icon("/favicon.ico");
    let Ok(notification) = Notification::new_with_options(&title, &options) else { return };
    let room = message.room.clone();
    let seq = message.seq;
    let clicked = notification.clone();
    let on_click = Closure::once_into_js(move || {
        if let Some(window) = web_sys::window() {
            let _ = window.focus();
        }
        // The page's address follows the room shown, and opening the address marks it read.
        let _ = chat.current.try_set(room);
        let _ = chat.show_message.try_set(Some(seq));
        clicked.close();
    });
    notification.set_onclick(Some(on_click.unchecked_ref()));
}
