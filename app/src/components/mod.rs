//! The chat page's components, one file per visible piece, shared by both builds: the server
//! renders them (feature `ssr`) and the browser hydrates the same tree (feature `hydrate`). Until
//! the browser has joined, both render the join form and nothing else, so the server's HTML and
//! the client's first render always agree.
//!
//! Components read the page's state ([`crate::model::ChatSignals`]) and ask for what they need
//! through [`crate::model::ChatActions`], both from context; they never name the browser side
//! (`client/`). Nor do they have code for one build only (no `hydrate` gates): effects and
//! Leptos's browser helpers (`window_event_listener`, timers started from effects) never run
//! while the server renders, a `NodeRef` is never filled there, and what only the browser can
//! do comes from context with an inert stand-in on the server, like the page's actions:
//! [`crate::model::time::Clock`] and [`crate::model::ResizeWatch`].
//!
//! [`ChatPage`] puts the page together: the header ([`status`], [`account`]), the join form
//! ([`join_form`]), the rooms sidebar and the room's header ([`room_list`]), the toggles of the side panels on
//! narrow screens ([`panel_toggle`]), the people panel
//! ([`user_list`]), the conversation ([`message_list`], whose
//! links come from [`links`]) and the [`composer`]. [`NotFound`] is for any other address.

mod account;
mod chat_page;
mod composer;
mod join_form;
mod links;
mod message_list;
mod not_found;
mod panel_toggle;
mod room_list;
mod status;
mod user_list;

pub use chat_page::ChatPage;
pub use not_found::NotFound;

/// The value of a true-or-false attribute (`aria-expanded`, `aria-pressed`, `aria-invalid`,
/// `aria-busy`, `data-own`): ARIA reads the words, and an absent attribute means something else.
fn truth(value: bool) -> &'static str {
    if value { "true" } else { "false" }
}
