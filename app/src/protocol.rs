//! The wire contract of `shared/protocol.md`, written once and used by both sides: the server
//! encodes every event with [`ServerEvent::to_sse_frame`], the browser decodes it with
//! [`ServerEvent::decode`]. Event names and JSON shapes are spelled here and nowhere else.
//!
//! Input is parsed, not validated: a [`UserId`], [`UserName`] or [`MessageText`] can only exist
//! if it satisfies the protocol's limits, so code that holds one never checks again. The same
//! parsers run in the browser (the join form) and on the server (the request edge), and
//! deserialising goes through them too, so a malformed event is a decode error, not bad state.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Longest `id`, in characters of `[A-Za-z0-9_-]`.
pub const USER_ID_MAX_LEN: usize = 64;
/// Longest `name`, in Unicode scalar values after trimming.
pub const USER_NAME_MAX_CHARS: usize = 32;
/// Longest message text, in Unicode scalar values after trimming.
pub const MESSAGE_MAX_CHARS: usize = 2000;
/// Longest room name, in characters of `[a-z0-9_-]`.
pub const ROOM_NAME_MAX_LEN: usize = 32;
/// The room every server has, and the one a version 1 client lives in.
pub const GENERAL: &str = "general";

/// Why a piece of user input was refused. `Display` is the plain-text reason sent with a 400,
/// and shown as is in the browser, so it is written for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("id and name are required")]
    IdOrNameMissing,
    #[error("id must be 1-64 characters of A-Z, a-z, 0-9, '_' or '-'")]
    IdInvalid,
    #[error("name must not be blank")]
    NameBlank,
    #[error("name must be at most 32 characters")]
    NameTooLong,
    #[error("name must not contain control characters")]
    NameControlChar,
    #[error("message is required")]
    MessageMissing,
    #[error("message must not be blank")]
    MessageBlank,
    #[error("message must be at most 2000 characters")]
    MessageTooLong,
    #[error("room must be 1-32 characters of a-z, 0-9, '_' or '-'")]
    RoomInvalid,
}

/// A user's stable identity, chosen by the client (a UUID in the browser).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserId(String);

impl UserId {
    pub fn parse(raw: &str) -> Result<Self, InputError> {
        let valid_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
        if raw.is_empty() || raw.len() > USER_ID_MAX_LEN || !raw.chars().all(valid_char) {
            return Err(InputError::IdInvalid);
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What people see as the author. Trimmed; 1-32 scalar values; no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserName(String);

impl UserName {
    pub fn parse(raw: &str) -> Result<Self, InputError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(InputError::NameBlank);
        }
        if trimmed.chars().count() > USER_NAME_MAX_CHARS {
            return Err(InputError::NameTooLong);
        }
        if trimmed.chars().any(char::is_control) {
            return Err(InputError::NameControlChar);
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The text of a message: trimmed, 1-2000 scalar values. Line breaks are kept; clients render
/// it as text, never as HTML.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MessageText(String);

impl MessageText {
    pub fn parse(raw: &str) -> Result<Self, InputError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(InputError::MessageBlank);
        }
        if trimmed.chars().count() > MESSAGE_MAX_CHARS {
            return Err(InputError::MessageTooLong);
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A room's name: 1-32 characters of `[a-z0-9_-]`. Lower case only, so two spellings never
/// name one room, and safe as it is in a URL path, a Redis key and an SSE line.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RoomName(String);

impl RoomName {
    pub fn parse(raw: &str) -> Result<Self, InputError> {
        let valid_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-';
        if raw.is_empty() || raw.len() > ROOM_NAME_MAX_LEN || !raw.chars().all(valid_char) {
            return Err(InputError::RoomInvalid);
        }
        Ok(Self(raw.to_owned()))
    }

    /// `general`, the room that always exists.
    pub fn general() -> Self {
        Self(GENERAL.to_owned())
    }

    pub fn is_general(&self) -> bool {
        self.0 == GENERAL
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for RoomName {
    fn default() -> Self {
        Self::general()
    }
}

macro_rules! string_newtype_conversions {
    ($($ty:ident),*) => {$(
        impl TryFrom<String> for $ty {
            type Error = InputError;
            fn try_from(raw: String) -> Result<Self, InputError> {
                Self::parse(&raw)
            }
        }
        impl From<$ty> for String {
            fn from(value: $ty) -> String {
                value.0
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    )*};
}
string_newtype_conversions!(UserId, UserName, MessageText, RoomName);

/// A member of the room.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct User {
    pub id: UserId,
    pub name: UserName,
}

/// A user with their JSON (`{"id":…,"name":…}`) written once, when they join: a room lists
/// its users in every newcomer's `all-users`, and copying bytes is cheaper than escaping the
/// same strings again for each newcomer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedUser {
    pub user: User,
    json: Box<str>,
}

impl EncodedUser {
    pub fn new(user: User) -> Self {
        // A user is two plain strings: serialising cannot fail.
        let json = serde_json::to_string(&user).unwrap_or_default().into_boxed_str();
        Self { user, json }
    }
}

/// A message as stored and broadcast. `seq` is assigned by the store: it starts at 1, grows by
/// one per message of any room and never repeats. `ts` is RFC 3339 UTC.
///
/// Serialised as version 2 has it, with its `room`; version 1's shape, without it, is
/// [`ChatMessage::v1`]. A message decoded without a `room` (from a version 1 server) is in
/// `general`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub id: UserId,
    pub name: UserName,
    pub message: MessageText,
    pub seq: u64,
    pub ts: String,
    #[serde(default)]
    pub room: RoomName,
}

/// A message in version 1's shape: no `room`, field for field otherwise.
#[derive(Debug, Serialize)]
pub struct ChatMessageV1<'a> {
    pub id: &'a UserId,
    pub name: &'a UserName,
    pub message: &'a MessageText,
    pub seq: u64,
    pub ts: &'a str,
}

impl ChatMessage {
    pub fn author(&self) -> User {
        User { id: self.id.clone(), name: self.name.clone() }
    }

    /// This message as a version 1 client sees it.
    pub fn v1(&self) -> ChatMessageV1<'_> {
        ChatMessageV1 { id: &self.id, name: &self.name, message: &self.message, seq: self.seq, ts: &self.ts }
    }
}

/// Data of `history-gap`: messages before `from` were asked for but are no longer retained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryGap {
    pub from: u64,
}

/// Data of `presence`, the large-room summary: an exact count and the most recent changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Presence {
    pub count: u64,
    pub joined: Vec<User>,
    pub left: Vec<User>,
}

/// The JSON body of `POST /message` (form bodies have the same fields). `id` and `name` are
/// optional and only checked against the session: the author always comes from the session.
/// Unknown fields are refused so that a client's typo is a clear 400, not a silent drop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostMessage {
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Version 2: the room to post in (`general` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
}

/// One page of `GET /messages`: retained messages of one room, oldest first, and whether
/// older ones are retained.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessagesPage {
    pub messages: Vec<ChatMessage>,
    pub more: bool,
}

/// One room in `GET /rooms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomSummary {
    pub room: RoomName,
    /// Its users, as presence counts them (the grace period included).
    pub users: u64,
    /// The `seq` of its newest message, if it has any.
    pub last_seq: Option<u64>,
}

/// `GET /rooms`: every room that exists, most recent message first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomList {
    pub rooms: Vec<RoomSummary>,
}

/// One page of `GET /users`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsersPage {
    pub users: Vec<User>,
    pub next: Option<String>,
}

/// Every event the server sends on `GET /sse`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
    /// First event on every stream: the whole room, the newcomer included, in join order.
    AllUsers(Vec<User>),
    NewUser(User),
    UserLeave(User),
    /// A repair snapshot of the room, sent only to a stream whose view is wrong.
    Users(Vec<User>),
    Message(ChatMessage),
    HistoryGap(HistoryGap),
    Presence(Presence),
}

/// The shape an event is written in: version 1 (a stream opened without `rooms`, which lives
/// in `general` and never hears a room named), or version 2, where every event says which
/// room it is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect<'a> {
    V1,
    V2 { room: &'a RoomName },
}

/// Version 2 data of `all-users` and `users`.
#[derive(Debug, Serialize, Deserialize)]
struct RoomUsers<T> {
    room: RoomName,
    users: T,
}

/// Version 2 data of the events that carry one value: its fields, and the room's.
#[derive(Debug, Serialize, Deserialize)]
struct InRoom<T> {
    room: RoomName,
    #[serde(flatten)]
    data: T,
}

/// Why an SSE event could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown event name {0:?}")]
    UnknownEvent(String),
    #[error("malformed data for {event}: {source}")]
    Data {
        event: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

impl ServerEvent {
    pub const ALL_USERS: &'static str = "all-users";
    pub const NEW_USER: &'static str = "new-user";
    pub const USER_LEAVE: &'static str = "user-leave";
    pub const USERS: &'static str = "users";
    pub const MESSAGE: &'static str = "message";
    pub const HISTORY_GAP: &'static str = "history-gap";
    pub const PRESENCE: &'static str = "presence";

    /// Every event name, for a client that must subscribe to each by name.
    pub const NAMES: [&'static str; 7] = [
        Self::ALL_USERS,
        Self::NEW_USER,
        Self::USER_LEAVE,
        Self::USERS,
        Self::MESSAGE,
        Self::HISTORY_GAP,
        Self::PRESENCE,
    ];

    /// The SSE `event:` name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::AllUsers(_) => Self::ALL_USERS,
            Self::NewUser(_) => Self::NEW_USER,
            Self::UserLeave(_) => Self::USER_LEAVE,
            Self::Users(_) => Self::USERS,
            Self::Message(_) => Self::MESSAGE,
            Self::HistoryGap(_) => Self::HISTORY_GAP,
            Self::Presence(_) => Self::PRESENCE,
        }
    }

    /// The SSE `id:` line: only messages carry one, so `Last-Event-ID` is always a `seq`.
    pub fn sse_id(&self) -> Option<u64> {
        match self {
            Self::Message(message) => Some(message.seq),
            _ => None,
        }
    }

    /// The `data:` payload as JSON, in version 1's shape.
    pub fn data_json(&self) -> String {
        let mut data = Vec::new();
        self.write_data(Dialect::V1, &mut data);
        // serde_json writes UTF-8 only.
        String::from_utf8(data).unwrap_or_default()
    }

    /// The `data:` payload as JSON, in version 2's shape for `room`: what a stream following
    /// `room` would carry (and what [`Self::decode_v2`] reads back).
    pub fn data_json_v2(&self, room: &RoomName) -> String {
        let mut data = Vec::new();
        self.write_data(Dialect::V2 { room }, &mut data);
        String::from_utf8(data).unwrap_or_default()
    }

    fn write_data(&self, dialect: Dialect<'_>, out: &mut Vec<u8>) {
        fn in_room<T: Serialize>(room: &RoomName, data: T) -> InRoom<T> {
            InRoom { room: room.clone(), data }
        }
        let written = match (dialect, self) {
            (Dialect::V1, Self::AllUsers(users) | Self::Users(users)) => serde_json::to_writer(out, users),
            (Dialect::V1, Self::NewUser(user) | Self::UserLeave(user)) => serde_json::to_writer(out, user),
            (Dialect::V1, Self::Message(message)) => serde_json::to_writer(out, &message.v1()),
            (Dialect::V1, Self::HistoryGap(gap)) => serde_json::to_writer(out, gap),
            (Dialect::V1, Self::Presence(presence)) => serde_json::to_writer(out, presence),
            (Dialect::V2 { room }, Self::AllUsers(users) | Self::Users(users)) => {
                serde_json::to_writer(out, &RoomUsers { room: room.clone(), users })
            }
            (Dialect::V2 { room }, Self::NewUser(user) | Self::UserLeave(user)) => {
                serde_json::to_writer(out, &in_room(room, user))
            }
            // A message names its own room.
            (Dialect::V2 { .. }, Self::Message(message)) => serde_json::to_writer(out, message),
            (Dialect::V2 { room }, Self::HistoryGap(gap)) => serde_json::to_writer(out, &in_room(room, gap)),
            (Dialect::V2 { room }, Self::Presence(presence)) => {
                serde_json::to_writer(out, &in_room(room, presence))
            }
        };
        // Serialising these plain structs (strings, integers, vectors) cannot fail.
        debug_assert!(written.is_ok());
    }

    /// The complete SSE frame in version 1's shape, ending in the blank line that dispatches
    /// it. JSON never holds a raw line break (serde escapes `\n` and `\r` inside strings), so
    /// one `data:` line carries the whole payload and no user text can start a line of its own.
    pub fn to_sse_frame(&self) -> String {
        self.to_sse_frame_in(Dialect::V1)
    }

    /// [`Self::to_sse_frame`] in either version's shape.
    pub fn to_sse_frame_in(&self, dialect: Dialect<'_>) -> String {
        let mut frame = Vec::with_capacity(128);
        self.write_sse_frame_in(dialect, &mut frame);
        // Field names are ASCII and serde_json writes UTF-8 only.
        String::from_utf8(frame).unwrap_or_default()
    }

    /// [`Self::to_sse_frame`], appended to `out`.
    pub fn write_sse_frame(&self, out: &mut Vec<u8>) {
        self.write_sse_frame_in(Dialect::V1, out);
    }

    /// [`Self::to_sse_frame_in`], appended to `out`.
    pub fn write_sse_frame_in(&self, dialect: Dialect<'_>, out: &mut Vec<u8>) {
        write_frame(out, self.name(), self.sse_id(), |out| self.write_data(dialect, out));
    }

    /// An `all-users` frame written from users encoded beforehand, in either version's shape,
    /// appended to `out`: byte for byte what [`Self::write_sse_frame_in`] writes for
    /// `ServerEvent::AllUsers` of the same users, without cloning each user into a list or
    /// escaping their strings again. A server writes one for every newcomer, listing up to a
    /// whole room.
    pub fn write_all_users_frame<'a>(
        dialect: Dialect<'_>,
        users: impl IntoIterator<Item = &'a EncodedUser>,
        out: &mut Vec<u8>,
    ) {
        write_frame(out, Self::ALL_USERS, None, |out| {
            if let Dialect::V2 { room } = dialect {
                out.extend_from_slice(b"{\"room\":");
                // A room name is a plain string; serialising it cannot fail.
                let _ = serde_json::to_writer(&mut *out, room);
                out.extend_from_slice(b",\"users\":");
            }
            out.push(b'[');
            for (index, user) in users.into_iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(user.json.as_bytes());
            }
            out.push(b']');
            if let Dialect::V2 { .. } = dialect {
                out.push(b'}');
            }
        });
    }

    /// Decodes a version 2 event: the room it is about, and the event. A `message` says its
    /// room itself; every other event carries `"room"` beside its version 1 fields (or, for
    /// `all-users` and `users`, around its list).
    pub fn decode_v2(name: &str, data: &str) -> Result<(RoomName, Self), DecodeError> {
        fn parse<T: serde::de::DeserializeOwned>(event: &'static str, data: &str) -> Result<T, DecodeError> {
            serde_json::from_str(data).map_err(|source| DecodeError::Data { event, source })
        }
        fn users(event: &'static str, data: &str) -> Result<(RoomName, Vec<User>), DecodeError> {
            let RoomUsers { room, users } = parse(event, data)?;
            Ok((room, users))
        }
        /// The room and the value of an event that carries one. Read as two plain structs
        /// (serde ignores the fields it does not know) rather than through `InRoom`'s
        /// `#[serde(flatten)]`, whose buffering decoder the browser would otherwise ship.
        fn in_room<T: serde::de::DeserializeOwned>(
            event: &'static str,
            data: &str,
        ) -> Result<(RoomName, T), DecodeError> {
            #[derive(Deserialize)]
            struct RoomOf {
                room: RoomName,
            }
            let RoomOf { room } = parse(event, data)?;
            Ok((room, parse(event, data)?))
        }
        Ok(match name {
            Self::ALL_USERS => {
                users(Self::ALL_USERS, data).map(|(room, users)| (room, Self::AllUsers(users)))?
            }
            Self::USERS => users(Self::USERS, data).map(|(room, users)| (room, Self::Users(users)))?,
            Self::NEW_USER => {
                in_room(Self::NEW_USER, data).map(|(room, user)| (room, Self::NewUser(user)))?
            }
            Self::USER_LEAVE => {
                in_room(Self::USER_LEAVE, data).map(|(room, user)| (room, Self::UserLeave(user)))?
            }
            Self::MESSAGE => {
                let message: ChatMessage = parse(Self::MESSAGE, data)?;
                (message.room.clone(), Self::Message(message))
            }
            Self::HISTORY_GAP => {
                in_room(Self::HISTORY_GAP, data).map(|(room, gap)| (room, Self::HistoryGap(gap)))?
            }
            Self::PRESENCE => {
                in_room(Self::PRESENCE, data).map(|(room, presence)| (room, Self::Presence(presence)))?
            }
            other => return Err(DecodeError::UnknownEvent(other.to_owned())),
        })
    }

    /// Decodes an event from its SSE name and data, as an `EventSource` hands them over.
    pub fn decode(name: &str, data: &str) -> Result<Self, DecodeError> {
        fn parse<T: serde::de::DeserializeOwned>(event: &'static str, data: &str) -> Result<T, DecodeError> {
            serde_json::from_str(data).map_err(|source| DecodeError::Data { event, source })
        }
        Ok(match name {
            Self::ALL_USERS => Self::AllUsers(parse(Self::ALL_USERS, data)?),
            Self::NEW_USER => Self::NewUser(parse(Self::NEW_USER, data)?),
            Self::USER_LEAVE => Self::UserLeave(parse(Self::USER_LEAVE, data)?),
            Self::USERS => Self::Users(parse(Self::USERS, data)?),
            Self::MESSAGE => Self::Message(parse(Self::MESSAGE, data)?),
            Self::HISTORY_GAP => Self::HistoryGap(parse(Self::HISTORY_GAP, data)?),
            Self::PRESENCE => Self::Presence(parse(Self::PRESENCE, data)?),
            other => return Err(DecodeError::UnknownEvent(other.to_owned())),
        })
    }
}

impl ChatMessage {
    /// This message's `message` frame in version 1's shape, the same bytes as
    /// [`ServerEvent::to_sse_frame`] gives, appended to `out` straight from a borrowed
    /// message: the server encodes every message it commits this way, without copying it
    /// into an event first.
    pub fn write_sse_frame(&self, out: &mut Vec<u8>) {
        write_frame(out, ServerEvent::MESSAGE, Some(self.seq), |out| {
            let written = serde_json::to_writer(out, &self.v1());
            debug_assert!(written.is_ok());
        });
    }

    /// This message's `message` frame in version 2's shape, with its `room`.
    pub fn write_sse_frame_v2(&self, out: &mut Vec<u8>) {
        write_frame(out, ServerEvent::MESSAGE, Some(self.seq), |out| {
            let written = serde_json::to_writer(out, self);
            debug_assert!(written.is_ok());
        });
    }
}

/// One SSE frame: `event:`, the `id:` line when there is one, the `data:` line, a blank line.
fn write_frame(out: &mut Vec<u8>, name: &str, id: Option<u64>, write_data: impl FnOnce(&mut Vec<u8>)) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.push(b'\n');
    if let Some(id) = id {
        out.extend_from_slice(b"id: ");
        out.extend_from_slice(id.to_string().as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(b"data: ");
    write_data(out);
    out.extend_from_slice(b"\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn an_all_users_frame_from_borrowed_users_is_the_event_s_own_frame() {
        let users = vec![user("u1", "Ann \"A\" <b>"), user("u2", "Bob")];
        let room = RoomName::parse("dev").unwrap();
        for dialect in [Dialect::V1, Dialect::V2 { room: &room }] {
            let mut borrowed = Vec::new();
            let encoded: Vec<EncodedUser> = users.iter().cloned().map(EncodedUser::new).collect();
            ServerEvent::write_all_users_frame(dialect, &encoded, &mut borrowed);
            let mut owned = Vec::new();
            ServerEvent::AllUsers(users.clone()).write_sse_frame_in(dialect, &mut owned);
            assert_eq!(String::from_utf8(borrowed).unwrap(), String::from_utf8(owned).unwrap());
        }
        let mut empty = Vec::new();
        ServerEvent::write_all_users_frame(Dialect::V1, [], &mut empty);
        assert_eq!(empty, b"event: all-users\ndata: []\n\n");
    }

    fn user(id: &str, name: &str) -> User {
        User { id: UserId::parse(id).unwrap(), name: UserName::parse(name).unwrap() }
    }

    fn message(seq: u64, text: &str) -> ChatMessage {
        ChatMessage {
            id: UserId::parse("alice-1").unwrap(),
            name: UserName::parse("Alice").unwrap(),
            message: MessageText::parse(text).unwrap(),
            seq,
            ts: "2026-11-24T10:00:00.123Z".into(),
            room: RoomName::general(),
        }
    }

    /// Splits a frame into (event, id, data) the way an `EventSource` would.
    fn parse_frame(frame: &str) -> (String, Option<String>, String) {
        assert!(frame.ends_with("\n\n"), "frame must end with a blank line: {frame:?}");
        let (mut event, mut id, mut data) = (String::new(), None, Vec::new());
        for line in frame.trim_end_matches('\n').split('\n') {
            assert!(!line.contains('\r'), "no carriage return may reach the wire");
            let (field, value) = line.split_once(": ").expect("every line is `field: value`");
            match field {
                "event" => event = value.to_owned(),
                "id" => id = Some(value.to_owned()),
                "data" => data.push(value.to_owned()),
                other => panic!("unexpected field {other}"),
            }
        }
        (event, id, data.join("\n"))
    }

    fn every_kind_of_event() -> Vec<ServerEvent> {
        vec![
            ServerEvent::AllUsers(vec![user("a", "Ann"), user("b", "Bob")]),
            ServerEvent::NewUser(user("c", "Cleo")),
            ServerEvent::UserLeave(user("c", "Cleo")),
            ServerEvent::Users(vec![]),
            ServerEvent::Message(message(7, "hello\nworld")),
            ServerEvent::HistoryGap(HistoryGap { from: 42 }),
            ServerEvent::Presence(Presence { count: 1001, joined: vec![user("d", "Dee")], left: vec![] }),
        ]
    }

    #[test]
    fn every_event_round_trips_through_its_sse_frame() {
        for event in every_kind_of_event() {
            let (name, _, data) = parse_frame(&event.to_sse_frame());
            assert_eq!(ServerEvent::decode(&name, &data).unwrap(), event);
        }
    }

    #[test]
    fn only_messages_carry_an_sse_id_equal_to_their_seq() {
        for event in every_kind_of_event() {
            let (_, id, _) = parse_frame(&event.to_sse_frame());
            match &event {
                ServerEvent::Message(m) => assert_eq!(id, Some(m.seq.to_string())),
                _ => assert_eq!(id, None),
            }
        }
    }

    #[test]
    fn message_data_has_the_protocol_field_names() {
        let value: serde_json::Value =
            serde_json::from_str(&ServerEvent::Message(message(3, "hi")).data_json()).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"id": "alice-1", "name": "Alice", "message": "hi", "seq": 3,
                               "ts": "2026-11-24T10:00:00.123Z"})
        );
    }

    #[test]
    fn a_message_writes_the_same_frame_as_its_event() {
        let message = message(7, "hello \"world\"\nagain");
        let mut written = b"before|".to_vec();
        message.write_sse_frame(&mut written);
        let expected = format!("before|{}", ServerEvent::Message(message).to_sse_frame());
        assert_eq!(String::from_utf8(written).unwrap(), expected);
        assert!(expected.starts_with("before|event: message\nid: 7\ndata: {"));
    }

    #[test]
    fn event_names_are_the_protocols() {
        let names: Vec<_> = every_kind_of_event().iter().map(ServerEvent::name).collect();
        assert_eq!(
            names,
            ["all-users", "new-user", "user-leave", "users", "message", "history-gap", "presence"]
        );
        assert_eq!(names, ServerEvent::NAMES);
    }

    #[test]
    fn every_event_round_trips_in_version_2_with_its_room() {
        let room = RoomName::parse("rust-dev").unwrap();
        for mut event in every_kind_of_event() {
            if let ServerEvent::Message(message) = &mut event {
                message.room = room.clone();
            }
            let (name, _, data) = parse_frame(&event.to_sse_frame_in(Dialect::V2 { room: &room }));
            let value: serde_json::Value = serde_json::from_str(&data).unwrap();
            assert_eq!(value["room"], "rust-dev", "{name}: {data}");
            assert_eq!(ServerEvent::decode_v2(&name, &data).unwrap(), (room.clone(), event));
        }
    }

    #[test]
    fn version_2_data_has_the_protocol_shapes() {
        let room = RoomName::parse("ops").unwrap();
        let v2 = Dialect::V2 { room: &room };
        let data = |event: ServerEvent| -> serde_json::Value {
            let (_, _, data) = parse_frame(&event.to_sse_frame_in(v2));
            serde_json::from_str(&data).unwrap()
        };
        assert_eq!(
            data(ServerEvent::AllUsers(vec![user("a", "Ann")])),
            serde_json::json!({"room": "ops", "users": [{"id": "a", "name": "Ann"}]})
        );
        assert_eq!(
            data(ServerEvent::NewUser(user("a", "Ann"))),
            serde_json::json!({"room": "ops", "id": "a", "name": "Ann"})
        );
        assert_eq!(
            data(ServerEvent::HistoryGap(HistoryGap { from: 9 })),
            serde_json::json!({"room": "ops", "from": 9})
        );
        assert_eq!(
            data(ServerEvent::Presence(Presence { count: 2, joined: vec![], left: vec![] })),
            serde_json::json!({"room": "ops", "count": 2, "joined": [], "left": []})
        );
    }

    #[test]
    fn version_1_never_names_a_room() {
        for event in every_kind_of_event() {
            let frame = event.to_sse_frame();
            assert!(!frame.contains("\"room\""), "{frame}");
        }
        let mut in_ops = message(4, "hi");
        in_ops.room = RoomName::parse("ops").unwrap();
        let mut v1 = Vec::new();
        in_ops.write_sse_frame(&mut v1);
        assert!(!String::from_utf8(v1).unwrap().contains("room"));
        let mut v2 = Vec::new();
        in_ops.write_sse_frame_v2(&mut v2);
        assert!(String::from_utf8(v2).unwrap().contains(r#""room":"ops""#));
    }

    #[test]
    fn a_message_without_a_room_is_in_general() {
        let decoded =
            ServerEvent::decode("message", &ServerEvent::Message(message(1, "x")).data_json()).unwrap();
        assert!(matches!(decoded, ServerEvent::Message(m) if m.room.is_general()));
    }

    #[test]
    fn room_names_follow_the_protocol() {
        assert_eq!(RoomName::parse("general").unwrap(), RoomName::general());
        assert!(RoomName::parse("a_b-9").is_ok());
        assert!(RoomName::parse(&"r".repeat(32)).is_ok());
        for bad in ["", "General", "a b", "é", "a/b", "a,b", &"r".repeat(33)] {
            assert_eq!(RoomName::parse(bad), Err(InputError::RoomInvalid), "{bad:?}");
        }
    }

    #[test]
    fn decoding_refuses_unknown_events_and_invalid_users() {
        assert!(matches!(ServerEvent::decode("nope", "{}"), Err(DecodeError::UnknownEvent(_))));
        let bad_id = r#"{"id": "has space", "name": "x"}"#;
        assert!(ServerEvent::decode("new-user", bad_id).is_err());
    }

    #[test]
    fn ids_follow_the_protocol() {
        assert!(UserId::parse("3f2a-_Z9").is_ok());
        assert!(UserId::parse(&"a".repeat(64)).is_ok());
        for bad in ["", " ", "a b", "é", "a/b", &"a".repeat(65)] {
            assert_eq!(UserId::parse(bad), Err(InputError::IdInvalid), "{bad:?}");
        }
    }

    #[test]
    fn names_are_trimmed_and_limited() {
        assert_eq!(UserName::parse("  Ann  ").unwrap().as_str(), "Ann");
        assert_eq!(UserName::parse(&"é".repeat(32)).unwrap().as_str().chars().count(), 32);
        assert_eq!(UserName::parse(" \t "), Err(InputError::NameBlank));
        assert_eq!(UserName::parse(&"é".repeat(33)), Err(InputError::NameTooLong));
        assert_eq!(UserName::parse("a\u{7}b"), Err(InputError::NameControlChar));
        assert_eq!(UserName::parse("a\nb"), Err(InputError::NameControlChar));
    }

    #[test]
    fn message_text_is_trimmed_keeps_inner_line_breaks_and_is_limited() {
        assert_eq!(MessageText::parse("  a\nb \n").unwrap().as_str(), "a\nb");
        assert!(MessageText::parse(&"x".repeat(2000)).is_ok());
        assert_eq!(MessageText::parse(&"x".repeat(2001)), Err(InputError::MessageTooLong));
        assert_eq!(MessageText::parse("\n \t"), Err(InputError::MessageBlank));
    }

    #[test]
    fn post_message_refuses_unknown_fields() {
        assert!(serde_json::from_str::<PostMessage>(r#"{"message": "hi"}"#).is_ok());
        assert!(serde_json::from_str::<PostMessage>(r#"{"message": "hi", "x": 1}"#).is_err());
        assert!(serde_json::from_str::<PostMessage>(r#"{"message": 5}"#).is_err());
    }

    proptest! {
        #[test]
        fn any_text_is_rejected_or_round_trips_without_breaking_its_frame(raw in ".*") {
            match MessageText::parse(&raw) {
                Err(_) => prop_assert!(raw.trim().is_empty() || raw.trim().chars().count() > 2000),
                Ok(text) => {
                    prop_assert_eq!(text.as_str(), raw.trim());
                    let mut chat = message(1, "x");
                    chat.message = text;
                    let event = ServerEvent::Message(chat);
                    let frame = event.to_sse_frame();
                    // Exactly three lines: event, id, data. Nothing the user wrote makes a fourth.
                    prop_assert_eq!(frame.matches('\n').count(), 4);
                    let (name, _, data) = parse_frame(&frame);
                    prop_assert_eq!(ServerEvent::decode(&name, &data).unwrap(), event);
                }
            }
        }

        #[test]
        fn any_name_is_rejected_or_round_trips(raw in "\\PC{0,40}|.*[\r\n\u{0}-\u{1f}].*") {
            match UserName::parse(&raw) {
                Err(_) => {}
                Ok(name) => {
                    prop_assert!(!name.as_str().chars().any(char::is_control));
                    let event = ServerEvent::NewUser(User { id: UserId::parse("x").unwrap(), name });
                    let (event_name, _, data) = parse_frame(&event.to_sse_frame());
                    prop_assert_eq!(ServerEvent::decode(&event_name, &data).unwrap(), event);
                }
            }
        }

        #[test]
        fn any_id_is_rejected_or_is_safe_in_a_url(raw in ".{0,70}") {
            if let Ok(id) = UserId::parse(&raw) {
                prop_assert!(id.as_str().bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
                prop_assert!(id.as_str().len() <= 64);
            }
        }
    }
}
