//! The rooms side of the browser: which rooms this browser follows, kept in `localStorage`
//! (`ssechat.rooms`, the names comma-separated) so a reload follows the same ones; and the two
//! requests about rooms, `GET /rooms` (the server's list) and `GET /messages` (a room's history,
//! page by page, for reading back and for a room followed while the stream was open).

use super::{http, storage};
use crate::{
    model::Followed,
    protocol::{MessagesPage, RoomList, RoomName},
};
use serde::de::DeserializeOwned;

const ROOMS_KEY: &str = "ssechat.rooms";

/// Messages asked for per page of history (the protocol allows up to 200).
pub const PAGE_LEN: u32 = 100;

/// The rooms followed at the last visit (`general` the first time).
pub fn stored() -> Followed {
    storage::read(ROOMS_KEY).map_or_else(Followed::default, |raw| Followed::parse_stored(&raw))
}

pub fn remember(followed: &Followed) {
    storage::write(ROOMS_KEY, &followed.to_stored());
}

/// `GET /rooms`.
pub async fn list() -> Result<RoomList, String> {
    get_json("/rooms", "The list of rooms could not be loaded. Try again.").await
}

/// `GET /messages`: the page of `room`'s history before `before` (the newest when `None`).
pub async fn messages(room: &RoomName, before: Option<u64>) -> Result<MessagesPage, String> {
    let mut url = format!("/messages?room={room}&limit={PAGE_LEN}");
    if let Some(before) = before {
        url.push_str(&format!("&before={before}"));
    }
    get_json(&url, "Older messages could not be loaded. Try again.").await
}

async fn get_json<T: DeserializeOwned>(url: &str, failed: &str) -> Result<T, String> {
    let response = http::fetch("GET", url, None, None).await.ok_or_else(|| failed.to_owned())?;
    if !response.ok() {
        return Err(failed.to_owned());
    }
    serde_json::from_str(&http::text(&response).await).map_err(|_| failed.to_owned())
}
