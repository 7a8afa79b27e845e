//! The join form: pick a name, press Join. It is a real `<form method="get">`, so it works even
//! before the page is interactive: a submission that happens before hydration loads the same
//! address with `?name=…`,
//! and the browser side joins with that name once it starts (see `Session` in `client/`).

use super::truth;
use crate::{
    model::{ChatSignals, FocusNext, parse_name},
    protocol::UserName,
};
use leptos::{ev::SubmitEvent, html, prelude::*};

/// The form. It parses the name with the protocol's own rules, so a refused name is explained
/// here, before any request, in the same words the server would use.
#[component]
pub fn JoinForm(
    /// The page's own address, where a submission before hydration goes (`?name=…`), so the
    /// room asked for stays.
    action: String,
    #[prop(into)] on_join: Callback<UserName>,
    /// Why the last attempt to join failed: a name the parser refused, or the server's reason.
    error: RwSignal<Option<String>>,
    /// News for someone back at the form, such as "You left the chat."
    #[prop(into)]
    info: Signal<Option<String>>,
) -> impl IntoView {
    // Read from the element at submit time rather than mirrored on every keystroke: text typed
    // before hydration never fired our `input` handler, but it is in the element.
    let name_input: NodeRef<html::Input> = NodeRef::new();
    if let Some(chat) = use_context::<ChatSignals>() {
        chat.take_focus(FocusNext::JoinName, move || {
            name_input.get().is_some_and(|input| input.focus().is_ok())
        });
    }

    let submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        let raw = name_input.get().map(|input| input.value()).unwrap_or_default();
        match parse_name(&raw) {
            Ok(name) => {
                error.set(None);
                on_join.run(name);
            }
            Err(reason) => error.set(Some(reason)),
        }
    };

    view! {
        <form data-testid="join-form" class="join-form" method="get" action=action on:submit=submit>
            {move || {
                info.get().map(|info| view! { <p data-testid="join-info" class="info" role="status">{info}</p> })
            }}
            <h2>"Join the chat"</h2>
            <p class="lead">"Pick the name people will see next to your messages."</p>
            <label for="join-name">"Your name"</label>
            <div class="join-row">
                <input
                    id="join-name"
                    name="name"
                    type="text"
                    autocomplete="nickname"
                    spellcheck="false"
                    node_ref=name_input
                    aria-invalid=move || truth(error.with(Option::is_some))
                    aria-describedby=move || error.with(Option::is_some).then_some("join-error")
                />
                <button type="submit">"Join"</button>
            </div>
            <NameError id="join-error" error=error />
        </form>
    }
}

/// Why the name in a form was refused, under its field (`id` is what the field's
/// `aria-describedby` names). `role="alert"`: it is read out as it appears.
#[component]
pub(crate) fn NameError(id: &'static str, error: RwSignal<Option<String>>) -> impl IntoView {
    move || {
        error.get().map(|reason| {
            view! {
                <p id=id data-testid=id class="error" role="alert">
                    {reason}
                </p>
            }
        })
    }
}
