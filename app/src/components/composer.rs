//! The composer: a text area and a Send button at the bottom of the conversation. Enter sends,
//! Shift+Enter starts a new line; on a touch screen Enter starts a new line and the button
//! sends (`ChatSignals::enter_sends`). Sending needs a live stream (a message sent while it is
//! down would arrive unseen) that already follows the room (a room just joined is followed once
//! the stream that names it opens; a post before that is refused), and text the server would
//! take (the protocol's own parser says so); a counter appears near the length limit.
//!
//! Each room has its own draft (kept in the room's state), so switching rooms loses nothing
//! typed. The draft stays in the text area until the server has stored the message: a send that fails
//! leaves it there, says why in a sentence, and offers to try again (after the wait a 429 asks
//! for).

use super::truth;
use crate::{
    model::{ChatActions, ChatSignals, ConnectionState, FocusNext, SendFailure},
    protocol::{ChatMessage, MESSAGE_MAX_CHARS, MessageText, RoomName},
};
use leptos::{
    ev::{KeyboardEvent, SubmitEvent},
    html,
    prelude::*,
};

/// The counter shows from this many characters on.
const COUNTER_FROM: usize = MESSAGE_MAX_CHARS * 9 / 10;

/// The form. `on_sent` receives the message as the server stored it, so it shows at once even if
/// its broadcast is still on the way (the timeline de-duplicates by `seq`).
#[component]
pub fn Composer(
    /// Where messages go.
    room: RoomName,
    /// The room's draft.
    draft: RwSignal<String>,
    /// Whether the stream follows the room yet: a post is refused until it does.
    #[prop(into)]
    in_room: Signal<bool>,
    #[prop(into)] status: Signal<ConnectionState>,
    #[prop(into)] on_sent: Callback<ChatMessage>,
) -> impl IntoView {
    let room = StoredValue::new(room);
    let sending = RwSignal::new(false);
    let failure = RwSignal::new(None::<SendFailure>);
    // Set while a 429's `Retry-After` runs: sending again now would only be refused again.
    let cooling = RwSignal::new(false);
    let input: NodeRef<html::Textarea> = NodeRef::new();
    let post = ChatActions::expect().send;
    let chat = use_context::<ChatSignals>();
    if let Some(chat) = chat {
        chat.take_focus(FocusNext::Composer, move || input.get().is_some_and(|input| input.focus().is_ok()));
    }
    let enter_sends = move || chat.is_none_or(|chat| chat.enter_sends.get());

    let live = move || status.get() == ConnectionState::Live;
    let joining = move || live() && !in_room.get();
    let chars = Memo::new(move |_| draft.with(|draft| draft.trim().chars().count()));
    let can_send = move || {
        live()
            && in_room.get()
            && !sending.get()
            && !cooling.get()
            && (1..=MESSAGE_MAX_CHARS).contains(&chars.get())
    };

    let send = move || {
        if !untrack(can_send) {
            return;
        }
        let raw = draft.get_untracked();
        let Ok(text) = MessageText::parse(&raw) else {
            return;
        };
        sending.set(true);
        let outcome = post.run((room.get_value(), text));
        leptos::task::spawn_local(async move {
            let outcome = outcome.await;
            // The composer may be gone by now (the user left, or another room is shown):
            // nothing left to update.
            if sending.try_set(false).is_some() {
                return;
            }
            match outcome {
                Ok(sent) => {
                    failure.set(None);
                    // Clear only what was sent: anything typed while the request was in flight
                    // is a new draft.
                    draft.update(|draft| {
                        if *draft == raw {
                            draft.clear();
                        }
                    });
                    if let Some(message) = sent {
                        on_sent.run(message);
                    }
                }
                Err(error) => {
                    if let Some(secs) = error.retry_after_secs {
                        cooling.set(true);
                        set_timeout(
                            move || {
                                let _ = cooling.try_set(false);
                            },
                            std::time::Duration::from_secs(u64::from(secs.clamp(1, 300))),
                        );
                    }
                    failure.set(Some(error));
                }
            }
            if let Some(input) = input.get_untracked() {
                let _ = input.focus();
            }
        });
    };

    let submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        send();
    };
    let keydown = move |ev: KeyboardEvent| {
        // While an input method is composing, Enter confirms the composition, not the message.
        if ev.key() == "Enter" && !ev.shift_key() && !ev.is_composing() && untrack(enter_sends) {
            ev.prevent_default();
            send();
        }
    };
    let too_long = move || chars.get() > MESSAGE_MAX_CHARS;
    let offline = move || {
        matches!(
            status.get(),
            ConnectionState::Reconnecting | ConnectionState::Offline | ConnectionState::Refused
        )
    };
    let counter = move || {
        let count = chars.get();
        (count >= COUNTER_FROM).then(|| {
            let over = count > MESSAGE_MAX_CHARS;
            let (n, state) = if over {
                (count - MESSAGE_MAX_CHARS, "too many")
            } else {
                (MESSAGE_MAX_CHARS - count, "left")
            };
            let text = format!("{n} character{} {state}", if n == 1 { "" } else { "s" });
            view! {
                <span id="char-count" data-testid="char-count" class="char-count" class:over=over>
                    {text}
                </span>
            }
        })
    };

    view! {
        <form
            data-testid="composer"
            data-in-room=move || truth(in_room.get())
            class="composer"
            aria-label="Send a message"
            on:submit=submit
        >
            {move || {
                offline()
                    .then(|| {
                        view! {
                            <p data-testid="composer-offline" class="composer-note">
                                "You are offline. You can send again as soon as the connection is back; your draft is kept."
                            </p>
                        }
                    })
            }}
            {move || {
                joining()
                    .then(|| {
                        view! {
                            <p data-testid="composer-joining" class="composer-note">
                                "Joining the room… You can send as soon as you are in; your draft is kept."
                            </p>
                        }
                    })
            }}
            {move || {
                failure
                    .get()
                    .map(|failure| {
                        view! {
                            <div class="composer-note failed">
                                <p data-testid="composer-error" class="error" role="alert">
                                    {failure.sentence}
                                </p>
                                <button
                                    type="button"
                                    data-testid="composer-retry"
                                    class="secondary"
                                    disabled=move || !can_send()
                                    on:click=move |_| send()
                                >
                                    "Retry"
                                </button>
                            </div>
                        }
                    })
            }}
            <label for="composer-input" class="sr-only">"Message"</label>
            <div class="composer-row">
                <textarea
                    id="composer-input"
                    name="message"
                    rows="1"
                    enterkeyhint="send"
                    placeholder="Write a message…"
                    aria-describedby=move || {
                        if chars.get() >= COUNTER_FROM { "composer-help char-count" } else { "composer-help" }
                    }
                    aria-invalid=move || truth(too_long())
                    node_ref=input
                    prop:value=move || draft.get()
                    on:input=move |ev| draft.set(event_target_value(&ev))
                    on:keydown=keydown
                ></textarea>
                <button type="submit" class="send" class:busy=move || sending.get() disabled=move || !can_send()>
                    "Send"
                </button>
            </div>
            <div class="composer-foot">
                <span id="composer-help" class="hint">
                    {move || {
                        if enter_sends() {
                            "Enter sends · Shift+Enter adds a line"
                        } else {
                            "Enter adds a line · the Send button sends"
                        }
                    }}
                </span>
                {counter}
            </div>
        </form>
    }
}
