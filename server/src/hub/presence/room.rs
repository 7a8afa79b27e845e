//! Who is in the room: plain data behind the roster's lock ([`super::Roster`]), with no I/O
//! and no clocks, so every rule of presence and identity is decided here and unit-tested here.
//!
//! A user is in the room from the stream that binds their `id` until the leave grace period
//! after their last stream closed. While they are, the `id` belongs to the browser holding the
//! [`Binding`] it was bound with; once they leave, the binding is forgotten and the `id` is free.
//!
//! A large room (more users than the threshold) stops announcing each join and leave, which
//! would cost O(N²) bytes in a join storm: changes are collected and summarised once per
//! interval as a `presence` event ([`Room::take_summary`]). When the room falls back to the
//! threshold, every stream is sent a full snapshot and per-user events resume.

use crate::session::{Binding, Session};
use app::protocol::{EncodedUser, Presence, User, UserId, UserName};
use std::collections::{BTreeMap, HashMap, VecDeque};

/// Users listed in `all-users` in a large room (the newcomer and the most recent joiners).
pub const LARGE_ROOM_SAMPLE: usize = 100;
/// Users listed in each of a `presence` event's `joined` and `left`.
pub const PRESENCE_SAMPLE: usize = 20;

/// A position in join order; never reused, so cursors built on it survive departures.
pub type JoinNo = u64;

/// A user in the room. The user themselves (id and name) is kept in [`Room::order`], by join
/// number: a newcomer's `all-users` then walks that map alone, with no hashing of every id.
#[derive(Debug)]
struct Member {
    binding: Binding,
    streams: usize,
    join_no: JoinNo,
    /// Bumped whenever the member's stream count drops to zero or rises from it; a scheduled
    /// departure only happens if the token it was scheduled with is still current.
    leave_token: u64,
}

/// Why a stream was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The `id` is held by another browser (no or wrong cookie).
    IdHeldElsewhere,
    /// This browser already holds another `id`.
    SessionHoldsAnotherId,
    /// The user has the most streams allowed open.
    TooManyStreams,
}

/// How a change of membership is told to the streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Announce {
    /// Nothing changed.
    Nothing,
    /// A `new-user` or `user-leave` to everyone; the room is now at this version.
    Event { version: u64 },
    /// Large room: the change goes into the next `presence` summary.
    Summarized,
    /// The room just fell back to the threshold: a `users` snapshot to everyone.
    Snapshot { version: u64 },
}

/// A stream the room accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    /// The user as bound: a later stream's `name` does not rename them.
    pub user: User,
    /// Set when this stream bound the `id`: the cookie to hand to the browser.
    pub new_session: Option<Session>,
    /// How the join (if this stream made one) is announced to everyone else.
    pub announce: Announce,
    /// The binding the `id` is held with.
    pub binding: Binding,
}

/// A departure to carry out after the grace period, unless the user came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingLeave {
    pub id: UserId,
    pub token: u64,
}

#[derive(Debug)]
pub struct Room {
    members: HashMap<UserId, Member>,
    /// Everyone, in join order: the users themselves (see [`Member`]), each encoded once.
    order: BTreeMap<JoinNo, EncodedUser>,
    next_join_no: JoinNo,
    /// Counts every announced change of membership; a stream's view of the room is right when
    /// it has seen every change up to this. Summarised changes of a large room do not count:
    /// streams of a large room have no per-user view to keep right.
    version: u64,
    /// Above this many users the room is large.
    large_threshold: usize,
    /// Large room: changes since the last summary, most recent last.
    recent_joins: VecDeque<User>,
    recent_leaves: VecDeque<User>,
    /// Large room: for each user whose membership changed since the last summary, whether
    /// they were in the room when it began. A summary lists a user in `joined` only if they
    /// are in the room at its end and were not at its start, in `left` only the reverse, so
    /// that a client reading `left` then `joined` ends with the room as it is: someone who
    /// joined and left (or left and came back) within one interval is in neither.
    present_at_interval_start: HashMap<UserId, bool>,
    changed_since_summary: bool,
}

fn push_recent(list: &mut VecDeque<User>, user: User) {
    if list.len() == PRESENCE_SAMPLE {
        list.pop_front();
    }
    list.push_back(user);
}

impl Room {
    pub fn new(large_threshold: usize) -> Self {
        Self {
            members: HashMap::new(),
            order: BTreeMap::new(),
            next_join_no: 0,
            version: 0,
            large_threshold,
            recent_joins: VecDeque::new(),
            recent_leaves: VecDeque::new(),
            present_at_interval_start: HashMap::new(),
            changed_since_summary: false,
        }
    }

    pub fn is_large(&self) -> bool {
        self.members.len() > self.large_threshold
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn contains(&self, id: &UserId) -> bool {
        self.members.contains_key(id)
    }

    /// Everyone with their position in join order, in join order: a position names one stay
    /// in the room, so a user who left and came back is told apart by it.
    pub fn join_nos(&self) -> impl Iterator<Item = (&UserId, JoinNo)> + '_ {
        self.order.iter().map(|(join_no, listed)| (&listed.user.id, *join_no))
    }

    /// The user a session speaks for, if its binding is the current one.
    pub fn authorize(&self, session: &Session) -> Option<&User> {
        self.members
            .get(&session.id)
            .filter(|member| member.binding == session.binding)
            .and_then(|member| self.order.get(&member.join_no))
            .map(|listed| &listed.user)
    }

    /// Decides whether a stream for `id` may open, and records it if so.
    pub fn open_stream(
        &mut self,
        id: UserId,
        name: UserName,
        session: Option<&Session>,
        max_streams_per_user: usize,
    ) -> Result<Admitted, Refusal> {
        let held_session = session.filter(|session| self.authorize(session).is_some());
        if let Some(member) = self.members.get_mut(&id) {
            if held_session.map(|session| &session.id) != Some(&id) {
                return Err(Refusal::IdHeldElsewhere);
            }
            if member.streams >= max_streams_per_user {
                return Err(Refusal::TooManyStreams);
            }
            if member.streams == 0 {
                member.leave_token += 1;
            }
            member.streams += 1;
            let (join_no, binding) = (member.join_no, member.binding);
            // Every member is in `order`; the fallback only keeps this total.
            let user = self.order.get(&join_no).map_or(User { id, name }, |listed| listed.user.clone());
            return Ok(Admitted { user, new_session: None, announce: Announce::Nothing, binding });
        }
        if held_session.is_some() {
            return Err(Refusal::SessionHoldsAnotherId);
        }
        if max_streams_per_user == 0 {
            return Err(Refusal::TooManyStreams);
        }
        let session = Session { id: id.clone(), binding: Binding::random() };
        let user = User { id, name };
        let join_no = self.next_join_no;
        let announce = self.record_join(user.clone(), session.binding, join_no, 1);
        Ok(Admitted { user, binding: session.binding, new_session: Some(session), announce })
    }

    /// A stream of a user already admitted (whose identity checks passed, see
    /// [`super::local`]) starts following this room: a join when they were not in it.
    pub fn enter(&mut self, user: User, binding: Binding) -> Announce {
        if let Some(member) = self.members.get_mut(&user.id) {
            if member.streams == 0 {
                member.leave_token += 1;
            }
            member.streams += 1;
            return Announce::Nothing;
        }
        let join_no = self.next_join_no;
        self.record_join(user, binding, join_no, 1)
    }

    /// A join decided elsewhere (by the shared store, when instances share their rooms), applied
    /// to this instance's copy of the room. Joins arrive in the store's order, so every
    /// instance announces the same changes the same way. A repeat is ignored.
    pub fn apply_join(&mut self, user: User, binding: Binding, join_no: JoinNo) -> Announce {
        if self.members.contains_key(&user.id) {
            return Announce::Nothing;
        }
        self.record_join(user, binding, join_no, 0)
    }

    /// A departure decided elsewhere; `None` if the user was not here.
    pub fn apply_leave(&mut self, id: &UserId) -> Option<(User, Announce)> {
        self.record_leave(id)
    }

    fn record_join(&mut self, user: User, binding: Binding, join_no: JoinNo, streams: usize) -> Announce {
        self.next_join_no = self.next_join_no.max(join_no + 1);
        self.order.insert(join_no, EncodedUser::new(user.clone()));
        self.members.insert(user.id.clone(), Member { binding, streams, join_no, leave_token: 0 });
        if self.is_large() {
            let was_present = *self.present_at_interval_start.entry(user.id.clone()).or_insert(false);
            self.recent_leaves.retain(|left| left.id != user.id);
            if !was_present {
                push_recent(&mut self.recent_joins, user);
            }
            self.changed_since_summary = true;
            Announce::Summarized
        } else {
            self.version += 1;
            Announce::Event { version: self.version }
        }
    }

    /// Records a closed stream. When it was the user's last, returns the departure to carry
    /// out after the grace period.
    pub fn close_stream(&mut self, id: &UserId) -> Option<PendingLeave> {
        let member = self.members.get_mut(id)?;
        member.streams = member.streams.saturating_sub(1);
        if member.streams > 0 {
            return None;
        }
        member.leave_token += 1;
        Some(PendingLeave { id: id.clone(), token: member.leave_token })
    }

    /// Carries out a departure, unless the user opened a stream since it was scheduled.
    pub fn expire(&mut self, pending: &PendingLeave) -> Option<(User, Announce)> {
        let member = self.members.get(&pending.id)?;
        if member.streams > 0 || member.leave_token != pending.token {
            return None;
        }
        self.record_leave(&pending.id)
    }

    fn record_leave(&mut self, id: &UserId) -> Option<(User, Announce)> {
        let was_large = self.is_large();
        let member = self.members.remove(id)?;
        let user = self.order.remove(&member.join_no)?.user;
        let announce = if self.is_large() {
            let was_present = *self.present_at_interval_start.entry(id.clone()).or_insert(true);
            self.recent_joins.retain(|joined| joined.id != *id);
            if was_present {
                push_recent(&mut self.recent_leaves, user.clone());
            }
            self.changed_since_summary = true;
            Announce::Summarized
        } else if was_large {
            // The snapshot replaces whatever summary was pending.
            self.recent_joins.clear();
            self.recent_leaves.clear();
            self.present_at_interval_start.clear();
            self.changed_since_summary = false;
            self.version += 1;
            Announce::Snapshot { version: self.version }
        } else {
            self.version += 1;
            Announce::Event { version: self.version }
        };
        Some((user, announce))
    }

    /// The `presence` data for the changes of a large room since the last summary, if any.
    pub fn take_summary(&mut self) -> Option<Presence> {
        if !self.changed_since_summary || !self.is_large() {
            return None;
        }
        self.changed_since_summary = false;
        self.present_at_interval_start.clear();
        Some(Presence {
            count: self.members.len() as u64,
            joined: std::mem::take(&mut self.recent_joins).into(),
            left: std::mem::take(&mut self.recent_leaves).into(),
        })
    }

    /// The `presence` a newcomer to a large room gets right after its `all-users`: the exact
    /// count and the changes the next summary will carry.
    pub fn presence_now(&self) -> Presence {
        Presence {
            count: self.members.len() as u64,
            joined: self.recent_joins.iter().cloned().collect(),
            left: self.recent_leaves.iter().cloned().collect(),
        }
    }

    /// The `all-users` list for `newcomer`: everyone, or in a large room the newcomer and the
    /// most recent other joiners, in join order. Borrowed: a newcomer's `all-users` is written
    /// from it without copying every user of the room for each join.
    pub fn all_users_for(&self, newcomer: &UserId) -> Vec<&EncodedUser> {
        if !self.is_large() {
            return self.order.values().collect();
        }
        let newcomer_no = self.members.get(newcomer).map(|m| m.join_no);
        let mut sample: Vec<JoinNo> = self
            .order
            .keys()
            .rev()
            .filter(|no| Some(**no) != newcomer_no)
            .take(LARGE_ROOM_SAMPLE - 1)
            .copied()
            .chain(newcomer_no)
            .collect();
        sample.sort_unstable();
        sample.iter().filter_map(|no| self.order.get(no)).collect()
    }

    /// Everyone, in join order.
    pub fn users(&self) -> Vec<User> {
        self.order.values().map(|listed| listed.user.clone()).collect()
    }

    /// Up to `limit` users who joined after position `after` (from the start with `None`),
    /// with the position of the last one returned when more follow.
    pub fn page(&self, after: Option<JoinNo>, limit: usize) -> (Vec<User>, Option<JoinNo>) {
        let start = after.map_or(0, |after| after.saturating_add(1));
        let mut entries = self.order.range(start..);
        let mut users = Vec::with_capacity(limit.min(self.order.len()));
        let mut last = None;
        for (join_no, listed) in entries.by_ref().take(limit) {
            users.push(listed.user.clone());
            last = Some(*join_no);
        }
        let more = entries.next().is_some();
        (users, last.filter(|_| more))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> UserId {
        UserId::parse(s).unwrap()
    }
    fn name(s: &str) -> UserName {
        UserName::parse(s).unwrap()
    }

    #[test]
    fn first_stream_binds_and_joins_and_second_tab_is_not_a_new_user() {
        let mut room = Room::new(1_000);
        let first = room.open_stream(id("a"), name("Ann"), None, 8).unwrap();
        assert_eq!(first.announce, Announce::Event { version: 1 });
        let session = first.new_session.unwrap();
        let second = room.open_stream(id("a"), name("Other"), Some(&session), 8).unwrap();
        assert_eq!(second.announce, Announce::Nothing);
        assert_eq!(second.user.name.as_str(), "Ann", "the bound name stands");
        assert_eq!(room.users().len(), 1);
        assert_eq!(room.version(), 1);
    }

    #[test]
    fn a_held_id_is_refused_without_its_cookie() {
        let mut room = Room::new(1_000);
        let ann = room.open_stream(id("a"), name("Ann"), None, 8).unwrap().new_session.unwrap();
        assert_eq!(room.open_stream(id("a"), name("Eve"), None, 8), Err(Refusal::IdHeldElsewhere));
        let eve = room.open_stream(id("e"), name("Eve"), None, 8).unwrap().new_session.unwrap();
        assert_eq!(room.open_stream(id("a"), name("Eve"), Some(&eve), 8), Err(Refusal::IdHeldElsewhere));
        assert_eq!(
            room.open_stream(id("f"), name("Eve"), Some(&eve), 8),
            Err(Refusal::SessionHoldsAnotherId)
        );
        let forged = Session { id: id("a"), binding: Binding::random() };
        assert_eq!(room.open_stream(id("a"), name("Eve"), Some(&forged), 8), Err(Refusal::IdHeldElsewhere));
        assert!(room.authorize(&ann).is_some());
        assert!(room.authorize(&forged).is_none());
    }

    #[test]
    fn a_reconnect_within_grace_is_no_leave() {
        let mut room = Room::new(1_000);
        let session = room.open_stream(id("a"), name("Ann"), None, 8).unwrap().new_session.unwrap();
        let pending = room.close_stream(&id("a")).unwrap();
        room.open_stream(id("a"), name("Ann"), Some(&session), 8).unwrap();
        assert_eq!(room.expire(&pending), None);
        assert_eq!(room.users().len(), 1);
    }

    #[test]
    fn leaving_frees_the_id_and_old_cookies_stop_matching() {
        let mut room = Room::new(1_000);
        let old = room.open_stream(id("a"), name("Ann"), None, 8).unwrap().new_session.unwrap();
        let pending = room.close_stream(&id("a")).unwrap();
        assert_eq!(room.expire(&pending).map(|(u, _)| u.name), Some(name("Ann")));
        assert!(room.authorize(&old).is_none());
        let new = room.open_stream(id("a"), name("Bob"), None, 8).unwrap();
        assert!(matches!(new.announce, Announce::Event { .. }));
        assert_eq!(room.open_stream(id("a"), name("Ann"), Some(&old), 8), Err(Refusal::IdHeldElsewhere));
    }

    #[test]
    fn streams_per_user_are_limited_and_recover() {
        let mut room = Room::new(1_000);
        let s = room.open_stream(id("a"), name("Ann"), None, 2).unwrap().new_session.unwrap();
        room.open_stream(id("a"), name("Ann"), Some(&s), 2).unwrap();
        assert_eq!(room.open_stream(id("a"), name("Ann"), Some(&s), 2), Err(Refusal::TooManyStreams));
        assert_eq!(room.close_stream(&id("a")), None);
        assert!(room.open_stream(id("a"), name("Ann"), Some(&s), 2).is_ok());
    }

    #[test]
    fn pages_follow_join_order_and_survive_departures() {
        let mut room = Room::new(1_000);
        for user in ["a", "b", "c", "d"] {
            room.open_stream(id(user), name(user), None, 8).unwrap();
        }
        let (first, cursor) = room.page(None, 2);
        assert_eq!(first.iter().map(|u| u.id.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        let pending = room.close_stream(&id("b")).unwrap();
        room.expire(&pending).unwrap();
        let (rest, cursor) = room.page(cursor, 2);
        assert_eq!(rest.iter().map(|u| u.id.as_str()).collect::<Vec<_>>(), ["c", "d"]);
        assert_eq!(cursor, None, "no user follows the last page");
    }

    #[test]
    fn a_large_room_summarises_changes_and_snapshots_when_it_shrinks_back() {
        let mut room = Room::new(2);
        for user in ["a", "b"] {
            assert!(matches!(
                room.open_stream(id(user), name(user), None, 8).unwrap().announce,
                Announce::Event { .. }
            ));
        }
        let version = room.version();
        assert_eq!(room.take_summary(), None, "a small room has no summary");
        let c = room.open_stream(id("c"), name("c"), None, 8).unwrap();
        assert_eq!(c.announce, Announce::Summarized);
        assert_eq!(room.version(), version, "summarised changes leave views alone");
        assert_eq!(room.presence_now().count, 3);
        let summary = room.take_summary().unwrap();
        assert_eq!((summary.count, summary.joined.len(), summary.left.len()), (3, 1, 0));
        assert_eq!(room.take_summary(), None, "nothing new since");

        let pending = room.close_stream(&id("a")).unwrap();
        let (_, announce) = room.expire(&pending).unwrap();
        assert_eq!(announce, Announce::Snapshot { version: version + 1 });
        assert_eq!(room.take_summary(), None);
    }

    fn leave(room: &mut Room, user: &str) {
        let pending = room.close_stream(&id(user)).expect("the last stream");
        room.expire(&pending).expect("left");
    }

    fn ids(users: &[User]) -> Vec<&str> {
        users.iter().map(|user| user.id.as_str()).collect()
    }

    #[test]
    fn a_summary_lists_a_user_in_joined_or_left_by_where_they_end_never_both() {
        let mut room = Room::new(2);
        for user in ["a", "b", "c", "d"] {
            room.open_stream(id(user), name(user), None, 8).unwrap();
        }
        room.take_summary();
        // Within one interval: "e" joins and leaves, "a" leaves and comes back, "b" leaves,
        // "f" joins.
        room.open_stream(id("e"), name("e"), None, 8).unwrap();
        leave(&mut room, "e");
        leave(&mut room, "a");
        room.open_stream(id("a"), name("a"), None, 8).unwrap();
        leave(&mut room, "b");
        room.open_stream(id("f"), name("f"), None, 8).unwrap();
        let summary = room.take_summary().expect("changes");
        assert_eq!(ids(&summary.joined), ["f"]);
        assert_eq!(ids(&summary.left), ["b"]);
        assert_eq!(summary.count, 4);
        // Next interval: "f" (who joined in the last one) leaves; "g" joins, leaves, rejoins.
        leave(&mut room, "f");
        room.open_stream(id("g"), name("g"), None, 8).unwrap();
        leave(&mut room, "g");
        room.open_stream(id("g"), name("g"), None, 8).unwrap();
        let summary = room.take_summary().expect("changes");
        assert_eq!(ids(&summary.left), ["f"], "present when the interval began");
        assert_eq!(ids(&summary.joined), ["g"]);
    }

    #[test]
    fn all_users_in_a_large_room_is_the_newcomer_and_the_most_recent_joiners() {
        let mut room = Room::new(10);
        for i in 0..150 {
            room.open_stream(id(&format!("u{i}")), name("x"), None, 8).unwrap();
        }
        let early = room.all_users_for(&id("u3"));
        assert_eq!(early.len(), LARGE_ROOM_SAMPLE);
        assert_eq!(early[0].user.id, id("u3"));
        assert_eq!(early[1].user.id, id("u51"));
        assert_eq!(early.last().unwrap().user.id, id("u149"));
        let summary = room.take_summary().unwrap();
        assert_eq!(summary.count, 150);
        assert_eq!(summary.joined.len(), PRESENCE_SAMPLE);
        assert_eq!(summary.joined.last().unwrap().id, id("u149"));
    }
}
