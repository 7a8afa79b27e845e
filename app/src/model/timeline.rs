//! The conversation as this browser has seen it: messages in `seq` order, with inline notices
//! (joins, leaves, a new name, lost history) where they arrived. Plain Rust, so its ordering,
//! de-duplication, limits and grouping are tested without a browser;
//! `components/message_list.rs` shows it.
//!
//! ## Cost and memory, whatever the order of arrival
//!
//! Messages do not arrive in `seq` order: the answer to one's own `POST` often comes before
//! broadcasts older than it, and a reconnect replays what the page may already have. So the
//! messages are a `BTreeMap` keyed by `seq` (an insert anywhere is O(log n)), capped at
//! [`MAX_MESSAGES`]: past it the lowest `seq` goes, and the highest `seq` ever dropped becomes a
//! watermark. A message at or below the watermark is one the page has shown and let go, or one
//! older than everything it keeps: either way it is ignored, so a late replay can neither come
//! back nor push a newer message out.
//!
//! Notices have a bounded queue of their own ([`MAX_NOTICES`]), so a join storm never evicts a
//! message. A notice is anchored after the newest message shown when it arrived; since that only
//! grows, the queue stays sorted by anchor, and the list is a merge of the two in O(n) without a
//! sort. A notice goes with the message it follows, once that message is dropped.
//!
//! Messages are kept behind an `Arc` with their timestamp parsed once, so building the rows for
//! the keyed list (which re-renders only rows whose key is new) copies pointers, never text.

use super::time;
use crate::protocol::{ChatMessage, UserId, UserName};
use std::{
    collections::{BTreeMap, VecDeque},
    sync::Arc,
};

/// The most messages kept: past it the oldest go, so a tab left open for days stays fast.
pub const MAX_MESSAGES: usize = 1000;
/// The most notices kept, apart from messages, so that notices never push a message out.
pub const MAX_NOTICES: usize = 200;

/// A line of the conversation that is not a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    Joined(UserName),
    Left(UserName),
    /// This browser now speaks under another name.
    Renamed(UserName),
    /// `history-gap`: messages we asked for are no longer retained.
    Gap,
}

/// Keys for `<For>`: a message is known by its `seq`; notices have no identity of their own, so
/// they are numbered as they arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKey {
    Message(u64),
    Notice(u64),
}

/// A message as kept: shared, with its time parsed once.
#[derive(Debug, Clone, PartialEq)]
pub struct Shown {
    pub message: Arc<ChatMessage>,
    /// `ts` in milliseconds since the epoch; `None` if the server sent something else.
    pub at: Option<f64>,
}

/// A notice and where it stands: after the message `after` (0: before every message).
#[derive(Debug, Clone, PartialEq, Eq)]
struct AnchoredNotice {
    number: u64,
    after: u64,
    notice: Notice,
}

/// The conversation as this browser has seen it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timeline {
    messages: BTreeMap<u64, Shown>,
    /// In arrival order, which is also the order of their anchors.
    notices: VecDeque<AnchoredNotice>,
    /// Notices numbered so far: the next one's key.
    notices_numbered: u64,
    /// The highest `seq` ever dropped (0: none). Anything at or below it is ignored.
    dropped_up_to: u64,
    /// Messages added so far (never decreases), so the view can tell how many are new.
    added: u64,
    /// The author of the message added last.
    last_author: Option<UserId>,
    /// Set when reading back dropped the newest messages to stay within [`MAX_MESSAGES`]: the
    /// `seq` of the newest one kept. Newer messages are not added while it is set (they would
    /// leave a hole); the list shows them again when the reader jumps to the newest
    /// ([`Timeline::restart`]).
    detached_at: Option<u64>,
}

impl Timeline {
    /// Adds a message unless it is already shown (a replay after a reconnect, or the answer to
    /// our own `POST` racing its broadcast) or at or below what was dropped. O(log n). Returns
    /// whether the message was new and is shown.
    pub fn add_message(&mut self, message: ChatMessage) -> bool {
        let seq = message.seq;
        if seq <= self.dropped_up_to
            || self.messages.contains_key(&seq)
            || self.detached_at.is_some_and(|kept| seq > kept)
        {
            return false;
        }
        let author = message.id.clone();
        let at = time::parse_ts_ms(&message.ts);
        self.messages.insert(seq, Shown { message: Arc::new(message), at });
        if self.messages.len() > MAX_MESSAGES {
            self.drop_oldest_message();
            if seq <= self.dropped_up_to {
                // Older than everything kept: it came and went at once.
                return false;
            }
        }
        self.added += 1;
        self.last_author = Some(author);
        true
    }

    /// Adds a notice after the newest message shown. O(1) amortised; never drops a message.
    pub fn add_notice(&mut self, notice: Notice) {
        self.notices_numbered += 1;
        let after = self.messages.last_key_value().map_or(self.dropped_up_to, |(&seq, _)| seq);
        if self.notices.len() >= MAX_NOTICES {
            self.notices.pop_front();
        }
        self.notices.push_back(AnchoredNotice { number: self.notices_numbered, after, notice });
    }

    /// A page of older messages (`GET /messages`, oldest first), read back by the reader: they
    /// go before what is shown, without counting as new. Past [`MAX_MESSAGES`] the *newest*
    /// go, since the reader is looking at the oldest (see `detached_at`). Returns how many
    /// were added.
    pub fn add_older(&mut self, page: Vec<ChatMessage>) -> usize {
        let Some(first) = page.first().map(|message| message.seq) else { return 0 };
        // Reading back reaches below what was let go before: those are wanted again.
        self.dropped_up_to = self.dropped_up_to.min(first.saturating_sub(1));
        let mut added = 0;
        for message in page {
            let seq = message.seq;
            if self.messages.contains_key(&seq) || self.detached_at.is_some_and(|kept| seq > kept) {
                continue;
            }
            let at = time::parse_ts_ms(&message.ts);
            self.messages.insert(seq, Shown { message: Arc::new(message), at });
            added += 1;
        }
        while self.messages.len() > MAX_MESSAGES {
            let Some((dropped, _)) = self.messages.pop_last() else { break };
            while self.notices.back().is_some_and(|notice| notice.after >= dropped) {
                self.notices.pop_back();
            }
            let kept = self.messages.last_key_value().map_or(0, |(&seq, _)| seq);
            self.detached_at = Some(kept);
        }
        added
    }

    /// The `seq` of the oldest message shown, where reading back continues.
    pub fn oldest_seq(&self) -> Option<u64> {
        self.messages.first_key_value().map(|(&seq, _)| seq)
    }

    /// The `seq` of the message after the oldest shown: where the reader's eye stays while a
    /// page goes in above (the oldest itself may lose its author line, as it now continues the
    /// page's last message, and so move).
    pub fn second_oldest_seq(&self) -> Option<u64> {
        self.messages.keys().nth(1).copied()
    }

    /// The `seq` of the newest message shown.
    pub fn newest_seq(&self) -> Option<u64> {
        self.messages.last_key_value().map(|(&seq, _)| seq)
    }

    /// The first message after `seen` not written by `me`: where "New since you were last
    /// here" goes. One's own messages are never news, even from another tab.
    pub fn first_new_after(&self, seen: u64, me: Option<&UserId>) -> Option<u64> {
        self.messages
            .range(seen.saturating_add(1)..)
            .find(|(_, shown)| Some(&shown.message.id) != me)
            .map(|(&seq, _)| seq)
    }

    /// The message `seq`, if it is shown.
    pub fn message(&self, seq: u64) -> Option<&ChatMessage> {
        self.messages.get(&seq).map(|shown| shown.message.as_ref())
    }

    /// The newest `count` messages shown, oldest first: what another tab starts from.
    pub fn newest(&self, count: usize) -> impl Iterator<Item = &ChatMessage> {
        let skip = self.messages.len().saturating_sub(count);
        self.messages.values().skip(skip).map(|shown| shown.message.as_ref())
    }

    /// The number of messages shown.
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// Whether reading back dropped the newest messages (see `detached_at`).
    pub fn is_detached(&self) -> bool {
        self.detached_at.is_some()
    }

    /// Back at the bottom after reading back: keeps the newest `keep` messages and lets the
    /// older ones go again, so a long read back does not stay in memory. Returns whether any
    /// went.
    pub fn trim_to_newest(&mut self, keep: usize) -> bool {
        let mut trimmed = false;
        while self.messages.len() > keep {
            self.drop_oldest_message();
            trimmed = true;
        }
        trimmed
    }

    /// The newest page (`GET /messages` without `before`) replaces what is shown: the reader
    /// jumped to the newest after reading back so far that the newest were let go.
    pub fn restart(&mut self, page: Vec<ChatMessage>) {
        let added = self.added;
        *self = Self { added, notices_numbered: self.notices_numbered, ..Self::default() };
        if let Some(first) = page.first() {
            self.dropped_up_to = first.seq.saturating_sub(1);
        }
        for message in page {
            let seq = message.seq;
            let at = time::parse_ts_ms(&message.ts);
            self.messages.insert(seq, Shown { message: Arc::new(message), at });
        }
    }

    fn drop_oldest_message(&mut self) {
        let Some((dropped, _)) = self.messages.pop_first() else { return };
        self.dropped_up_to = self.dropped_up_to.max(dropped);
        // Notices before the first message kept went with the messages around them. Anchors
        // only grow along the queue, so they are all at its front.
        while self.notices.front().is_some_and(|notice| notice.after < self.first_kept_seq()) {
            self.notices.pop_front();
        }
    }

    fn first_kept_seq(&self) -> u64 {
        self.messages.first_key_value().map_or(u64::MAX, |(&seq, _)| seq)
    }

    /// How many messages were ever added, and by whom the last one was.
    pub fn added(&self) -> (u64, Option<&UserId>) {
        (self.added, self.last_author.as_ref())
    }

    /// The lines as the list shows them, in order: messages by `seq`, each notice after the
    /// message it followed when it arrived. Each message knows whether it continues a group
    /// (same author as the message just before it, within [`time::GROUP_WINDOW_MS`]), which
    /// hides its author line. O(n), copying pointers only.
    pub fn rows(&self) -> Vec<Row> {
        let mut rows = Vec::with_capacity(self.messages.len() + self.notices.len());
        let mut notices = self.notices.iter().peekable();
        let mut previous: Option<&Shown> = None;
        for (&seq, shown) in &self.messages {
            while let Some(notice) = notices.next_if(|notice| notice.after < seq) {
                rows.push(Row::notice(notice));
                previous = None;
            }
            let continued = previous.is_some_and(|before| continues(before, shown));
            rows.push(Row {
                key: (EntryKey::Message(seq), continued),
                line: Line::Message(shown.clone()),
                continued,
            });
            previous = Some(shown);
        }
        rows.extend(notices.map(Row::notice));
        rows
    }
}

/// Whether `shown` continues the group of `before`: same author, close enough in time.
fn continues(before: &Shown, shown: &Shown) -> bool {
    before.message.id == shown.message.id
        && matches!((before.at, shown.at), (Some(before), Some(at)) if at - before < time::GROUP_WINDOW_MS)
}

/// What one line shows.
#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    Message(Shown),
    Notice(Notice),
}

/// One line as the list renders it. The key includes `continued`, so a line whose grouping
/// changes (a late message arrived before it) is rendered again.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub key: (EntryKey, bool),
    pub line: Line,
    pub continued: bool,
}

impl Row {
    fn notice(notice: &AnchoredNotice) -> Self {
        Self {
            key: (EntryKey::Notice(notice.number), false),
            line: Line::Notice(notice.notice.clone()),
            continued: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::MessageText;

    fn message_by(seq: u64, author: &str, ts: &str) -> ChatMessage {
        ChatMessage {
            id: UserId::parse(author).unwrap(),
            name: UserName::parse(author).unwrap(),
            message: MessageText::parse(&format!("message {seq}")).unwrap(),
            seq,
            ts: ts.into(),
            room: Default::default(),
        }
    }

    fn message(seq: u64) -> ChatMessage {
        message_by(seq, "a", "2026-11-24T10:00:00Z")
    }

    fn bob_joined() -> Notice {
        Notice::Joined(UserName::parse("Bob").unwrap())
    }

    #[test]
    fn the_first_new_message_is_the_first_by_someone_else_after_what_was_seen() {
        let mut timeline = Timeline::default();
        for (seq, author) in [(3, "a"), (5, "me"), (8, "me"), (9, "b"), (12, "a")] {
            timeline.add_message(message_by(seq, author, "2026-11-24T10:00:00Z"));
        }
        let me = UserId::parse("me").unwrap();
        assert_eq!(timeline.newest_seq(), Some(12));
        assert_eq!(timeline.first_new_after(3, Some(&me)), Some(9));
        assert_eq!(timeline.first_new_after(3, None), Some(5));
        assert_eq!(timeline.first_new_after(9, Some(&me)), Some(12));
        assert_eq!(timeline.first_new_after(12, Some(&me)), None);
        assert_eq!(Timeline::default().newest_seq(), None);
    }

    fn keys(timeline: &Timeline) -> Vec<EntryKey> {
        timeline.rows().iter().map(|row| row.key.0).collect()
    }

    fn message_seqs(timeline: &Timeline) -> Vec<u64> {
        timeline
            .rows()
            .iter()
            .filter_map(|row| match row.key.0 {
                EntryKey::Message(seq) => Some(seq),
                EntryKey::Notice(_) => None,
            })
            .collect()
    }

    /// A small xorshift generator: shuffles the same way on every run, with no dependency.
    struct Shuffler(u64);

    impl Shuffler {
        fn below(&mut self, bound: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % bound as u64) as usize
        }

        fn shuffle<T>(&mut self, items: &mut [T]) {
            for index in (1..items.len()).rev() {
                items.swap(index, self.below(index + 1));
            }
        }
    }

    #[test]
    fn a_replayed_seq_is_shown_once() {
        let mut timeline = Timeline::default();
        assert!(timeline.add_message(message(1)));
        assert!(timeline.add_message(message(2)));
        assert!(!timeline.add_message(message(1)));
        assert!(!timeline.add_message(message(2)));
        assert_eq!(keys(&timeline), [EntryKey::Message(1), EntryKey::Message(2)]);
        assert_eq!(timeline.added().0, 2);
    }

    #[test]
    fn a_late_message_takes_its_place_by_seq() {
        let mut timeline = Timeline::default();
        timeline.add_message(message(1));
        timeline.add_message(message(3));
        timeline.add_message(message(2));
        assert_eq!(keys(&timeline), [EntryKey::Message(1), EntryKey::Message(2), EntryKey::Message(3)]);
        timeline.add_message(message(4));
        assert_eq!(timeline.rows().last().map(|row| row.key.0), Some(EntryKey::Message(4)));
    }

    #[test]
    fn notices_stay_where_they_arrived_and_new_messages_follow_them() {
        let mut timeline = Timeline::default();
        timeline.add_message(message(1));
        timeline.add_notice(bob_joined());
        timeline.add_message(message(2));
        timeline.add_notice(Notice::Gap);
        assert_eq!(
            keys(&timeline),
            [EntryKey::Message(1), EntryKey::Notice(1), EntryKey::Message(2), EntryKey::Notice(2)]
        );
    }

    #[test]
    fn a_late_message_goes_before_the_next_message_not_before_a_notice() {
        let mut timeline = Timeline::default();
        timeline.add_notice(bob_joined());
        timeline.add_message(message(1));
        timeline.add_notice(Notice::Gap);
        timeline.add_message(message(3));
        timeline.add_message(message(2));
        assert_eq!(
            keys(&timeline),
            [
                EntryKey::Notice(1),
                EntryKey::Message(1),
                EntryKey::Notice(2),
                EntryKey::Message(2),
                EntryKey::Message(3)
            ]
        );
    }

    #[test]
    fn consecutive_messages_by_one_author_within_minutes_are_grouped() {
        let mut timeline = Timeline::default();
        timeline.add_message(message_by(1, "ann", "2026-11-24T10:00:00Z"));
        timeline.add_message(message_by(2, "ann", "2026-11-24T10:04:00Z"));
        timeline.add_message(message_by(3, "bob", "2026-11-24T10:04:30Z"));
        timeline.add_message(message_by(4, "ann", "2026-11-24T10:05:00Z"));
        timeline.add_message(message_by(5, "ann", "2026-11-24T10:20:00Z"));
        timeline.add_notice(Notice::Joined(UserName::parse("Cleo").unwrap()));
        timeline.add_message(message_by(6, "ann", "2026-11-24T10:20:01Z"));
        let continued: Vec<bool> = timeline.rows().iter().map(|row| row.continued).collect();
        assert_eq!(continued, [false, true, false, false, false, false, false]);
    }

    #[test]
    fn the_oldest_messages_go_past_the_limit() {
        let mut timeline = Timeline::default();
        for seq in 1..=(MAX_MESSAGES as u64 + 5) {
            timeline.add_message(message(seq));
        }
        let seqs = message_seqs(&timeline);
        assert_eq!(seqs.len(), MAX_MESSAGES);
        assert_eq!(seqs[0], 6);
        assert_eq!(timeline.added().0, MAX_MESSAGES as u64 + 5);
    }

    #[test]
    fn a_late_message_does_not_grow_the_list_past_its_cap() {
        let mut timeline = Timeline::default();
        for seq in (1..=MAX_MESSAGES as u64).map(|seq| seq * 2) {
            timeline.add_message(message(seq));
        }
        // The answer to a post often arrives before broadcasts older than it.
        timeline.add_message(message(1001));
        let seqs = message_seqs(&timeline);
        assert_eq!(seqs.len(), MAX_MESSAGES);
        assert_eq!(seqs.first(), Some(&4));
    }

    #[test]
    fn a_message_older_than_a_full_list_is_not_shown() {
        let mut timeline = Timeline::default();
        for seq in 11..=(MAX_MESSAGES as u64 + 10) {
            timeline.add_message(message(seq));
        }
        assert!(!timeline.add_message(message(5)));
        assert_eq!(message_seqs(&timeline).first(), Some(&11));
        assert_eq!(timeline.added().0, MAX_MESSAGES as u64);
    }

    #[test]
    fn a_duplicate_older_than_the_kept_window_is_not_added_again() {
        let mut timeline = Timeline::default();
        for seq in 1..=(MAX_MESSAGES as u64 + 10) {
            timeline.add_message(message(seq));
        }
        assert!(!timeline.add_message(message(3)), "seq 3 was shown and dropped already");
        let seqs = message_seqs(&timeline);
        assert_eq!(seqs.len(), MAX_MESSAGES);
        assert_eq!(seqs.first(), Some(&11));
    }

    #[test]
    fn notices_never_push_messages_out() {
        let mut timeline = Timeline::default();
        for seq in 1..=MAX_MESSAGES as u64 {
            timeline.add_message(message(seq));
        }
        for _ in 0..5 * MAX_MESSAGES {
            timeline.add_notice(bob_joined());
        }
        assert_eq!(message_seqs(&timeline), (1..=MAX_MESSAGES as u64).collect::<Vec<_>>());
        assert_eq!(timeline.rows().len(), MAX_MESSAGES + MAX_NOTICES);
    }

    #[test]
    fn a_notice_goes_with_the_message_before_it() {
        let mut timeline = Timeline::default();
        timeline.add_message(message(1));
        timeline.add_notice(bob_joined());
        timeline.add_message(message(2));
        timeline.add_notice(Notice::Gap);
        for seq in 3..=(MAX_MESSAGES as u64 + 1) {
            timeline.add_message(message(seq));
        }
        // Message 1 is gone, and with it the join after it; the gap after 2 stays.
        assert_eq!(&keys(&timeline)[..3], [EntryKey::Message(2), EntryKey::Notice(2), EntryKey::Message(3)]);
    }

    #[test]
    fn a_hundred_thousand_shuffled_messages_with_duplicates_keep_the_newest_in_order_once_each() {
        const COUNT: u64 = 100_000;
        let mut arrivals: Vec<u64> = (1..=COUNT).chain((1..=COUNT).step_by(3)).collect();
        let mut shuffler = Shuffler(0x9E37_79B9_7F4A_7C15);
        shuffler.shuffle(&mut arrivals);

        let mut timeline = Timeline::default();
        let mut shown = std::collections::HashSet::new();
        for (index, seq) in arrivals.into_iter().enumerate() {
            if timeline.add_message(message(seq)) {
                assert!(shown.insert(seq), "seq {seq} was shown twice");
            }
            if index % 7 == 0 {
                timeline.add_notice(bob_joined());
            }
            if index % 997 == 0 {
                let rows = timeline.rows();
                let seqs = message_seqs(&timeline);
                assert!(seqs.len() <= MAX_MESSAGES);
                assert!(rows.len() - seqs.len() <= MAX_NOTICES);
            }
        }

        let seqs = message_seqs(&timeline);
        assert_eq!(seqs.len(), MAX_MESSAGES, "notices never take a message's place");
        assert!(seqs.windows(2).all(|pair| pair[0] < pair[1]), "in seq order, each once");
        assert_eq!(seqs[0], COUNT - MAX_MESSAGES as u64 + 1, "the newest are kept");
        assert!(timeline.rows().len() <= MAX_MESSAGES + MAX_NOTICES);
    }

    /// Reading back: pages added above, the cap, and the way back to the newest.
    mod reading_back {
        use super::*;

        fn page(seqs: std::ops::RangeInclusive<u64>) -> Vec<ChatMessage> {
            seqs.map(message).collect()
        }

        #[test]
        fn older_pages_go_before_what_is_shown_without_counting_as_new() {
            let mut timeline = Timeline::default();
            for seq in 201..=250 {
                timeline.add_message(message(seq));
            }
            assert_eq!(timeline.add_older(page(101..=200)), 100);
            assert_eq!(timeline.add_older(page(150..=200)), 0, "a page read twice adds nothing");
            assert_eq!(message_seqs(&timeline), (101..=250).collect::<Vec<_>>());
            assert_eq!(timeline.added().0, 50);
            assert_eq!(timeline.oldest_seq(), Some(101));
        }

        #[test]
        fn reading_back_past_the_cap_lets_the_newest_go_until_the_reader_jumps_back() {
            let mut timeline = Timeline::default();
            for seq in 1001..=1050 {
                timeline.add_message(message(seq));
            }
            let mut end: u64 = 1000;
            while end > 0 {
                let start = end.saturating_sub(99).max(1);
                timeline.add_older(page(start..=end));
                end = start - 1;
            }
            assert!(timeline.len() <= MAX_MESSAGES);
            assert_eq!(timeline.oldest_seq(), Some(1));
            assert!(timeline.is_detached());
            assert!(!timeline.add_message(message(1051)), "no hole after the newest kept");
            timeline.restart(page(1002..=1051));
            assert!(!timeline.is_detached());
            assert_eq!(message_seqs(&timeline), (1002..=1051).collect::<Vec<_>>());
            assert!(timeline.add_message(message(1052)));
        }

        #[test]
        fn back_at_the_bottom_the_pages_read_back_go_and_can_be_read_again() {
            let mut timeline = Timeline::default();
            for seq in 401..=450 {
                timeline.add_message(message(seq));
            }
            timeline.add_older(page(101..=400));
            assert!(timeline.trim_to_newest(100));
            assert_eq!(timeline.oldest_seq(), Some(351));
            assert!(!timeline.add_message(message(200)), "a late replay stays out");
            assert_eq!(timeline.add_older(page(251..=350)), 100, "reading back brings them again");
            assert_eq!(timeline.oldest_seq(), Some(251));
        }
    }
}
