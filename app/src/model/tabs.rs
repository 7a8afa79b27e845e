//! What the tabs of one browser tell each other ([`TabMessage`]), over a `BroadcastChannel`
//! (`client/tabs.rs`). Plain Rust and serde, so the messages and the snapshot a new tab starts
//! from are tested without a browser.
//!
//! ## One stream per browser
//!
//! Browsers give an origin six HTTP/1.1 connections. With one `EventSource` per tab, the
//! seventh tab of the chat hangs, and so does a post from the sixth. So the tabs elect a
//! leader (Web Locks: whoever holds the lock leads, and the next tab in line gets it when the
//! leader closes), and only the leader holds a stream. It relays every event as the server
//! wrote it ([`TabMessage::Event`]: the event's name and data), and every other tab applies it
//! through the same decoder as the stream's own events. A tab that opens, or joins, asks for
//! what the leader has ([`TabMessage::Hello`]) and gets it as stream events too
//! ([`snapshot`]): each room's people, then its newest messages. A `BroadcastChannel` delivers
//! one sender's messages in the order they were sent, so everything relayed after a snapshot
//! comes after it, and what came before is in it.
//!
//! A new leader continues after the newest `seq` it saw relayed (`last_event_id`), and since
//! messages are kept by `seq`, what the old leader relayed and the new one's stream replays is
//! shown once.
//!
//! ## Tabs agree
//!
//! Who the browser is, which rooms it follows, which rooms notify of every message and the
//! theme live in `localStorage`, shared by every tab; the tab where the viewer changed one
//! tells the others ([`TabMessage::Joined`], [`TabMessage::Renamed`], [`TabMessage::Left`],
//! [`TabMessage::Follow`] …), and they change what they show without writing storage again.

use super::{ConnectionState, Permission, Roster, Timeline};
use crate::protocol::{Presence, RoomName, ServerEvent, User};
use serde::{Deserialize, Serialize};

/// The `BroadcastChannel` of the chat's tabs, and the Web Lock whose holder leads.
pub const CHANNEL: &str = "ssechat.tabs";
pub const LEADER_LOCK: &str = "ssechat.leader";

/// The newest messages of each room a snapshot carries: a screenful and more. Older ones are
/// a scroll away (`GET /messages`).
pub const SNAPSHOT_MESSAGES: usize = 100;

/// One server event as the stream carried it: its `event:` name and `data:` line (version 2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireEvent {
    pub name: String,
    pub data: String,
}

impl WireEvent {
    pub fn of(event: &ServerEvent, room: &RoomName) -> Self {
        Self { name: event.name().to_owned(), data: event.data_json_v2(room) }
    }
}

/// What the leader's stream is doing, as every tab shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamMirror {
    pub status: ConnectionState,
    /// Why the stream was refused for good.
    pub error: Option<String>,
    /// Whether a burst of history is arriving (the message log is `aria-busy`).
    pub history_arriving: bool,
}

/// A colour scheme chosen in the account menu; `System` follows the operating system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Theme {
    #[default]
    System,
    Light,
    Dark,
}

impl Theme {
    pub const ALL: [Self; 3] = [Self::System, Self::Light, Self::Dark];

    /// The stored form, and the value of `<html data-theme>`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::System => "system",
            Self::Light => "light",
            Self::Dark => "dark",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::System => "As the system",
            Self::Light => "Light",
            Self::Dark => "Dark",
        }
    }

    /// Reads the stored form; anything else is `System`.
    pub fn parse(raw: &str) -> Self {
        Self::ALL.into_iter().find(|theme| theme.as_str() == raw).unwrap_or_default()
    }
}

/// One tab's message to the others. `tab` fields name a tab by the random id it made at load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TabMessage {
    /// Leader: one event of its stream, as it came.
    Event(WireEvent),
    /// Leader: its stream's state changed.
    Stream(StreamMirror),
    /// Leader: it has just taken the lead (the previous leader closed). A tab still waiting
    /// for a snapshot asks again.
    Leading,
    /// A tab that opened or joined: asks the leader for what it has.
    Hello {
        tab: String,
    },
    /// Leader, to the tab that said hello: what it has, as stream events, and the stream's
    /// state.
    Snapshot {
        to: String,
        events: Vec<WireEvent>,
        last_seq: Option<u64>,
        stream: StreamMirror,
    },
    /// The viewer joined in one tab.
    Joined {
        user: User,
    },
    /// The viewer took another name in one tab (a new id: see `client::Session::rename`).
    Renamed {
        user: User,
    },
    /// The viewer left the chat in one tab.
    Left,
    /// The server refused the name as invalid (the leader's stream got a 400).
    JoinRefused {
        sentence: String,
    },
    /// The viewer followed, or stopped following, a room.
    Follow {
        room: RoomName,
    },
    Unfollow {
        room: RoomName,
    },
    /// The viewer turned "notify of every message" on or off for a room.
    NotifyAll {
        room: RoomName,
        on: bool,
    },
    /// The viewer chose a theme.
    Theme {
        theme: Theme,
    },
    /// The viewer answered the browser's notification prompt, with this answer. Carried rather
    /// than read again: another tab's copy of `Notification.permission` may not have it yet.
    Permission {
        permission: Permission,
    },
    /// A tab came into view while the stream was reconnecting: the leader tries at once (its
    /// own timers may be throttled, hidden).
    Hurry,
    /// A tab became visible or hidden (or closed: hidden for good). The leader raises a
    /// notification only while no tab is visible.
    Visibility {
        tab: String,
        visible: bool,
    },
}

impl TabMessage {
    pub fn to_json(&self) -> String {
        // Plain enums of strings and numbers always serialise.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads a message from another tab; `None` for anything else (another version of the
    /// app in an old tab, say), which is ignored.
    pub fn from_json(raw: &str) -> Option<Self> {
        serde_json::from_str(raw).ok()
    }
}

/// What a tab that starts needs of one room, as the stream's own events: the people
/// (`all-users`, and the exact count of a large room as a `presence`), then the newest
/// [`SNAPSHOT_MESSAGES`] messages.
pub fn snapshot(room: &RoomName, roster: &Roster, timeline: &Timeline) -> Vec<WireEvent> {
    let mut events = Vec::with_capacity(2 + timeline.len().min(SNAPSHOT_MESSAGES));
    events.push(WireEvent::of(&ServerEvent::AllUsers(roster.users().to_vec()), room));
    if roster.is_large() {
        let presence = Presence { count: roster.count(), joined: Vec::new(), left: Vec::new() };
        events.push(WireEvent::of(&ServerEvent::Presence(presence), room));
    }
    for message in timeline.newest(SNAPSHOT_MESSAGES) {
        events.push(WireEvent::of(&ServerEvent::Message(message.clone()), room));
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{ChatMessage, MessageText, UserId, UserName};

    fn user(id: &str, name: &str) -> User {
        User { id: UserId::parse(id).unwrap(), name: UserName::parse(name).unwrap() }
    }

    fn message(room: &RoomName, seq: u64) -> ChatMessage {
        ChatMessage {
            seq,
            id: UserId::parse("alice-1").unwrap(),
            name: UserName::parse("Alice").unwrap(),
            message: MessageText::parse(&format!("number {seq}")).unwrap(),
            ts: "2026-12-06T10:00:00.000Z".to_owned(),
            room: room.clone(),
        }
    }

    /// Applies events the way a tab applies its stream's (without the page's signals).
    fn replay(events: &[WireEvent]) -> (RoomName, Roster, Timeline) {
        let mut roster = Roster::default();
        let mut timeline = Timeline::default();
        let mut room = RoomName::general();
        for event in events {
            let (in_room, event) = ServerEvent::decode_v2(&event.name, &event.data).unwrap();
            room = in_room;
            match event {
                ServerEvent::AllUsers(users) => roster.replace(users),
                ServerEvent::Presence(presence) => roster.apply_presence(presence, None),
                ServerEvent::Message(message) => {
                    timeline.add_message(message);
                }
                other => panic!("a snapshot carries no {}", other.name()),
            }
        }
        (room, roster, timeline)
    }

    #[test]
    fn a_snapshot_gives_a_new_tab_the_people_and_the_newest_messages_of_the_room() {
        let room = RoomName::parse("ops").unwrap();
        let mut roster = Roster::default();
        roster.replace(vec![user("alice-1", "Alice"), user("bob-2", "Bob")]);
        let mut timeline = Timeline::default();
        for seq in 1..=150 {
            timeline.add_message(message(&room, seq));
        }
        let (named, copied_roster, copied) = replay(&snapshot(&room, &roster, &timeline));
        assert_eq!(named, room);
        assert_eq!(copied_roster.users(), roster.users());
        assert!(!copied_roster.is_large());
        let seqs: Vec<u64> = copied.newest(usize::MAX).map(|message| message.seq).collect();
        assert_eq!(seqs, (51..=150).collect::<Vec<_>>());
    }

    #[test]
    fn a_snapshot_of_a_large_room_keeps_its_exact_count() {
        let room = RoomName::general();
        let mut roster = Roster::default();
        roster.replace(vec![user("alice-1", "Alice")]);
        roster.apply_presence(Presence { count: 5000, joined: vec![], left: vec![] }, None);
        let (_, copied, _) = replay(&snapshot(&room, &roster, &Timeline::default()));
        assert!(copied.is_large());
        assert_eq!(copied.count(), 5000);
        assert_eq!(copied.users(), roster.users());
    }

    #[test]
    fn messages_between_tabs_read_back_as_they_were_written_and_others_are_ignored() {
        let messages = [
            TabMessage::Hello { tab: "t1".to_owned() },
            TabMessage::Joined { user: user("alice-1", "Alice") },
            TabMessage::Follow { room: RoomName::parse("ops").unwrap() },
            TabMessage::Theme { theme: Theme::Dark },
            TabMessage::Permission { permission: Permission::Granted },
            TabMessage::Stream(StreamMirror {
                status: ConnectionState::Live,
                error: None,
                history_arriving: false,
            }),
            TabMessage::Event(WireEvent::of(
                &ServerEvent::Message(message(&RoomName::general(), 7)),
                &RoomName::general(),
            )),
        ];
        for sent in messages {
            assert_eq!(TabMessage::from_json(&sent.to_json()), Some(sent));
        }
        assert_eq!(TabMessage::from_json(r#"{"from-a-newer-version":{}}"#), None);
        assert_eq!(TabMessage::from_json("not json"), None);
    }

    #[test]
    fn a_theme_reads_back_from_its_stored_form_and_anything_else_is_the_system_s() {
        for theme in Theme::ALL {
            assert_eq!(Theme::parse(theme.as_str()), theme);
        }
        assert_eq!(Theme::parse("purple"), Theme::System);
    }
}
