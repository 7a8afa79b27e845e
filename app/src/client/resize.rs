//! The browser's `ResizeObserver`, behind the page's [`ResizeWatch`] (`crate::model::resize`):
//! the message list keeps a reader at its bottom when it shrinks, and this is the one piece of
//! that which the server build cannot compile (`web_sys::ResizeObserver` and a JavaScript
//! closure), so it lives here and the component asks for it through context.
//!
//! Why not `leptos-use`'s `use_resize_observer` (and its event-listener and interval hooks),
//! which do nothing in the server build and would need no context at all: they fit our
//! versions (leptos 0.8, the pinned wasm-bindgen, one web-sys), but each hook is a crate of its
//! own with a tree of helpers (signals over element lists, effects that watch them, builders),
//! and together they made the gzipped wasm several kilobytes heavier than these few lines for
//! the same behaviour, and the build slower, on a page whose weight we track. The rest of what
//! the components needed from the browser, Leptos itself already keeps out of the server
//! (`window_event_listener`, effects, timers started from effects).

use crate::model::ResizeWatch;
use leptos::prelude::*;
use wasm_bindgen::{JsCast, closure::Closure};

/// The browser's watch on element sizes, for the page's context.
pub fn resize_watch() -> ResizeWatch {
    ResizeWatch { watch: Callback::new(|(element, on_resize)| watch(&element, on_resize)) }
}

/// Observes `element` until the current reactive owner is cleaned up.
fn watch(element: &web_sys::Element, on_resize: Callback<()>) {
    // `try_`: a resize can be reported while the view that asked is being taken down.
    let callback = Closure::<dyn FnMut()>::new(move || {
        let _ = on_resize.try_run(());
    });
    let Ok(observer) = web_sys::ResizeObserver::new(callback.as_ref().unchecked_ref()) else {
        return;
    };
    observer.observe(element);
    // Stored under whoever asked, and dropped (which disconnects the observer) with it.
    StoredValue::new_local(Observation { observer, _callback: callback });
}

/// A `ResizeObserver` and the closure it calls; dropping it stops the observer before the
/// closure goes.
struct Observation {
    observer: web_sys::ResizeObserver,
    _callback: Closure<dyn FnMut()>,
}

impl Drop for Observation {
    fn drop(&mut self) {
        self.observer.disconnect();
    }
}
