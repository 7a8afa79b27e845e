//! The servers the load tester can drive, and how each is spoken to. Everything that differs
//! between them is here, so that the scenarios are the same for all three.
//!
//! - `ssechat`: `GET /sse?id=&name=` binds the id and sets a session cookie; `POST /message`
//!   (form body, the cookie) answers 200 once the message is durable; every `message` event
//!   carries its `seq` as the SSE `id`; presence events keep a user count.
//! - `nchan` (nginx): `GET /sub?id=ROOM` as an EventSource, `POST /pub?id=ROOM` with the raw
//!   text as body (201 or 202). No users, no presence.
//! - `hono`: the original design (`bench/peers/hono/server.ts`): `GET /sse?id=&name=`, `POST
//!   /message` form body with `message`, `id`, `name`, no cookies, no `seq`; its `all-users`
//!   leaves out the newcomer, and every two seconds it sends each stream a `users` event with
//!   one data line per user.

use crate::{http::PostRequest, sse::SseEvent};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// This repository's server.
    Ssechat,
    /// nginx with the nchan module (pub/sub, EventSource subscribers).
    Nchan,
    /// The original design: Hono on Bun (bench/peers/hono/server.ts).
    Hono,
}

/// A user as the load tester plays one.
#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub name: String,
}

impl User {
    /// A user with a fresh UUID, as the browser client picks one (`crypto.randomUUID()`).
    pub fn new(name: String) -> Self {
        Self { id: uuid::Uuid::new_v4().to_string(), name }
    }
}

/// How an event changes a stream's idea of how many users are in the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresenceChange {
    /// The room has exactly this many users (a full list, or a count).
    Count(u64),
    Joined,
    Left,
    /// A presence event that says nothing countable (a sample of a large room).
    Unchanged,
}

/// ssechat's `presence` data, as far as the count goes.
#[derive(Deserialize)]
struct PresenceCount {
    count: u64,
}

fn encode(text: &str) -> String {
    utf8_percent_encode(text, NON_ALPHANUMERIC).to_string()
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Self::Ssechat => "ssechat",
            Self::Nchan => "nchan",
            Self::Hono => "hono",
        }
    }

    /// The path and query a subscriber of `rooms` opens. `versioned`: the run has rooms, and
    /// ssechat is asked for them by name (protocol version 2); without, it follows `general`
    /// in version 1. nchan subscribes to several channels at once with its split delimiter
    /// (`,`, see bench/peers/nchan/nginx.conf.in).
    pub fn stream_path(self, rooms: &[String], versioned: bool, user: &User) -> String {
        let user_query = format!("id={}&name={}", encode(&user.id), encode(&user.name));
        match self {
            Self::Ssechat if versioned => format!("/sse?{user_query}&rooms={}", rooms.join(",")),
            Self::Ssechat | Self::Hono => format!("/sse?{user_query}"),
            Self::Nchan => {
                let channels: Vec<String> = rooms.iter().map(|room| encode(room)).collect();
                format!("/sub?id={}", channels.join(","))
            }
        }
    }

    /// The request that posts `text` in `room` as `user`; `versioned` as in
    /// [`Target::stream_path`].
    pub fn post_request(self, room: &str, versioned: bool, user: &User, text: &str) -> PostRequest {
        const FORM: &str = "application/x-www-form-urlencoded";
        match self {
            Self::Ssechat => PostRequest {
                path: "/message".into(),
                content_type: FORM,
                body: if versioned {
                    format!("message={}&room={}", encode(text), encode(room)).into_bytes()
                } else {
                    format!("message={}", encode(text)).into_bytes()
                },
            },
            Self::Hono => PostRequest {
                path: "/message".into(),
                content_type: FORM,
                body: format!("message={}&id={}&name={}", encode(text), encode(&user.id), encode(&user.name))
                    .into_bytes(),
            },
            Self::Nchan => PostRequest {
                path: format!("/pub?id={}", encode(room)),
                content_type: "text/plain",
                body: text.as_bytes().to_vec(),
            },
        }
    }

    /// True when posting needs the session cookie of an open stream.
    pub fn posts_need_a_session(self) -> bool {
        self == Self::Ssechat
    }

    /// True when the server tells streams who is in the room.
    pub fn has_presence(self) -> bool {
        self != Self::Nchan
    }

    /// The event that tells a subscriber it is in the room and will get every message from
    /// now on; `None` when the response head is all there is (nchan).
    pub fn ready_event(self) -> Option<&'static [u8]> {
        match self {
            Self::Ssechat | Self::Hono => Some(b"all-users"),
            Self::Nchan => None,
        }
    }

    /// True for the answers that acknowledge a post.
    pub fn acknowledges(self, status: u16) -> bool {
        match self {
            Self::Ssechat | Self::Hono => status == 200,
            // 201: delivered to subscribers; 202: queued, nobody subscribed.
            Self::Nchan => status == 201 || status == 202,
        }
    }

    /// The `seq` of a message event, when the server numbers messages (ssechat's SSE `id`).
    pub fn seq_of(self, event: &SseEvent<'_>) -> Option<u64> {
        if self != Self::Ssechat {
            return None;
        }
        std::str::from_utf8(event.id?).ok()?.parse().ok()
    }

    /// True for the events that exist to tell who is in the room.
    pub fn is_presence_event(self, name: &[u8]) -> bool {
        self.has_presence()
            && matches!(name, b"all-users" | b"new-user" | b"user-leave" | b"users" | b"presence")
    }

    /// What a presence event does to the stream's user count.
    pub fn presence_change(self, event: &SseEvent<'_>) -> Option<PresenceChange> {
        if !self.is_presence_event(event.name) {
            return None;
        }
        Some(match (self, event.name) {
            (_, b"new-user") => PresenceChange::Joined,
            (_, b"user-leave") => PresenceChange::Left,
            // ssechat's lists hold the newcomer; in a large room `all-users` is a sample and
            // the `presence` right behind it carries the count.
            (Self::Ssechat, b"all-users" | b"users") => PresenceChange::Count(event.data_objects as u64),
            (Self::Ssechat, _) => match serde_json::from_slice::<PresenceCount>(event.data) {
                Ok(presence) => PresenceChange::Count(presence.count),
                Err(_) => PresenceChange::Unchanged,
            },
            // The original design lists everyone but the newcomer.
            (Self::Hono, b"all-users") => PresenceChange::Count(event.data_objects as u64 + 1),
            // One `[object Object]` line per user: the original's `users` event.
            (Self::Hono, _) => PresenceChange::Count(event.data_lines as u64),
            (Self::Nchan, _) => PresenceChange::Unchanged,
        })
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event<'a>(name: &'a [u8], data: &'a [u8], objects: usize, lines: usize) -> SseEvent<'a> {
        SseEvent {
            name,
            data,
            data_truncated: false,
            data_lines: lines,
            data_objects: objects,
            id: None,
            wire_bytes: 0,
        }
    }

    #[test]
    fn each_target_counts_users_its_own_way() {
        let list = event(b"all-users", b"[..]", 3, 1);
        assert_eq!(Target::Ssechat.presence_change(&list), Some(PresenceChange::Count(3)));
        assert_eq!(Target::Hono.presence_change(&list), Some(PresenceChange::Count(4)));
        assert_eq!(Target::Nchan.presence_change(&list), None);
        let presence = event(b"presence", br#"{"count":1234,"joined":[],"left":[]}"#, 1, 1);
        assert_eq!(Target::Ssechat.presence_change(&presence), Some(PresenceChange::Count(1234)));
        let users = event(b"users", b"[object Object]\n[object Object]", 0, 2);
        assert_eq!(Target::Hono.presence_change(&users), Some(PresenceChange::Count(2)));
    }

    #[test]
    fn posts_are_encoded_as_each_server_expects() {
        let user = User { id: "a-1".into(), name: "pub 0".into() };
        let ssechat = Target::Ssechat.post_request("room", false, &user, "lt.1");
        assert_eq!(ssechat.body, b"message=lt%2E1");
        let in_a_room = Target::Ssechat.post_request("room-3", true, &user, "lt.1");
        assert_eq!(in_a_room.body, b"message=lt%2E1&room=room%2D3");
        let hono = Target::Hono.post_request("room", false, &user, "hi");
        assert_eq!(hono.body, b"message=hi&id=a%2D1&name=pub%200");
        let nchan = Target::Nchan.post_request("room", false, &user, "hi");
        assert_eq!((nchan.path.as_str(), nchan.body.as_slice()), ("/pub?id=room", &b"hi"[..]));
    }

    #[test]
    fn streams_ask_for_their_rooms_as_each_server_expects() {
        let user = User { id: "a".into(), name: "b".into() };
        let rooms = vec!["room-1".to_owned(), "room-2".to_owned()];
        assert_eq!(Target::Ssechat.stream_path(&rooms, true, &user), "/sse?id=a&name=b&rooms=room-1,room-2");
        assert_eq!(Target::Ssechat.stream_path(&rooms[..1], false, &user), "/sse?id=a&name=b");
        assert_eq!(Target::Nchan.stream_path(&rooms, true, &user), "/sub?id=room%2D1,room%2D2");
    }
}
