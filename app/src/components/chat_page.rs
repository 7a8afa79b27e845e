//! The page, put together: a header with the title and (once joined) the connection's status;
//! then either the join form or the chat (people, conversation, composer). [`ChatSignals`] is
//! what the page shows; the browser's connection (`crate::client`) writes it and the components
//! read it. It exists in the server build too, where nobody has joined yet, so the server renders
//! exactly the join form the browser then hydrates.

use super::{
    composer::Composer,
    join_form::JoinForm,
    message_list::{MessageList, Timeline},
    status::{ConnectionError, ConnectionState, ConnectionStatus},
    user_list::{Roster, UserList},
};
use crate::protocol::{ChatMessage, User, UserName};
use leptos::prelude::*;

/// Everything the chat page shows, as signals. Copying it is shallow: every field is a handle
/// to the same signal, so the connection and the views share one state.
#[derive(Debug, Clone, Copy)]
pub struct ChatSignals {
    /// Who this browser joined as; `None` shows the join form.
    pub me: RwSignal<Option<User>>,
    pub status: RwSignal<ConnectionState>,
    /// Why the stream was refused for good (a 409): shown with a way to start over.
    pub connection_error: RwSignal<Option<String>>,
    /// Why joining failed: the name parser's reason, or the server's 400.
    pub join_error: RwSignal<Option<String>>,
    pub roster: RwSignal<Roster>,
    pub timeline: RwSignal<Timeline>,
}

impl ChatSignals {
    fn new() -> Self {
        Self {
            me: RwSignal::new(None),
            status: RwSignal::new(ConnectionState::default()),
            connection_error: RwSignal::new(None),
            join_error: RwSignal::new(None),
            roster: RwSignal::new(Roster::default()),
            timeline: RwSignal::new(Timeline::default()),
        }
    }
}

/// The one page of the app.
#[component]
pub fn ChatPage() -> impl IntoView {
    let chat = ChatSignals::new();

    // The browser side starts here, after hydration: effects never run on the server, and the
    // first run of this one comes after the server's DOM has been adopted. It marks the page
    // interactive and rejoins a stored name (a reload is the same user); the page's cleanup
    // closes the stream.
    #[cfg(feature = "hydrate")]
    let session = crate::client::Session::new(chat);
    #[cfg(feature = "hydrate")]
    {
        Effect::new(move |_| {
            untrack(|| {
                crate::client::mark_hydrated();
                session.resume();
            })
        });
        on_cleanup(move || session.close());
    }

    let join = Callback::new(move |name: UserName| {
        #[cfg(feature = "hydrate")]
        session.join(name);
        #[cfg(not(feature = "hydrate"))]
        let _ = name;
    });
    let start_over = Callback::new(move |()| {
        #[cfg(feature = "hydrate")]
        session.start_over();
    });
    let sent = Callback::new(move |message: ChatMessage| {
        chat.timeline.update(|timeline| {
            timeline.add_message(message);
        });
    });

    let joined = move || chat.me.with(Option::is_some);
    let live = Signal::derive(move || chat.status.get() == ConnectionState::Live);

    view! {
        <div class="app">
            <header class="app-header">
                <h1>"ssechat"</h1>
                <Show when=joined>
                    <ConnectionStatus state=chat.status/>
                </Show>
            </header>
            <Show
                when=joined
                fallback=move || {
                    view! {
                        <main class="join">
                            <JoinForm on_join=join error=chat.join_error/>
                        </main>
                    }
                }
            >
                <ConnectionError error=chat.connection_error on_start_over=start_over/>
                <main class="chat">
                    <aside class="sidebar">
                        <UserList roster=chat.roster me=chat.me/>
                    </aside>
                    <section class="conversation" aria-label="Conversation">
                        <MessageList timeline=chat.timeline me=chat.me/>
                        <Composer live on_sent=sent/>
                    </section>
                </main>
            </Show>
        </div>
    }
    .into_any()
}
