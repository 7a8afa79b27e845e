//! ssechat's shared crate: the wire contract ([`protocol`]), used by the server and the browser
//! alike, and the Leptos chat page. The server renders [`shell`] (feature `ssr`); the browser
//! hydrates [`App`] (feature `hydrate`).
//!
//! The page is three layers, and imports point one way, downwards:
//! - `components/` — what people see, one file per visible piece. Built in both builds alike.
//! - `client/` — the browser side (feature `hydrate` only): the `EventSource`, requests,
//!   storage, the tab, timers. It writes the page's state and answers its actions.
//! - [`model`] — the page's state (timeline, roster, connection state, signals) and the actions
//!   the components may ask for, below both: neither of the two above imports the other.
//!
//! This file wires them: [`App`] gives the chat page its signals and its actions (the
//! browser's, or inert ones on the server) as context. [`reconnect`]'s rules are plain Rust that
//! `client/` drives.

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

use components::{ChatPage, NotFound};
use leptos::{either::Either, prelude::*};
use leptos_meta::MetaTags;
use model::ChatSignals;
#[cfg(not(feature = "hydrate"))]
use model::{ChatActions, ResizeWatch};

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

/// The whole application: the chat page at `/`, "not found" anywhere else. The server asks it
/// for its routes (`generate_route_list(App)`); with no router there are none, and `leptos_axum`
/// then serves it at `/`.
#[component]
pub fn App() -> impl IntoView {
    let page = if is_root_path() {
        provide_chat();
        Either::Left(view! { <ChatPage/> })
    } else {
        Either::Right(view! { <NotFound/> })
    };
    // The meta tags render into `<head>`, never into the body that the browser hydrates, so the
    // browser's tree is the same without them.
    #[cfg(feature = "ssr")]
    let page = {
        use leptos_meta::{Stylesheet, Title, provide_meta_context};
        provide_meta_context();
        (view! { <Stylesheet id="leptos" href="/pkg/ssechat.css"/> <Title text=model::ROOM_NAME/> }, page)
    };
    page
}

/// Gives the chat page its state, its actions, its clock and its watch on element sizes, as
/// context: in the browser those of `client`, which also starts the browser side; on the server
/// inert ones, since the server only renders the join form and never runs the page.
fn provide_chat() {
    let chat = ChatSignals::new();
    provide_context(chat);
    #[cfg(feature = "hydrate")]
    let (actions, clock, resizes) = (client::start(chat), client::clock(), client::resize_watch());
    #[cfg(not(feature = "hydrate"))]
    let (actions, clock, resizes) = (ChatActions::inert(), model::time::Clock::inert(), ResizeWatch::inert());
    provide_context(actions);
    provide_context(clock);
    provide_context(resizes);
}

/// Whether this page is the chat's own address, `/` (with or without a query).
fn is_root_path() -> bool {
    // `leptos_axum` gives the request as a full URL on a made-up host (`http://leptos.dev/…`).
    #[cfg(feature = "ssr")]
    let path = use_context::<leptos_router::location::RequestUrl>().map(|url| {
        let url = url.as_ref();
        let path =
            url.split_once("://").map_or(url, |(_, rest)| rest.find('/').map_or("/", |at| &rest[at..]));
        path.split(['?', '#']).next().unwrap_or_default().to_owned()
    });
    #[cfg(all(feature = "hydrate", not(feature = "ssr")))]
    let path = web_sys::window().and_then(|window| window.location().pathname().ok());
    #[cfg(not(any(feature = "ssr", feature = "hydrate")))]
    let path: Option<String> = None;
    path.is_none_or(|path| path.is_empty() || path == "/")
}
