//! Desktop notifications, as rules: whether the browser may show them ([`Permission`]), the
//! rooms that notify of every message ([`NotifyRooms`], stored in the browser), which message
//! raises one ([`should_notify`]) and what it says ([`notification_text`]). Plain Rust, so the
//! rules are tested without a browser; `client/notify.rs` shows them.
//!
//! A message by someone else raises a notification when it mentions the viewer's name, or
//! when its room notifies of every message, and only while no tab of the chat is visible
//! (someone looking at the chat needs no notification). Only the tab holding the browser's
//! stream decides, so a browser shows one notification per message however many tabs it has.

use crate::protocol::{ChatMessage, RoomName};

/// What the browser allows (`Notification.permission`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Permission {
    /// No notifications in this browser (or the page is rendered on the server).
    #[default]
    Unsupported,
    /// Not asked yet: the page offers a button that asks (never on load).
    Ask,
    Granted,
    /// Refused: only the browser's settings can change it.
    Denied,
}

/// The longest body a notification shows; the message itself is a click away.
pub const BODY_MAX_CHARS: usize = 160;

/// The rooms that notify of every message, not only of mentions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotifyRooms {
    rooms: Vec<RoomName>,
}

impl NotifyRooms {
    /// Reads the stored form (names, comma-separated), skipping what is not a room name.
    pub fn parse_stored(raw: &str) -> Self {
        let mut rooms = Self::default();
        for room in raw.split(',').filter_map(|name| RoomName::parse(name.trim()).ok()) {
            rooms.set(room, true);
        }
        rooms
    }

    pub fn to_stored(&self) -> String {
        self.rooms.iter().map(RoomName::as_str).collect::<Vec<_>>().join(",")
    }

    pub fn contains(&self, room: &RoomName) -> bool {
        self.rooms.contains(room)
    }

    /// Turns "notify of every message" on or off for `room`. Returns whether that changed
    /// anything.
    pub fn set(&mut self, room: RoomName, on: bool) -> bool {
        match (on, self.rooms.iter().position(|known| *known == room)) {
            (true, None) => {
                self.rooms.push(room);
                true
            }
            (false, Some(index)) => {
                self.rooms.remove(index);
                true
            }
            _ => false,
        }
    }
}

/// Whether a new message by someone else raises a notification.
pub fn should_notify(
    permission: Permission,
    mentions_me: bool,
    room_notifies_all: bool,
    a_tab_is_visible: bool,
) -> bool {
    permission == Permission::Granted && (mentions_me || room_notifies_all) && !a_tab_is_visible
}

/// A notification's title ("Alice in #dev") and body (the message, cut short).
pub fn notification_text(message: &ChatMessage) -> (String, String) {
    let title = format!("{} in #{}", message.name, message.room);
    let text = message.message.as_str();
    let body = match text.char_indices().nth(BODY_MAX_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    };
    (title, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{MessageText, UserId, UserName};

    fn room(name: &str) -> RoomName {
        RoomName::parse(name).unwrap()
    }

    #[test]
    fn only_a_mention_or_a_room_that_notifies_of_everything_notifies_and_only_while_no_tab_is_seen() {
        use Permission::*;
        assert!(should_notify(Granted, true, false, false));
        assert!(should_notify(Granted, false, true, false));
        assert!(!should_notify(Granted, false, false, false), "an ordinary message");
        assert!(!should_notify(Granted, true, true, true), "a tab is visible");
        for permission in [Unsupported, Ask, Denied] {
            assert!(!should_notify(permission, true, true, false), "{permission:?}");
        }
    }

    #[test]
    fn the_rooms_that_notify_of_everything_are_kept_once_each_and_read_back() {
        let mut rooms = NotifyRooms::default();
        assert!(rooms.set(room("dev"), true));
        assert!(!rooms.set(room("dev"), true));
        assert!(rooms.set(room("ops"), true));
        assert!(rooms.contains(&room("dev")));
        assert_eq!(NotifyRooms::parse_stored(&rooms.to_stored()), rooms);
        assert!(rooms.set(room("dev"), false));
        assert!(!rooms.set(room("dev"), false));
        assert_eq!(rooms.to_stored(), "ops");
        assert_eq!(NotifyRooms::parse_stored("ops, Bad!,,dev"), NotifyRooms::parse_stored("ops,dev"));
    }

    #[test]
    fn a_notification_names_the_author_and_room_and_cuts_a_long_message_short() {
        let message = |text: &str| ChatMessage {
            id: UserId::parse("alice-1").unwrap(),
            name: UserName::parse("Alice").unwrap(),
            message: MessageText::parse(text).unwrap(),
            seq: 9,
            ts: "2026-12-06T10:00:00.000Z".to_owned(),
            room: room("dev"),
        };
        assert_eq!(notification_text(&message("hi Bob")), ("Alice in #dev".to_owned(), "hi Bob".to_owned()));
        let long = "é".repeat(BODY_MAX_CHARS + 5);
        let (_, body) = notification_text(&message(&long));
        assert_eq!(body.chars().count(), BODY_MAX_CHARS + 1);
        assert!(body.ends_with('…'));
    }
}
