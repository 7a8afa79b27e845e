//! How this browser likes the chat, kept in `localStorage` so every tab and the next visit
//! agree: the theme (`ssechat.theme`), the rooms that notify of every message
//! (`ssechat.notify-all`), and how far each room was read (`ssechat.seen`, for "New since you
//! were last here" after a reload).

use super::storage::{read, write};
use crate::{
    model::{NotifyRooms, tabs::Theme},
    protocol::RoomName,
};
use std::collections::BTreeMap;

const THEME_KEY: &str = "ssechat.theme";
const NOTIFY_KEY: &str = "ssechat.notify-all";
const SEEN_KEY: &str = "ssechat.seen";

pub fn theme() -> Theme {
    read(THEME_KEY).map_or_else(Theme::default, |raw| Theme::parse(&raw))
}

pub fn remember_theme(theme: Theme) {
    write(THEME_KEY, theme.as_str());
}

/// Shows `theme`: `<html data-theme="…">`, which the style sheet reads.
pub fn apply_theme(theme: Theme) {
    let root = web_sys::window().and_then(|window| window.document()).and_then(|doc| doc.document_element());
    if let Some(root) = root {
        let _ = root.set_attribute("data-theme", theme.as_str());
    }
}

pub fn notify_rooms() -> NotifyRooms {
    read(NOTIFY_KEY).map_or_else(NotifyRooms::default, |raw| NotifyRooms::parse_stored(&raw))
}

pub fn remember_notify_rooms(rooms: &NotifyRooms) {
    write(NOTIFY_KEY, &rooms.to_stored());
}

/// The newest `seq` each room showed when it was last seen, as `room:seq` pairs.
pub fn seen() -> BTreeMap<RoomName, u64> {
    let raw = read(SEEN_KEY).unwrap_or_default();
    raw.split(',')
        .filter_map(|pair| {
            let (room, seq) = pair.split_once(':')?;
            Some((RoomName::parse(room).ok()?, seq.parse().ok()?))
        })
        .collect()
}

/// `room` was seen up to `seq`. Another tab may have seen further: the newest wins.
pub fn remember_seen(room: &RoomName, seq: u64) {
    let mut seen = seen();
    let entry = seen.entry(room.clone()).or_insert(seq);
    *entry = (*entry).max(seq);
    let stored: Vec<String> = seen.iter().map(|(room, seq)| format!("{room}:{seq}")).collect();
    write(SEEN_KEY, &stored.join(","));
}
