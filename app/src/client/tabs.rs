//! The other tabs of this browser: the `BroadcastChannel` they talk over ([`Channel`]) and the
//! Web Lock whose holder leads ([`lead_when_possible`]). What they say, and why one tab leads,
//! is in [`crate::model::tabs`].

use crate::model::tabs::{CHANNEL, LEADER_LOCK, TabMessage};
use wasm_bindgen::{JsCast, JsValue, closure::Closure, prelude::wasm_bindgen};
use web_sys::{BroadcastChannel, MessageEvent};

/// This page's end of the tabs' channel. Dropping it stops listening and closes it.
pub struct Channel {
    channel: BroadcastChannel,
    _listener: Closure<dyn FnMut(MessageEvent)>,
}

impl Channel {
    /// Opens the channel; `on_message` gets every message another tab posts (never this
    /// tab's own). `None` where the browser has no `BroadcastChannel`.
    pub fn open(mut on_message: impl FnMut(TabMessage) + 'static) -> Option<Self> {
        let channel = BroadcastChannel::new(CHANNEL).ok()?;
        let listener = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            if let Some(message) = event.data().as_string().and_then(|raw| TabMessage::from_json(&raw)) {
                on_message(message);
            }
        });
        channel.set_onmessage(Some(listener.as_ref().unchecked_ref()));
        Some(Self { channel, _listener: listener })
    }

    /// Tells every other tab. Sent as a JSON string, which every browser clones cheaply.
    pub fn post(&self, message: &TabMessage) {
        // Only a closed channel throws, and ours closes when dropped.
        let _ = self.channel.post_message(&JsValue::from_str(&message.to_json()));
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        self.channel.set_onmessage(None);
        self.channel.close();
    }
}

#[wasm_bindgen]
extern "C" {
    /// `navigator.locks`. web-sys has it only behind `--cfg=web_sys_unstable_apis`, and this
    /// one method is all we use.
    type LockManager;

    #[wasm_bindgen(method, catch)]
    fn request(this: &LockManager, name: &str, callback: &JsValue) -> Result<js_sys::Promise, JsValue>;
}

/// Queues this tab for the leader's lock: `on_leading` runs once this tab holds it, which is
/// at once for the first tab, and when the leader closes for the next one in line. The lock is
/// then held until the page goes away. Returns `false` where the browser has no Web Locks
/// (then every tab keeps its own stream, as before tabs shared one).
pub fn lead_when_possible(on_leading: impl FnOnce() + 'static) -> bool {
    let Some(window) = web_sys::window() else { return false };
    let locks = js_sys::Reflect::get(&window.navigator(), &JsValue::from_str("locks"));
    let Some(locks) = locks.ok().filter(JsValue::is_object) else { return false };
    let locks: LockManager = locks.unchecked_into();
    let granted = Closure::once_into_js(move |_lock: JsValue| -> js_sys::Promise {
        on_leading();
        // Never settles: the lock is let go when the page is.
        js_sys::Promise::new(&mut |_resolve, _reject| {})
    });
    locks.request(LEADER_LOCK, &granted).is_ok()
}
