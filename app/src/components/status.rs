//! The connection's state as people see it: a badge in the header (`connecting`, `live`,
//! `reconnecting`, `offline`, `refused`) and, when the server refused the stream for a reason retrying
//! cannot fix, that reason as a sentence. The `data-state` attribute carries the machine-readable
//! state, so tests and styles never parse the human text.

use leptos::prelude::*;

/// Where the browser's stream stands. Only the browser's connection (`crate::client`) moves it
/// on; the server build renders none of it, because nobody has joined during server rendering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(
    not(feature = "hydrate"),
    allow(dead_code, reason = "set by crate::client, which only the browser build compiles")
)]
pub enum ConnectionState {
    /// Joined, waiting for the first answer of the stream.
    #[default]
    Connecting,
    /// The stream is open: events arrive and messages can be sent.
    Live,
    /// The stream dropped; the browser or our own backoff is trying again.
    Reconnecting,
    /// The browser says it has no network (`offline`): nothing is tried until it is back.
    Offline,
    /// The server said no (a 409 or another answer retrying cannot change); no more retries.
    Refused,
}

impl ConnectionState {
    /// The value of `data-state`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connecting => "connecting",
            Self::Live => "live",
            Self::Reconnecting => "reconnecting",
            Self::Offline => "offline",
            Self::Refused => "refused",
        }
    }

    /// What the badge says.
    pub fn label(self) -> &'static str {
        match self {
            Self::Connecting => "Connecting…",
            Self::Live => "Connected",
            Self::Reconnecting => "Reconnecting…",
            Self::Offline => "Offline",
            Self::Refused => "Not connected",
        }
    }
}

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
