//! The composer: a text area and a Send button at the bottom of the conversation. Enter sends,
//! Shift+Enter starts a new line. The button is enabled only when the text is something the
//! server would take (the protocol's own parser says so) and the stream is live; a refused send
//! keeps the draft and says why.

use crate::protocol::{ChatMessage, InputError, MessageText};
use leptos::{
    ev::{KeyboardEvent, SubmitEvent},
    html,
    prelude::*,
};

/// The form. `on_sent` receives the message as the server stored it, so it shows at once even if
/// its broadcast is still on the way (the timeline de-duplicates by `seq`).
#[component]
pub fn Composer(
    /// Whether the stream is open: a message sent while it is not would arrive unseen.
    #[prop(into)]
    live: Signal<bool>,
    #[prop(into)] on_sent: Callback<ChatMessage>,
) -> impl IntoView {
    let draft = RwSignal::new(String::new());
    let sending = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let input: NodeRef<html::Textarea> = NodeRef::new();

    let parsed = Memo::new(move |_| draft.with(|draft| MessageText::parse(draft)));
    let can_send = move || live.get() && !sending.get() && parsed.with(|parsed| parsed.is_ok());

    let send = move || {
        if !untrack(can_send) {
            return;
        }
        let raw = draft.get_untracked();
        let Ok(text) = MessageText::parse(&raw) else {
            return;
        };
        sending.set(true);
        #[cfg(feature = "hydrate")]
        leptos::task::spawn_local(async move {
            let outcome = crate::client::post::send_message(&text).await;
            // The composer may be gone by now (back to the join form): nothing left to update.
            if sending.is_disposed() {
                return;
            }
            sending.set(false);
            match outcome {
                Ok(sent) => {
                    error.set(None);
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
                    if let Some(input) = input.get_untracked() {
                        let _ = input.focus();
                    }
                }
                Err(reason) => error.set(Some(reason)),
            }
        });
        #[cfg(not(feature = "hydrate"))]
        let _ = (text, raw, on_sent, input);
    };

    let submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        send();
    };
    let keydown = move |ev: KeyboardEvent| {
        // While an input method is composing, Enter confirms the composition, not the message.
        if ev.key() == "Enter" && !ev.shift_key() && !ev.is_composing() {
            ev.prevent_default();
            send();
        }
    };
    let too_long = move || parsed.with(|parsed| parsed == &Err(InputError::MessageTooLong));

    view! {
        <form data-testid="composer" class="composer" on:submit=submit>
            <label for="composer-input">"Message"</label>
            <textarea
                id="composer-input"
                name="message"
                rows="2"
                placeholder="Write a message… (Enter sends, Shift+Enter for a new line)"
                node_ref=input
                prop:value=move || draft.get()
                on:input=move |ev| draft.set(event_target_value(&ev))
                on:keydown=keydown
            ></textarea>
            <button type="submit" disabled=move || !can_send()>"Send"</button>
            <Show when=too_long>
                <p class="hint">"Messages can be at most 2000 characters long."</p>
            </Show>
            {move || {
                error
                    .get()
                    .map(|reason| {
                        view! {
                            <p data-testid="composer-error" class="error" role="alert">
                                {reason}
                            </p>
                        }
                    })
            }}
        </form>
    }
    .into_any()
}
