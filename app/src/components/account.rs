//! The account menu in the header: who you are in the chat, a form to change your name, and a
//! way to leave. A name cannot change under the same id (the server keeps the name an id was
//! bound with), so a new name is a new identity; `Session`, in the browser side (`client/`),
//! explains how.
//!
//! The menu is a button that shows and hides a panel (`aria-expanded`); Escape and a click
//! outside close it, and closing puts the focus back on the button.

use super::{
    join_form::NameError,
    message_list::{avatar_class, initial},
    truth,
};
use crate::{
    model::{ChatActions, ChatSignals, parse_name, tabs::Theme},
    protocol::{User, UserName},
};
use leptos::{ev, html, prelude::*, wasm_bindgen::JsCast, web_sys};

/// The menu. `on_rename` and `on_leave` are the page's; the menu only asks.
#[component]
pub fn AccountMenu(
    #[prop(into)] me: Signal<Option<User>>,
    #[prop(into)] on_rename: Callback<UserName>,
    #[prop(into)] on_leave: Callback<()>,
) -> impl IntoView {
    let open = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let wrapper: NodeRef<html::Div> = NodeRef::new();
    let button: NodeRef<html::Button> = NodeRef::new();
    let name_input: NodeRef<html::Input> = NodeRef::new();
    let name = move || me.with(|me| me.as_ref().map(|me| me.name.to_string()).unwrap_or_default());

    let close = move |refocus: bool| {
        open.set(false);
        error.set(None);
        if refocus && let Some(button) = button.get_untracked() {
            let _ = button.focus();
        }
    };

    // A press anywhere outside the menu closes it. Built in both builds alike: Leptos adds no
    // window listener while rendering on the server, which has no window.
    let outside = window_event_listener(ev::pointerdown, move |event| {
        if !open.get_untracked() {
            return;
        }
        let target = event.target().and_then(|target| target.dyn_into::<web_sys::Node>().ok());
        let inside = wrapper.get_untracked().is_some_and(|wrapper| wrapper.contains(target.as_ref()));
        if !inside {
            close(false);
        }
    });
    on_cleanup(move || outside.remove());

    let toggle = move |_| {
        if open.get_untracked() {
            close(false);
        } else {
            open.set(true);
            // Straight to the name field once the panel is there.
            request_animation_frame(move || {
                if let Some(input) = name_input.get_untracked() {
                    let _ = input.focus();
                }
            });
        }
    };
    let keydown = move |event: ev::KeyboardEvent| {
        if event.key() == "Escape" && open.get_untracked() {
            event.prevent_default();
            close(true);
        }
    };
    let rename = move |event: ev::SubmitEvent| {
        event.prevent_default();
        let raw = name_input.get_untracked().map(|input| input.value()).unwrap_or_default();
        match parse_name(&raw) {
            Ok(new_name) if me.with_untracked(|me| me.as_ref().is_some_and(|me| me.name == new_name)) => {
                error.set(Some("That is already your name.".to_owned()));
            }
            Ok(new_name) => {
                close(true);
                on_rename.run(new_name);
            }
            Err(reason) => error.set(Some(reason)),
        }
    };

    view! {
        <div class="account" node_ref=wrapper on:keydown=keydown>
            <button
                type="button"
                class="account-button"
                data-testid="account-button"
                aria-expanded=move || truth(open.get())
                aria-controls="account-panel"
                node_ref=button
                on:click=toggle
            >
                <span
                    class=move || me.with(|me| me.as_ref().map(|me| avatar_class(&me.id)).unwrap_or_default())
                    aria-hidden="true"
                >{move || initial(&name())}</span>
                <span class="sr-only">"Account: "</span>
                <span class="account-name">{name}</span>
            </button>
            <div id="account-panel" class="account-panel" hidden=move || !open.get()>
                <p class="account-who">"You are " <strong>{name}</strong> " in this chat."</p>
                <form class="rename" data-testid="rename-form" on:submit=rename>
                    <label for="rename-input">"New name"</label>
                    <div class="row">
                        <input
                            id="rename-input"
                            type="text"
                            autocomplete="nickname"
                            spellcheck="false"
                            node_ref=name_input
                            prop:value=name
                            aria-invalid=move || truth(error.with(Option::is_some))
                            aria-describedby=move || error.with(Option::is_some).then_some("rename-error")
                        />
                        <button type="submit">"Change name"</button>
                    </div>
                    <NameError id="rename-error" error=error />
                </form>
                <ThemeChoice/>
                <button
                    type="button"
                    class="leave"
                    data-testid="leave-button"
                    on:click=move |_| {
                        close(false);
                        on_leave.run(());
                    }
                >
                    "Leave the chat"
                </button>
            </div>
        </div>
    }
}

/// The colour scheme: as the system's, light or dark. Every tab of the browser takes it.
#[component]
fn ThemeChoice() -> impl IntoView {
    let chat = ChatSignals::expect();
    let set_theme = ChatActions::expect().set_theme;
    let change = move |event: ev::Event| {
        let value = event
            .target()
            .and_then(|target| target.dyn_into::<web_sys::HtmlSelectElement>().ok())
            .map(|select| select.value())
            .unwrap_or_default();
        set_theme.run(Theme::parse(&value));
    };
    view! {
        <div class="theme">
            <label for="theme-select">"Theme"</label>
            <select id="theme-select" data-testid="theme-select" on:change=change>
                {Theme::ALL
                    .into_iter()
                    .map(|theme| {
                        view! {
                            <option value=theme.as_str() selected=move || chat.theme.get() == theme>
                                {theme.label()}
                            </option>
                        }
                    })
                    .collect_view()}
            </select>
        </div>
    }
}
