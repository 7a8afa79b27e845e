//! The rooms this browser follows, as the sidebar shows them: [`Followed`], in the order they
//! were followed, each with its count of unread messages and whether one of them mentions the
//! viewer. Plain Rust, so the rules (at most [`MAX_FOLLOWED`], never empty, what counts as
//! unread, what a mention is) are tested without a browser; the browser side stores the names
//! (`client/rooms.rs`) and opens one stream for all of them.
//!
//! A room's address is `/r/NAME`, and `/` is `general` ([`room_path`], [`room_from_path`]): the
//! router, the sidebar's links and the server's 404 for a bad name all read them here.

use crate::protocol::{ROOM_NAME_MAX_LEN, RoomName};

/// The protocol lets one stream follow at most 50 rooms; a 51st is refused here, with a
/// sentence, before any request.
pub const MAX_FOLLOWED: usize = 50;

/// What the sidebar says when a 51st room is asked for.
pub const TOO_MANY_FOLLOWED: &str =
    "You follow 50 rooms, the most one page can follow. Leave a room before joining another.";

/// What the page says when the server refused to create a room (`409 too many rooms`).
pub const SERVER_FULL: &str = "This server has too many rooms; try an existing one.";

/// One followed room, as its sidebar entry shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowedRoom {
    pub name: RoomName,
    /// Messages by others that arrived while another room was shown.
    pub unread: u32,
    /// Whether one of those mentions the viewer's name.
    pub mentioned: bool,
}

/// The followed rooms, in the order they were followed; never empty (`general` when nothing
/// else is left).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Followed {
    rooms: Vec<FollowedRoom>,
    /// Messages with a `seq` at or below this one are history, not news: they never count as
    /// unread. `u64::MAX` until the browser knows where the news starts (see
    /// [`Followed::news_after`]), so the history a fresh stream opens with is not counted.
    news_after: u64,
}

impl Default for Followed {
    fn default() -> Self {
        Self::from_names([RoomName::general()])
    }
}

impl Followed {
    /// These rooms, each once, at most [`MAX_FOLLOWED`]; `general` if there are none.
    pub fn from_names(names: impl IntoIterator<Item = RoomName>) -> Self {
        let mut followed = Self { rooms: Vec::new(), news_after: u64::MAX };
        for name in names {
            let _ = followed.follow(name);
        }
        if followed.rooms.is_empty() {
            followed.rooms.push(FollowedRoom::new(RoomName::general()));
        }
        followed
    }

    /// Reads the stored form ([`Followed::to_stored`]), skipping anything that is not a room
    /// name: storage is only ever a hint.
    pub fn parse_stored(raw: &str) -> Self {
        Self::from_names(raw.split(',').filter_map(|name| RoomName::parse(name.trim()).ok()))
    }

    /// The names, comma-separated: the stored form, and `rooms=` of the stream's address (room
    /// names need no escaping there).
    pub fn to_stored(&self) -> String {
        let mut out = String::with_capacity(self.rooms.len() * (ROOM_NAME_MAX_LEN / 2));
        for (index, room) in self.rooms.iter().enumerate() {
            if index > 0 {
                out.push(',');
            }
            out.push_str(room.name.as_str());
        }
        out
    }

    pub fn rooms(&self) -> &[FollowedRoom] {
        &self.rooms
    }

    pub fn names(&self) -> Vec<RoomName> {
        self.rooms.iter().map(|room| room.name.clone()).collect()
    }

    pub fn contains(&self, name: &RoomName) -> bool {
        self.rooms.iter().any(|room| &room.name == name)
    }

    /// Follows `name`: `Ok(true)` when it is new, `Ok(false)` when it was followed already,
    /// `Err` with a sentence when [`MAX_FOLLOWED`] rooms are followed.
    pub fn follow(&mut self, name: RoomName) -> Result<bool, &'static str> {
        if self.contains(&name) {
            return Ok(false);
        }
        if self.rooms.len() >= MAX_FOLLOWED {
            return Err(TOO_MANY_FOLLOWED);
        }
        self.rooms.push(FollowedRoom::new(name));
        Ok(true)
    }

    /// Stops following `name`. The last room is kept: a page always follows one. Returns
    /// whether it was followed and is now gone.
    pub fn unfollow(&mut self, name: &RoomName) -> bool {
        if self.rooms.len() <= 1 {
            return false;
        }
        let before = self.rooms.len();
        self.rooms.retain(|room| &room.name != name);
        self.rooms.len() != before
    }

    /// The room shown instead of one that is no longer followed: the first followed.
    pub fn first(&self) -> RoomName {
        self.rooms.first().map_or_else(RoomName::general, |room| room.name.clone())
    }

    /// Where the news starts: messages after `seq` count as unread from now on. Called with the
    /// newest `seq` of every room when a fresh stream opens (its history is older), and with
    /// the last `seq` seen when a stream resumes (everything it brings is news).
    pub fn news_after(&mut self, seq: u64) {
        self.news_after = self.news_after.min(seq);
    }

    /// Forgets where the news starts, for a fresh stream (a new join).
    pub fn reset_news(&mut self) {
        self.news_after = u64::MAX;
        for room in &mut self.rooms {
            room.unread = 0;
            room.mentioned = false;
        }
    }

    /// Whether the message `seq` is news rather than history (see [`Followed::news_after`]).
    pub fn is_news(&self, seq: u64) -> bool {
        seq > self.news_after
    }

    /// A message by someone else arrived in `name`, which is not the room shown. Returns whether
    /// it counted (it is news, and the room is followed).
    pub fn count_unread(&mut self, name: &RoomName, seq: u64, mentions_me: bool) -> bool {
        if !self.is_news(seq) {
            return false;
        }
        let Some(room) = self.rooms.iter_mut().find(|room| &room.name == name) else { return false };
        room.unread = room.unread.saturating_add(1);
        room.mentioned |= mentions_me;
        true
    }

    /// The room is shown: nothing in it is unread any more. Returns whether anything changed.
    pub fn mark_read(&mut self, name: &RoomName) -> bool {
        match self.rooms.iter_mut().find(|room| &room.name == name) {
            Some(room) if room.unread > 0 || room.mentioned => {
                room.unread = 0;
                room.mentioned = false;
                true
            }
            _ => false,
        }
    }
}

impl FollowedRoom {
    fn new(name: RoomName) -> Self {
        Self { name, unread: 0, mentioned: false }
    }
}

/// Whether `text` mentions `name`: the name, with ASCII letters in any case, not inside a
/// longer word (`@Ann`, `Ann,` and `ann` mention Ann; `Annabel` does not). ASCII folding only:
/// full Unicode case tables would cost the browser's bundle more than they are worth here.
pub fn mentions(text: &str, name: &str) -> bool {
    let name = name.trim().as_bytes();
    let text = text.as_bytes();
    if name.is_empty() || name.len() > text.len() {
        return false;
    }
    // A byte of a word: ASCII letters, digits, `_`, and any byte of a non-ASCII character.
    let word_byte = |byte: u8| byte.is_ascii_alphanumeric() || byte == b'_' || byte >= 0x80;
    (0..=text.len() - name.len()).any(|at| {
        text[at..at + name.len()].eq_ignore_ascii_case(name)
            && !at.checked_sub(1).is_some_and(|before| word_byte(text[before]))
            && !text.get(at + name.len()).is_some_and(|&after| word_byte(after))
    })
}

/// Parses a room name typed into a form; a refusal comes back as a sentence for the field.
pub fn parse_room(raw: &str) -> Result<RoomName, String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err("Type a room name.".to_owned());
    }
    RoomName::parse(raw).map_err(|_| {
        format!(
            "A room name is 1 to {ROOM_NAME_MAX_LEN} characters: lower-case letters a-z, digits, \
             '-' and '_'."
        )
    })
}

/// A room's address: `/` for `general`, `/r/NAME` for the others.
pub fn room_path(name: &RoomName) -> String {
    if name.is_general() { "/".to_owned() } else { format!("/r/{name}") }
}

/// What an address asks for: `Some(Ok(room))` for `/` (general) and `/r/NAME`, `Some(Err(()))`
/// for `/r/` with something that is not a room name (a 404), `None` for anything else.
pub fn room_from_path(path: &str) -> Option<Result<RoomName, ()>> {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    if path.is_empty() || path == "/" {
        return Some(Ok(RoomName::general()));
    }
    let name = path.strip_prefix("/r/")?;
    let name = name.strip_suffix('/').unwrap_or(name);
    Some(RoomName::parse(name).map_err(|_| ()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(name: &str) -> RoomName {
        RoomName::parse(name).unwrap()
    }

    #[test]
    fn a_page_follows_general_until_told_otherwise_and_never_nothing() {
        let mut followed = Followed::default();
        assert_eq!(followed.to_stored(), "general");
        assert!(!followed.unfollow(&room("general")), "the last room stays");
        assert_eq!(followed.follow(room("dev")), Ok(true));
        assert_eq!(followed.follow(room("dev")), Ok(false));
        assert!(followed.unfollow(&room("general")));
        assert_eq!(followed.to_stored(), "dev");
        assert_eq!(followed.first(), room("dev"));
    }

    #[test]
    fn the_stored_form_round_trips_and_skips_what_is_not_a_room() {
        let followed = Followed::parse_stored("general,dev,Bad!,dev,,ops");
        assert_eq!(followed.to_stored(), "general,dev,ops");
        assert_eq!(Followed::parse_stored("").to_stored(), "general");
        assert_eq!(Followed::parse_stored(&followed.to_stored()), followed);
    }

    #[test]
    fn a_fifty_first_room_is_refused_with_a_sentence() {
        let mut followed = Followed::from_names((0..60).map(|n| room(&format!("r{n}"))));
        assert_eq!(followed.rooms().len(), MAX_FOLLOWED);
        assert_eq!(followed.follow(room("one-more")), Err(TOO_MANY_FOLLOWED));
        assert_eq!(followed.follow(room("r3")), Ok(false), "one already followed is fine");
        assert!(followed.unfollow(&room("r3")));
        assert_eq!(followed.follow(room("one-more")), Ok(true));
    }

    #[test]
    fn history_is_not_news_and_reading_a_room_clears_it() {
        let mut followed = Followed::from_names([room("general"), room("dev")]);
        assert!(!followed.count_unread(&room("dev"), 5, false), "before the news starts");
        followed.news_after(10);
        assert!(!followed.count_unread(&room("dev"), 10, false));
        assert!(followed.count_unread(&room("dev"), 11, false));
        assert!(followed.count_unread(&room("dev"), 12, true));
        assert!(!followed.count_unread(&room("elsewhere"), 13, true), "not followed");
        let dev = &followed.rooms()[1];
        assert_eq!((dev.unread, dev.mentioned), (2, true));
        assert!(followed.mark_read(&room("dev")));
        assert!(!followed.mark_read(&room("dev")));
        assert_eq!((followed.rooms()[1].unread, followed.rooms()[1].mentioned), (0, false));
    }

    #[test]
    fn a_mention_is_the_name_as_a_word_in_any_case() {
        assert!(mentions("hi @Ann!", "Ann"));
        assert!(mentions("ANN, look", "ann"));
        assert!(mentions("ask ann", "Ann"));
        assert!(mentions("thanks Zoë", "zoë"));
        assert!(mentions("Zoë!", "Zoë"));
        assert!(!mentions("Zoëlle", "Zoë"));
        assert!(!mentions("Annabel is here", "Ann"));
        assert!(!mentions("joanna", "Ann"));
        assert!(!mentions("anything", " "));
    }

    #[test]
    fn addresses_name_rooms_and_bad_names_are_not_found() {
        assert_eq!(room_from_path("/"), Some(Ok(room("general"))));
        assert_eq!(room_from_path("/?name=Ann"), Some(Ok(room("general"))));
        assert_eq!(room_from_path("/r/dev"), Some(Ok(room("dev"))));
        assert_eq!(room_from_path("/r/dev/"), Some(Ok(room("dev"))));
        assert_eq!(room_from_path("/r/Bad!"), Some(Err(())));
        assert_eq!(room_from_path("/r/"), Some(Err(())));
        assert_eq!(room_from_path("/elsewhere"), None);
        assert_eq!(room_path(&room("general")), "/");
        assert_eq!(room_path(&room("dev")), "/r/dev");
    }

    #[test]
    fn a_typed_room_name_is_explained_when_refused() {
        assert_eq!(parse_room(" dev "), Ok(room("dev")));
        assert!(parse_room("Dev").unwrap_err().contains("lower-case"));
        assert_eq!(parse_room("  ").unwrap_err(), "Type a room name.");
    }
}
