//! The chat page's components, one file per visible piece, shared by both builds: the server
//! renders them (feature `ssr`) and the browser hydrates the same tree (feature `hydrate`). Until
//! the browser has joined, both render the join form and nothing else, so the server's HTML and
//! the client's first render always agree.
//!
//! Components read the page's state ([`crate::model::ChatSignals`]) and ask for what they need
//! through [`crate::model::ChatActions`], both from context; they never name the browser side
//! (`client/`). Two still keep browser-only code of their own under `cfg(feature = "hydrate")`:
//! [`message_list`] (following the bottom of the list, a `ResizeObserver`, the clock's tick) and
//! [`account`] (a click outside closes the menu); moving those behind context too is next.
//!
//! [`ChatPage`] puts the page together: the header ([`status`], [`account`]), the join form
//! ([`join_form`]), the people panel ([`user_list`]), the conversation ([`message_list`], whose
//! links come from [`links`]) and the [`composer`]. [`NotFound`] is for any other address.

mod account;
mod chat_page;
mod composer;
mod join_form;
mod links;
mod message_list;
mod not_found;
mod status;
mod user_list;

pub use chat_page::ChatPage;
pub use not_found::NotFound;
