//! Paging the whole user list of a large room: `GET /users?room=R&after=CURSOR&limit=N`. The
//! stream only samples a large room; this is how the people panel shows everyone when asked.

use super::http;
use crate::protocol::{RoomName, UsersPage};

/// Users asked for per page.
const PAGE_LEN: u32 = 100;

/// The page of `room`'s users after `after` (from the start when `None`), or why it could not
/// be had.
pub async fn page(room: &RoomName, after: Option<&str>) -> Result<UsersPage, String> {
    let mut url = format!("/users?room={room}&limit={PAGE_LEN}");
    if let Some(after) = after {
        url.push_str("&after=");
        url.push_str(&String::from(js_sys::encode_uri_component(after)));
    }
    let failed = || "The list of people could not be loaded. Try again.".to_owned();
    let response = http::fetch("GET", &url, None, None).await.ok_or_else(failed)?;
    if !response.ok() {
        return Err(failed());
    }
    serde_json::from_str(&http::text(&response).await).map_err(|_| failed())
}
