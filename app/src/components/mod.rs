//! The chat page's components, one file per visible piece, shared by both builds: the server
//! renders them (feature `ssr`) and the browser hydrates the same tree (feature `hydrate`). Until
//! the browser has joined, both render the join form and nothing else, so the server's HTML and
//! the client's first render always agree; everything that needs a browser (storage, the
//! `EventSource`, posting) lives in `crate::client` and starts after hydration.
//!
//! Each component returns its view as `.into_any()`: without that erasure the page's view type
//! nests every element of every component, deep enough that compiling the wasm build overflows
//! rustc's query depth limit.

mod chat_page;
mod composer;
mod join_form;
mod message_list;
mod status;
mod user_list;

use chat_page::ChatPage;
use leptos::prelude::*;
use leptos_meta::{Stylesheet, Title, provide_meta_context};
use leptos_router::{
    StaticSegment,
    components::{Route, Router, Routes},
};

// What the browser side (`crate::client`, browser build only) writes into.
#[cfg(feature = "hydrate")]
pub(crate) use {
    chat_page::ChatSignals,
    join_form::capitalised,
    message_list::{Entry, Timeline},
    status::ConnectionState,
    user_list::Roster,
};

/// The whole application. The router has a single page, but the server asks it for its routes
/// (`generate_route_list(App)`), so every page the server answers is declared here.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();

    view! {
        <Stylesheet id="leptos" href="/pkg/ssechat.css"/>
        <Title text="ssechat"/>
        <Router>
            <Routes fallback=|| view! { <p class="not-found">"Page not found."</p> }>
                <Route path=StaticSegment("") view=ChatPage/>
            </Routes>
        </Router>
    }
    .into_any()
}
