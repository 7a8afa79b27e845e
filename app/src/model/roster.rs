//! Who is in the room, as this browser knows it: [`Roster`], the data behind the people panel
//! (`components/user_list.rs`). Plain Rust, so its rules (one entry per id, join order,
//! exact counts in large rooms) are tested without a browser; the browser's connection feeds it
//! from `all-users`, `users`, `new-user`, `user-leave` and `presence`.
//!
//! In a large room the server sends a sample of the users and an exact count (`presence`);
//! "Show everyone" pages through `GET /users` for the whole list ([`Everyone`]). Both follow
//! every `presence` while shown: its `left` first, then its `joined` (the protocol's `joined`
//! holds only users in the room at the end of the interval, `left` only users not in it), so
//! someone who left is never listed on.

use crate::protocol::{Presence, User, UserId, UsersPage};
use std::collections::HashSet;

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
    /// The whole list of a large room while "Show everyone" is on. It lives here, not in the
    /// panel, so that every `presence` reaches it too: a list paged in once and never told of
    /// departures would show people who left for as long as it is open.
    everyone: Option<Everyone>,
    /// Pages asked for so far, here rather than in [`Everyone`] so that numbers stay unique
    /// when the whole list is let go and asked for again.
    page_requests: u64,
}

impl Roster {
    /// `all-users` and `users`: the server's list becomes ours. A large room's count comes back
    /// with the `presence` that follows at once. A whole list paged in before is dropped: after
    /// a reconnect it may have missed changes, and a room back to small shows everyone anyway.
    pub fn replace(&mut self, users: Vec<User>) {
        self.users.clear();
        self.large_room_count = None;
        self.everyone = None;
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

    /// `presence` (large rooms): an exact count and the latest changes, `left` first, then
    /// `joined`, to the sample and to the whole list if shown. `me` is never trimmed from the
    /// sampled list, so people always find themselves.
    pub fn apply_presence(&mut self, presence: Presence, me: Option<&UserId>) {
        if let Some(everyone) = &mut self.everyone {
            everyone.apply_presence(&presence);
        }
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

    /// The whole list, while "Show everyone" is on.
    pub fn everyone(&self) -> Option<&Everyone> {
        self.everyone.as_ref()
    }

    /// "Show everyone" (or "Load more"): the next page is on its way. Returns the number the
    /// page's answer must bring to [`Everyone::add_page`].
    pub fn request_page(&mut self) -> u64 {
        self.page_requests += 1;
        self.everyone.get_or_insert_with(Everyone::default).request_page(self.page_requests);
        self.page_requests
    }

    /// Where an answer to [`Roster::request_page`] goes: `None` once "Show recent only" or a
    /// snapshot let the whole list go.
    pub fn everyone_mut(&mut self) -> Option<&mut Everyone> {
        self.everyone.as_mut()
    }

    /// "Show recent only": back to the sample.
    pub fn show_sample(&mut self) {
        self.everyone = None;
    }
}

/// The whole list of a large room, as far as it has been paged in, kept up to date by every
/// `presence` since: a departure leaves it at once; a join is added once the last page is in
/// (before that, the joiner comes in a later page, since pages follow join order).
///
/// While a page is on its way, a change may or may not be in it, depending on when the server
/// read the list; so changes seen meanwhile are remembered and applied again to the page when it
/// comes. Both lists are bounded by the changes of one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Everyone {
    users: Vec<User>,
    /// The ids of `users`, so a page is de-duplicated in O(page), not O(list).
    ids: HashSet<UserId>,
    /// Where the next page starts; `None` before the first page and once the last one is in.
    next: Option<String>,
    /// Whether at least one page came in.
    started: bool,
    /// The page on its way, if any: its number. A late answer to an older request is dropped.
    loading: Option<u64>,
    error: Option<String>,
    left_meanwhile: Vec<UserId>,
    joined_meanwhile: Vec<User>,
}

impl Everyone {
    fn request_page(&mut self, number: u64) {
        self.loading = Some(number);
        self.error = None;
        self.left_meanwhile.clear();
        self.joined_meanwhile.clear();
    }

    /// The answer to request `number`: its users join the list (none twice, none that left
    /// while it was on its way).
    pub fn add_page(&mut self, number: u64, page: UsersPage) {
        if self.loading != Some(number) {
            return;
        }
        self.loading = None;
        self.started = true;
        self.next = page.next;
        let left = std::mem::take(&mut self.left_meanwhile);
        for user in page.users {
            if !left.contains(&user.id) {
                self.push(user);
            }
        }
        let joined = std::mem::take(&mut self.joined_meanwhile);
        if self.is_complete() {
            for user in joined {
                self.push(user);
            }
        }
    }

    /// Request `number` failed: say why; the same page can be asked for again.
    pub fn page_failed(&mut self, number: u64, reason: String) {
        if self.loading == Some(number) {
            self.loading = None;
            self.error = Some(reason);
        }
    }

    fn apply_presence(&mut self, presence: &Presence) {
        if !presence.left.is_empty() {
            let left: HashSet<&UserId> = presence.left.iter().map(|user| &user.id).collect();
            self.users.retain(|user| !left.contains(&user.id));
            self.ids.retain(|id| !left.contains(id));
            if self.loading.is_some() {
                self.joined_meanwhile.retain(|user| !left.contains(&user.id));
                self.left_meanwhile.extend(presence.left.iter().map(|user| user.id.clone()));
            }
        }
        for user in &presence.joined {
            if self.loading.is_some() {
                self.left_meanwhile.retain(|id| id != &user.id);
                self.joined_meanwhile.push(user.clone());
            } else if self.is_complete() {
                self.push(user.clone());
            }
        }
    }

    fn push(&mut self, user: User) {
        if self.ids.insert(user.id.clone()) {
            self.users.push(user);
        }
    }

    /// Whether every page is in.
    fn is_complete(&self) -> bool {
        self.started && self.next.is_none()
    }

    pub fn users(&self) -> &[User] {
        &self.users
    }

    /// Where the next page starts, while pages remain.
    pub fn next(&self) -> Option<&str> {
        self.next.as_deref()
    }

    pub fn is_loading(&self) -> bool {
        self.loading.is_some()
    }

    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
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

    fn presence(count: u64, joined: &[&str], left: &[&str]) -> Presence {
        let users = |ids: &[&str]| ids.iter().map(|id| user(id, "Someone")).collect();
        Presence { count, joined: users(joined), left: users(left) }
    }

    fn ids(users: &[User]) -> Vec<&str> {
        users.iter().map(|u| u.id.as_str()).collect()
    }

    fn page(users: &[&str], next: Option<&str>) -> UsersPage {
        UsersPage {
            users: users.iter().map(|id| user(id, "Someone")).collect(),
            next: next.map(str::to_owned),
        }
    }

    #[test]
    fn a_user_who_joined_in_one_presence_and_left_in_a_later_one_is_gone() {
        let mut roster = Roster::default();
        roster.replace(vec![user("me", "Me"), user("a", "Ann")]);
        roster.apply_presence(presence(1001, &["x"], &[]), None);
        roster.apply_presence(presence(1002, &["y"], &[]), None);
        roster.apply_presence(presence(1001, &[], &["x"]), None);
        assert_eq!(ids(roster.users()), ["me", "a", "y"]);
        assert_eq!(roster.count(), 1001);
    }

    #[test]
    fn a_user_who_left_then_joined_again_in_later_presences_is_listed_once() {
        let mut roster = Roster::default();
        roster.replace(vec![user("me", "Me"), user("x", "Xan")]);
        roster.apply_presence(presence(1000, &[], &["x"]), None);
        assert_eq!(ids(roster.users()), ["me"]);
        roster.apply_presence(presence(1001, &["x"], &[]), None);
        roster.apply_presence(presence(1001, &["x"], &[]), None);
        assert_eq!(ids(roster.users()), ["me", "x"]);
        roster.apply_presence(presence(1000, &["z"], &["x"]), None);
        assert_eq!(ids(roster.users()), ["me", "z"]);
    }

    #[test]
    fn within_one_presence_left_is_read_before_joined() {
        let mut roster = Roster::default();
        roster.replace(vec![user("me", "Me"), user("x", "Xan")]);
        // Left and back within the interval: the protocol lists them in `joined` only, but a
        // `left` naming them too must not take them out.
        roster.apply_presence(presence(1001, &["x", "y"], &["x"]), None);
        assert_eq!(ids(roster.users()), ["me", "x", "y"]);
    }

    #[test]
    fn a_user_who_leaves_after_the_whole_list_was_paged_in_is_no_longer_listed() {
        let mut roster = Roster::default();
        roster.replace(vec![user("me", "Me")]);
        roster.apply_presence(presence(1003, &["x"], &[]), None);
        let first = roster.request_page();
        roster.everyone_mut().unwrap().add_page(first, page(&["a", "x"], Some("c1")));
        let second = roster.request_page();
        roster.everyone_mut().unwrap().add_page(second, page(&["me"], None));
        assert_eq!(ids(roster.everyone().unwrap().users()), ["a", "x", "me"]);

        roster.apply_presence(presence(1002, &["n"], &["x"]), None);
        assert_eq!(ids(roster.everyone().unwrap().users()), ["a", "me", "n"]);
        roster.apply_presence(presence(1001, &[], &["n"]), None);
        assert_eq!(ids(roster.everyone().unwrap().users()), ["a", "me"]);
        assert_eq!(ids(roster.users()), ["me"]);
    }

    #[test]
    fn a_departure_while_a_page_is_on_its_way_is_applied_to_that_page() {
        let mut roster = Roster::default();
        roster.replace(vec![user("me", "Me")]);
        let first = roster.request_page();
        // The server read the list before these changes, or after: the page may show either.
        roster.apply_presence(presence(1001, &["j"], &["x"]), None);
        roster.everyone_mut().unwrap().add_page(first, page(&["a", "x", "me"], None));
        assert_eq!(ids(roster.everyone().unwrap().users()), ["a", "me", "j"]);
    }

    #[test]
    fn joins_wait_for_their_page_until_the_last_page_is_in() {
        let mut roster = Roster::default();
        let first = roster.request_page();
        roster.everyone_mut().unwrap().add_page(first, page(&["a"], Some("c1")));
        roster.apply_presence(presence(1002, &["j"], &[]), None);
        assert_eq!(ids(roster.everyone().unwrap().users()), ["a"]);
        let second = roster.request_page();
        roster.everyone_mut().unwrap().add_page(second, page(&["b", "j"], None));
        assert_eq!(ids(roster.everyone().unwrap().users()), ["a", "b", "j"]);
    }

    #[test]
    fn an_answer_to_an_older_request_is_dropped() {
        let mut roster = Roster::default();
        let stale = roster.request_page();
        roster.show_sample();
        let current = roster.request_page();
        roster.everyone_mut().unwrap().add_page(stale, page(&["old"], None));
        assert!(roster.everyone().unwrap().is_loading());
        roster.everyone_mut().unwrap().add_page(current, page(&["new"], None));
        assert_eq!(ids(roster.everyone().unwrap().users()), ["new"]);
    }

    #[test]
    fn a_snapshot_lets_the_whole_list_go() {
        let mut roster = Roster::default();
        let first = roster.request_page();
        roster.everyone_mut().unwrap().add_page(first, page(&["a"], None));
        roster.replace(vec![user("a", "Ann")]);
        assert!(roster.everyone().is_none());
    }
}
