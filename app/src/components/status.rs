//! The connection's state as people see it: a badge in the header (`connecting`, `live`,
//! `reconnecting`, `offline`, `refused`) and, when the server refused the stream for a reason retrying
//! cannot fix, that reason as a sentence. The `data-state` attribute carries the machine-readable
//! state, so tests and styles never parse the human text.

use crate::model::ConnectionState;
use leptos::prelude::*;

/// The header badge.
#[component]
pub fn ConnectionStatus(#[prop(into)] state: Signal<ConnectionState>) -> impl IntoView {
    view! {
        <span
            data-testid="connection-status"
            class="connection-status"
            data-state=move || state.get().as_str()
            role="status"
        >
            <span class="dot" aria-hidden="true"></span>
            {move || state.get().label()}
        </span>
    }
}

/// Why the stream was refused, with a way out: starting over forgets this browser's name and id,
/// which is the only thing that helps when they are held elsewhere.
#[component]
pub fn ConnectionError(
    #[prop(into)] error: Signal<Option<String>>,
    #[prop(into)] on_start_over: Callback<()>,
) -> impl IntoView {
    move || {
        error.get().map(|reason| {
            view! {
                <div class="connection-error">
                    <p data-testid="connection-error" role="alert">{reason}</p>
                    <button type="button" class="secondary" on:click=move |_| on_start_over.run(())>
                        "Join with another name"
                    </button>
                </div>
            }
        })
    }
}
