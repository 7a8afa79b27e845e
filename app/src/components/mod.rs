//! The chat page's components, one file per visible piece, shared by both builds: the server
//! renders them (feature `ssr`) and the browser hydrates the same tree (feature `hydrate`). Until
//! the browser has joined, both render the join form and nothing else, so the server's HTML and
//! the client's first render always agree; everything that needs a browser (storage, the
//! `EventSource`, posting) lives in `crate::client` and starts after hydration.
//!
//! The page has one route, so there is no router: [`App`] shows the chat at `/` and a short
//! "not found" page elsewhere (the server answers those with 404). The `<title>` and the
//! stylesheet link are rendered on the server only (`leptos_meta`); the browser keeps them and
//! sets the title itself (unread counts). Leaving both out of the wasm keeps it smaller.

mod account;
mod chat_page;
mod composer;
mod join_form;
mod links;
mod message_list;
mod status;
mod user_list;

use chat_page::ChatPage;
use leptos::{either::Either, prelude::*};

/// The whole application: the chat page at `/`, "not found" anywhere else. The server asks it
/// for its routes (`generate_route_list(App)`); with no router there are none, and `leptos_axum`
/// then serves it at `/`.
#[component]
pub fn App() -> impl IntoView {
    let page = if is_root_path() {
        Either::Left(view! { <ChatPage/> })
    } else {
        Either::Right(view! {
            <main class="not-found">
                <h1>"Page not found"</h1>
                <p>
                    "There is nothing at this address. " <a href="/">"Go to the chat"</a>
                </p>
            </main>
        })
    };
    // The meta tags render into `<head>`, never into the body that the browser hydrates, so the
    // browser's tree is the same without them.
    #[cfg(feature = "ssr")]
    let page = {
        use leptos_meta::{Stylesheet, Title, provide_meta_context};
        provide_meta_context();
        (
            view! { <Stylesheet id="leptos" href="/pkg/ssechat.css"/> <Title text=crate::model::ROOM_NAME/> },
            page,
        )
    };
    page
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
