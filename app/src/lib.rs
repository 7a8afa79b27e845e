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

// The chat page's view types nest deeply (a view type is its whole tree).
#![recursion_limit = "256"]

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
use leptos_router::{components::Router, hooks::use_location};
#[cfg(not(feature = "hydrate"))]
use model::{ChatActions, ResizeWatch};
use model::{ChatSignals, rooms::room_from_path};
use protocol::RoomName;

/// The HTML document around [`App`]: rendered by the server only, never hydrated.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1, viewport-fit=cover"/>
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

/// The whole application: the chat at `/` (the room `general`) and `/r/NAME` (any other room),
/// "not found" anywhere else.
///
/// The page is rendered from the address ([`Page`]), inside the `Router`, which keeps the
/// address (links, back, forward) that the chat page follows. The routes are declared for the
/// server alone, which asks for them (`generate_route_list(App)`) and so serves both addresses
/// as pages: only while it generates that list are they rendered, with empty views. The browser
/// never renders them, so its wasm carries neither the route matcher nor the router's
/// asynchronous hydration: under `Routes` every view of the chat would be hydrated by a second,
/// async copy of its code (hydrate code is generic over each view's type), which doubled the
/// wasm.
#[component]
pub fn App() -> impl IntoView {
    let page = view! {
        <Router>
            <Page/>
            <RouteList/>
        </Router>
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

/// The chat's addresses, declared for the server's list of pages (see [`App`]): rendered only
/// while that list is generated, and never built for the browser.
#[component]
fn RouteList() -> impl IntoView {
    #[cfg(feature = "ssr")]
    {
        use leptos_router::{
            components::{Route, Routes},
            path,
        };
        leptos_router::RouteList::is_generating().then(|| {
            view! {
                <Routes fallback=|| ()>
                    <Route path=path!("") view=|| ()/>
                    <Route path=path!("r/:name") view=|| ()/>
                </Routes>
            }
        })
    }
}

/// The page for the address at load: the chat showing the room it names, or "not found" (a
/// 404 from the server) for any other address, `/r/` followed by something that is not a room
/// name included. Decided once: later moves stay between rooms, or load another page.
#[component]
fn Page() -> impl IntoView {
    match room_from_path(&use_location().pathname.get_untracked()) {
        Some(Ok(room)) => {
            provide_chat(room);
            Either::Left(view! { <ChatPage/> })
        }
        _ => {
            not_found_status();
            Either::Right(view! { <NotFound/> })
        }
    }
}

/// Answers the page being rendered with 404 (the server build; nothing to do in the browser).
fn not_found_status() {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(http::StatusCode::NOT_FOUND);
    }
}

/// Gives the chat page its state, its actions, its clock and its watch on element sizes, as
/// context: in the browser those of `client`, which also starts the browser side; on the server
/// inert ones, since the server only renders the join form and never runs the page.
fn provide_chat(room: RoomName) {
    let chat = ChatSignals::new(room);
    provide_context(chat);
    #[cfg(feature = "hydrate")]
    let (actions, clock, resizes) = (client::start(chat), client::clock(), client::resize_watch());
    #[cfg(not(feature = "hydrate"))]
    let (actions, clock, resizes) = (ChatActions::inert(), model::time::Clock::inert(), ResizeWatch::inert());
    provide_context(actions);
    provide_context(clock);
    provide_context(resizes);
}
