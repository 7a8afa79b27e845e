//! The button that unfolds a side panel on narrow screens: "People" in the page's header and
//! "Rooms" in the room's header. One panel at a time: opening one folds the other.

use super::truth;
use leptos::{html, prelude::*};

#[component]
pub fn PanelToggle(
    /// The panel's element id (`aria-controls`).
    controls: &'static str,
    testid: &'static str,
    class: &'static str,
    /// Whether this panel is unfolded.
    open: RwSignal<bool>,
    /// The other panel, folded when this one opens.
    other: RwSignal<bool>,
    /// The button, so Escape can put the focus back on it.
    button: NodeRef<html::Button>,
    children: Children,
) -> impl IntoView {
    view! {
        <button
            type="button"
            class=class
            data-testid=testid
            node_ref=button
            aria-controls=controls
            aria-expanded=move || truth(open.get())
            on:click=move |ev| {
                // The conversation around a toggle folds the panels on a click.
                ev.stop_propagation();
                other.set(false);
                open.update(|open| *open = !*open);
            }
        >
            {children()}
        </button>
    }
}
