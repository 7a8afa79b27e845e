//! ssechat's shared crate: the wire contract ([`protocol`]), used by the server and the browser
//! alike, and the Leptos components of the chat page. The server renders [`shell`] (feature
//! `ssr`); the browser hydrates [`App`] (feature `hydrate`).

pub mod protocol;

#[cfg(feature = "hydrate")]
mod client;
mod components;
pub mod model;
#[cfg_attr(
    not(feature = "hydrate"),
    allow(dead_code, reason = "driven by crate::client, which only the browser build compiles")
)]
mod reconnect;

pub use components::App;

use leptos::prelude::*;
use leptos_meta::MetaTags;

/// The HTML document around [`App`]: rendered by the server only, never hydrated.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <meta name="color-scheme" content="light dark"/>
                <link rel="icon" href="/favicon.ico"/>
                <AutoReload options=options.clone()/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}
