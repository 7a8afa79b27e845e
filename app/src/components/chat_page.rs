//! The page, put together: a header with the room's name, the connection's state and (once
//! joined) the people toggle and the account menu; then either the join form or the chat: the
//! people panel beside the conversation (above it, folded away, on narrow screens), the messages
//! and the composer.

use super::{
    account::AccountMenu,
    composer::Composer,
    join_form::JoinForm,
    message_list::MessageList,
    status::{ConnectionError, ConnectionStatus},
    user_list::{UserList, grouped},
};
use crate::{
    model::{ChatActions, ChatSignals, ROOM_NAME, Roster},
    protocol::ChatMessage,
};
use leptos::{either::Either, ev, html, prelude::*};

/// The one page of the app.
#[component]
pub fn ChatPage() -> impl IntoView {
    let chat = ChatSignals::expect();
    let ChatActions { join, rename, leave, start_over, .. } = ChatActions::expect();
    let sent = Callback::new(move |message: ChatMessage| {
        chat.timeline.update(|timeline| {
            timeline.add_message(message);
        });
    });

    let joined = Memo::new(move |_| chat.me.with(Option::is_some));
    // Whether the people panel is unfolded (narrow screens only; wide ones always show it).
    let people_open = RwSignal::new(false);
    let count = move || grouped(chat.roster.with(Roster::count));
    let people_toggle: NodeRef<html::Button> = NodeRef::new();
    // Escape folds the people panel from anywhere, and the focus goes back to its toggle; a click
    // on the conversation (which the panel covers in part) folds it too.
    let close_people = move |event: ev::KeyboardEvent| {
        if event.key() == "Escape" && people_open.get_untracked() {
            people_open.set(false);
            if let Some(toggle) = people_toggle.get_untracked() {
                let _ = toggle.focus();
            }
        }
    };

    view! {
        <div class="app" on:keydown=close_people>
            <header class="app-header">
                <div class="room">
                    <h1>{ROOM_NAME}</h1>
                    {move || joined.get().then(|| view! { <ConnectionStatus state=chat.status/> })}
                </div>
                {move || {
                    joined
                        .get()
                        .then(|| {
                            view! {
                                <button
                                    type="button"
                                    class="people-toggle secondary"
                                    data-testid="people-toggle"
                                    node_ref=people_toggle
                                    aria-controls="people"
                                    aria-expanded=move || if people_open.get() { "true" } else { "false" }
                                    on:click=move |_| people_open.update(|open| *open = !*open)
                                >
                                    "People "
                                    <span class="count">{count}</span>
                                </button>
                                <AccountMenu me=chat.me on_rename=rename on_leave=leave/>
                            }
                        })
                }}
            </header>
            {move || {
                if joined.get() {
                    Either::Left(
                        view! {
                            <div class="chat" class:people-open=move || people_open.get()>
                                <aside id="people" class="sidebar" aria-labelledby="user-list-title">
                                    <UserList roster=chat.roster me=chat.me/>
                                </aside>
                                <main class="conversation" on:click=move |_| people_open.set(false)>
                                    <ConnectionError error=chat.connection_error on_start_over=start_over/>
                                    <MessageList timeline=chat.timeline me=chat.me/>
                                    <Composer status=chat.status on_sent=sent/>
                                </main>
                            </div>
                        },
                    )
                } else {
                    Either::Right(
                        view! {
                            <main class="join">
                                <JoinForm on_join=join error=chat.join_error info=chat.join_info/>
                            </main>
                        },
                    )
                }
            }}
        </div>
    }
}
