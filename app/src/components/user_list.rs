//! Who is in the room: the sidebar list with its count. [`Roster`] is the data behind it, kept as
//! plain Rust so its rules (one entry per id, join order, exact counts in large rooms) are tested
//! without a browser; the browser's connection feeds it from `all-users`, `users`, `new-user`,
//! `user-leave` and `presence`.

use crate::protocol::{Presence, User, UserId};
use leptos::prelude::*;

/// In a large room the server only samples users (`all-users` lists 100, `presence` up to 20
/// joins per interval); keep the list about that long so it does not grow without bound.
const LARGE_ROOM_LIST_LEN: usize = 100;

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
}

/// The sidebar: a count and one entry per user, the viewer's own marked "(you)".
#[component]
pub fn UserList(
    #[prop(into)] roster: Signal<Roster>,
    #[prop(into)] me: Signal<Option<User>>,
) -> impl IntoView {
    // Who "me" is does not change while the list is shown (a new join starts a new list).
    let my_id = move || me.with_untracked(|me| me.as_ref().map(|me| me.id.clone()));

    view! {
        <section class="user-list" aria-labelledby="user-list-title">
            <h2 id="user-list-title">
                "People "
                <span data-testid="user-count" class="count">
                    {move || roster.with(Roster::count)}
                </span>
            </h2>
            <ul data-testid="user-list">
                <For
                    each=move || roster.with(|roster| roster.users().to_vec())
                    key=|user| user.id.clone()
                    let:user
                >
                    {
                        let mine = my_id().as_ref() == Some(&user.id);
                        view! {
                            <li
                                data-testid="user"
                                data-user-id=user.id.to_string()
                                class:own=mine
                            >
                                {user.name.to_string()}
                                {mine.then(|| view! { <span class="you">" (you)"</span> })}
                            </li>
                        }
                    }
                </For>
            </ul>
        </section>
    }
    .into_any()
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
        roster.replace(vec![user("a", "Ann")]);
        assert_eq!(roster.count(), 1);
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
}
