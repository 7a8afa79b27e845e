//! Who is in the room: the people panel with its count. [`Roster`] (`crate::model::roster`) is
//! the data behind it. In a large room the panel says the list is a sample, and "Show everyone"
//! pages through `GET /users` for the whole list.

use super::message_list::{avatar_class, initial};
use crate::{
    model::{ChatActions, Roster},
    protocol::{RoomName, User},
};
use leptos::{either::EitherOf3, prelude::*};

/// `1234567` as `1,234,567`.
pub fn grouped(count: u64) -> String {
    let digits = count.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// The panel: a heading with the count and one entry per user, the viewer's own marked "(you)".
#[component]
pub fn UserList(
    /// The room whose people these are.
    room: RoomName,
    /// Written too: pages of the whole list go into it, so that `presence` reaches them.
    roster: RwSignal<Roster>,
    #[prop(into)] me: Signal<Option<User>>,
) -> impl IntoView {
    // Who "me" is does not change while an entry is shown (a new name is a new id).
    let my_id = move || me.with_untracked(|me| me.as_ref().map(|me| me.id.clone()));
    let large = Memo::new(move |_| roster.with(Roster::is_large));
    // Whether the whole list is shown instead of the sample.
    let showing_everyone = move || large.get() && roster.with(|roster| roster.everyone().is_some());

    // Loads the page after `after` (the first page when `None`) and adds it to the list.
    let page_users = ChatActions::expect().page_users;
    let room = StoredValue::new(room);
    let load = move |after: Option<String>| {
        let Some(number) = roster.try_update(Roster::request_page) else { return };
        leptos::task::spawn_local(async move {
            let page = page_users.run((room.get_value(), after)).await;
            // The panel may be gone by now (the user left), or back to the sample: then the
            // page goes nowhere.
            let _ = roster.try_update(|roster| {
                let Some(everyone) = roster.everyone_mut() else { return };
                match page {
                    Ok(page) => everyone.add_page(number, page),
                    Err(reason) => everyone.page_failed(number, reason),
                }
            });
        });
    };
    let users = move || {
        roster.with(|roster| match roster.everyone() {
            Some(everyone) if showing_everyone() => everyone.users().to_vec(),
            _ => roster.users().to_vec(),
        })
    };

    view! {
        <div class="user-list">
            <h2 id="user-list-title">
                "People "
                <span data-testid="user-count" class="count">{move || grouped(roster.with(Roster::count))}</span>
            </h2>
            {move || {
                large
                    .get()
                    .then(|| {
                        let shown = move || {
                            roster.with(|roster| match roster.everyone() {
                                Some(everyone) if showing_everyone() => everyone.users().len(),
                                _ => roster.users().len(),
                            })
                        };
                        view! {
                            <p data-testid="user-sample" class="sample">
                                {move || {
                                    let count = grouped(roster.with(Roster::count));
                                    if showing_everyone() {
                                        format!("Showing {} of {count}.", grouped(shown() as u64))
                                    } else {
                                        format!("A busy room: showing {} recent of {count}.", grouped(shown() as u64))
                                    }
                                }}
                            </p>
                        }
                    })
            }}
            <ul data-testid="user-list" aria-labelledby="user-list-title">
                <For each=users key=|user| user.id.clone() let:user>
                    {
                        let mine = my_id().as_ref() == Some(&user.id);
                        let name = user.name.to_string();
                        view! {
                            <li data-testid="user" data-user-id=user.id.to_string() class:own=mine>
                                <span class=avatar_class(&user.id) aria-hidden="true">{initial(&name)}</span>
                                <span class="name">{name}</span>
                                {mine.then(|| view! { <span class="you">" (you)"</span> })}
                            </li>
                        }
                    }
                </For>
            </ul>
            {move || {
                large.get().then(|| view! { <div class="user-pages">{move || pager(roster, load)}</div> })
            }}
        </div>
    }
}

/// The controls under a large room's list: "Show everyone", then "Load more" while pages
/// remain, and the way back to the sample.
fn pager(roster: RwSignal<Roster>, load: impl Fn(Option<String>) + Copy + 'static) -> impl IntoView {
    let state = roster.with(|roster| {
        roster.everyone().map(|everyone| {
            (everyone.is_loading(), everyone.next().map(str::to_owned), everyone.error().map(str::to_owned))
        })
    });
    match state {
        None => EitherOf3::A(view! {
            <button type="button" class="secondary" on:click=move |_| load(None)>"Show everyone"</button>
        }),
        Some((true, _, _)) => EitherOf3::B(view! { <p class="sample" role="status">"Loading…"</p> }),
        Some((false, next, error)) => {
            let retry = next.clone();
            let error = error.map(|error| {
                view! {
                    <p class="error" role="alert">{error}</p>
                    <button type="button" class="secondary" on:click=move |_| load(retry.clone())>
                        "Try again"
                    </button>
                }
            });
            let more = next.map(|next| {
                view! {
                    <button type="button" class="secondary" on:click=move |_| load(Some(next.clone()))>
                        "Load more"
                    </button>
                }
            });
            EitherOf3::C(view! {
                {error}
                {more}
                <button type="button" class="secondary" on:click=move |_| roster.update(Roster::show_sample)>
                    "Show recent only"
                </button>
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_grouped_by_thousands() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(1_234_567), "1,234,567");
    }
}
