//! Who is in the room: the people panel with its count. [`Roster`] is the data behind it, kept as
//! plain Rust so its rules (one entry per id, join order, exact counts in large rooms) are tested
//! without a browser; the browser's connection feeds it from `all-users`, `users`, `new-user`,
//! `user-leave` and `presence`.
//!
//! In a large room the server sends a sample of the users and an exact count (`presence`); the
//! panel says so, and "Show everyone" pages through `GET /users` for the whole list.

use super::message_list::{avatar_class, initial};
use crate::protocol::{Presence, User, UserId};
use leptos::{either::EitherOf3, prelude::*};

/// In a large room the server only samples users (`all-users` lists 100, `presence` up to 20
/// joins per interval); keep the list about that long so it does not grow without bound.
const LARGE_ROOM_LIST_LEN: usize = 100;

/// Users asked for per `GET /users` page.
#[cfg(feature = "hydrate")]
const PAGE_LEN: u32 = 100;

/// The room as this browser knows it: users in join order, each id once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Roster {
    users: Vec<User>,
    /// The exact count from the last `presence`; `None` while the room is small and the list is
    /// the whole room.
    large_room_count: Option<u64>,
}

#[cfg_attr(
    not(feature = "hydrate"),
    allow(dead_code, reason = "fed by crate::client, which only the browser build compiles")
)]
impl Roster {
    /// `all-users` and `users`: the server's list becomes ours. A large room's count comes back
    /// with the `presence` that follows at once.
    pub fn replace(&mut self, users: Vec<User>) {
        self.users.clear();
        self.large_room_count = None;
        for user in users {
            self.add(user);
        }
    }

    /// `new-user`. Returns whether the user was new to this list, so a join that a snapshot
    /// already showed is not announced twice.
    pub fn add(&mut self, user: User) -> bool {
        if self.users.iter().any(|known| known.id == user.id) {
            return false;
        }
        self.users.push(user);
        true
    }

    /// `user-leave`. Returns the user if they were listed.
    pub fn remove(&mut self, id: &UserId) -> Option<User> {
        let index = self.users.iter().position(|user| &user.id == id)?;
        Some(self.users.remove(index))
    }

    /// `presence` (large rooms): an exact count and the latest changes. `me` is never trimmed
    /// from the sampled list, so people always find themselves.
    pub fn apply_presence(&mut self, presence: Presence, me: Option<&UserId>) {
        for user in &presence.left {
            self.remove(&user.id);
        }
        for user in presence.joined {
            self.add(user);
        }
        while self.users.len() > LARGE_ROOM_LIST_LEN {
            match self.users.iter().position(|user| Some(&user.id) != me) {
                Some(oldest_other) => self.users.remove(oldest_other),
                None => break,
            };
        }
        self.large_room_count = Some(presence.count);
    }

    pub fn users(&self) -> &[User] {
        &self.users
    }

    /// The number of people in the room: exact in large rooms too, where the list is a sample.
    pub fn count(&self) -> u64 {
        self.large_room_count.unwrap_or(self.users.len() as u64)
    }

    /// Whether the list is a sample of a large room rather than the whole room.
    pub fn is_large(&self) -> bool {
        self.large_room_count.is_some()
    }
}

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

/// The whole list of a large room, as far as it has been paged in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Everyone {
    users: Vec<User>,
    /// Where the next page starts; `None` once the last page is in.
    next: Option<String>,
    loading: bool,
    error: Option<String>,
}

/// The panel: a heading with the count and one entry per user, the viewer's own marked "(you)".
#[component]
pub fn UserList(
    #[prop(into)] roster: Signal<Roster>,
    #[prop(into)] me: Signal<Option<User>>,
) -> impl IntoView {
    // Who "me" is does not change while an entry is shown (a new name is a new id).
    let my_id = move || me.with_untracked(|me| me.as_ref().map(|me| me.id.clone()));
    let large = Memo::new(move |_| roster.with(Roster::is_large));
    // `Some` while the whole list is shown instead of the sample.
    let everyone = RwSignal::new(None::<Everyone>);
    let showing_everyone = move || large.get() && everyone.with(Option::is_some);

    // Loads the page after `after` (the first page when `None`) and adds it to the list.
    let load = move |after: Option<String>| {
        everyone.update(|everyone| {
            let everyone = everyone.get_or_insert_with(Everyone::default);
            everyone.loading = true;
            everyone.error = None;
        });
        #[cfg(feature = "hydrate")]
        leptos::task::spawn_local(async move {
            let page = crate::client::users::page(after.as_deref(), PAGE_LEN).await;
            // The panel may be gone by now (the user left): nothing left to update.
            let _ = everyone.try_update(|everyone| {
                let Some(everyone) = everyone else { return };
                everyone.loading = false;
                match page {
                    Ok(page) => {
                        everyone.users.extend(page.users);
                        everyone.next = page.next;
                    }
                    Err(reason) => everyone.error = Some(reason),
                }
            });
        });
        #[cfg(not(feature = "hydrate"))]
        let _ = after;
    };
    let users = move || {
        if showing_everyone() {
            everyone
                .with(|everyone| everyone.as_ref().map(|everyone| everyone.users.clone()).unwrap_or_default())
        } else {
            roster.with(|roster| roster.users().to_vec())
        }
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
                            if showing_everyone() {
                                everyone.with(|everyone| everyone.as_ref().map_or(0, |everyone| everyone.users.len()))
                            } else {
                                roster.with(|roster| roster.users().len())
                            }
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
                large.get().then(|| view! { <div class="user-pages">{move || pager(everyone, load)}</div> })
            }}
        </div>
    }
}

/// The controls under a large room's list: "Show everyone", then "Load more" while pages
/// remain, and the way back to the sample.
fn pager(
    everyone: RwSignal<Option<Everyone>>,
    load: impl Fn(Option<String>) + Copy + 'static,
) -> impl IntoView {
    let state = everyone.with(|everyone| {
        everyone.as_ref().map(|everyone| (everyone.loading, everyone.next.clone(), everyone.error.clone()))
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
                <button type="button" class="secondary" on:click=move |_| everyone.set(None)>
                    "Show recent only"
                </button>
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::UserName;

    fn user(id: &str, name: &str) -> User {
        User { id: UserId::parse(id).unwrap(), name: UserName::parse(name).unwrap() }
    }

    #[test]
    fn a_snapshot_replaces_the_list_and_keeps_each_id_once() {
        let mut roster = Roster::default();
        roster.add(user("z", "Zed"));
        roster.replace(vec![user("a", "Ann"), user("b", "Bob"), user("a", "Ann")]);
        let ids: Vec<_> = roster.users().iter().map(|u| u.id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(roster.count(), 2);
    }

    #[test]
    fn a_known_user_joining_again_is_not_news() {
        let mut roster = Roster::default();
        assert!(roster.add(user("a", "Ann")));
        assert!(!roster.add(user("a", "Ann")));
        assert_eq!(roster.count(), 1);
    }

    #[test]
    fn leaving_removes_only_that_user() {
        let mut roster = Roster::default();
        roster.replace(vec![user("a", "Ann"), user("b", "Bob")]);
        assert_eq!(roster.remove(&UserId::parse("a").unwrap()), Some(user("a", "Ann")));
        assert_eq!(roster.remove(&UserId::parse("a").unwrap()), None);
        assert_eq!(roster.count(), 1);
    }

    #[test]
    fn presence_gives_the_exact_count_until_the_next_snapshot() {
        let mut roster = Roster::default();
        roster.replace(vec![user("a", "Ann"), user("b", "Bob")]);
        roster.apply_presence(
            Presence { count: 1500, joined: vec![user("c", "Cleo")], left: vec![user("b", "Bob")] },
            None,
        );
        let ids: Vec<_> = roster.users().iter().map(|u| u.id.as_str()).collect();
        assert_eq!(ids, ["a", "c"]);
        assert_eq!(roster.count(), 1500);
        assert!(roster.is_large());
        roster.replace(vec![user("a", "Ann")]);
        assert_eq!(roster.count(), 1);
        assert!(!roster.is_large());
    }

    #[test]
    fn a_large_room_keeps_a_bounded_sample_that_still_lists_me() {
        let mut roster = Roster::default();
        let me = UserId::parse("me").unwrap();
        roster.replace(vec![user("me", "Me")]);
        let joined = (0..150).map(|i| user(&format!("u{i}"), "Someone")).collect();
        roster.apply_presence(Presence { count: 2000, joined, left: vec![] }, Some(&me));
        assert_eq!(roster.users().len(), LARGE_ROOM_LIST_LEN);
        assert_eq!(roster.users()[0].id, me);
        assert_eq!(roster.users().last().unwrap().id.as_str(), "u149");
    }

    #[test]
    fn counts_are_grouped_by_thousands() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(1_234_567), "1,234,567");
    }
}
