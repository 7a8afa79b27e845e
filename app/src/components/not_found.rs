//! The page for any address that is not a chat's (`/`, `/r/NAME` with a valid name): a short
//! "not found" with the way back to the chat. The server answers those addresses with 404.

use leptos::prelude::*;

/// "Page not found", and a link to the chat.
#[component]
pub fn NotFound() -> impl IntoView {
    view! {
        <main class="not-found">
            <h1>"Page not found"</h1>
            <p>
                "There is nothing at this address. " <a href="/" rel="external">"Go to the chat"</a>
            </p>
        </main>
    }
}
