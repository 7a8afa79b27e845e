//! Being told when an element changes size, as the message list asks for it: a list can shrink
//! without any scroll (the composer grows, the window or an on-screen keyboard takes room), and
//! a reader who was at its bottom should stay there.
//!
//! Only the browser has a `ResizeObserver`, so the browser side (`client/`) provides the real
//! [`ResizeWatch`] and the server build an inert one, as context next to the page's actions and
//! clock: the list then needs no `hydrate` gate and never names the browser side. The element
//! only passes through here; nothing in the model touches it.

use leptos::{prelude::*, web_sys};

/// Calls back after an element changes size. Copying it is shallow: its field is a handle to
/// one stored callback.
#[derive(Debug, Clone, Copy)]
pub struct ResizeWatch {
    /// Watches the element and calls the callback after each change of its size, for as long as
    /// the reactive owner that asked lives (asked from an effect: until the effect runs again or
    /// is disposed), so a watch never outlives the view that wanted it.
    pub watch: Callback<(web_sys::Element, Callback<()>)>,
}

impl ResizeWatch {
    /// For the server build, which renders the page but never lays it out: watches nothing.
    pub fn inert() -> Self {
        Self { watch: Callback::new(|_| {}) }
    }

    /// The page's watch, as provided to it.
    ///
    /// # Panics
    ///
    /// Outside the chat page, where nobody provided it: a wiring mistake, not a user's.
    pub fn expect() -> Self {
        expect_context()
    }
}
