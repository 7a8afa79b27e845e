//! `GET /users?room=R&after=CURSOR&limit=N`: a room's whole user list (`general` by default),
//! page by page, for rooms too large to send to everyone. A cursor is a position in the
//! room's join order signed by the server with the room's name, so it stays valid when users
//! leave, and a cursor the server did not issue for this room is refused.

use crate::{error::ApiError, form, hub::JoinNo, session::SessionKey, state::AppState};
use app::protocol::{RoomName, UsersPage};
use axum::{Json, extract::State, http::Uri};

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 500;

fn cursor_payload(room: &RoomName, position: JoinNo) -> String {
    // `general`'s payload is version 1's, so its cursors stay valid across the upgrade.
    if room.is_general() { format!("users:{position}") } else { format!("users:{room}:{position}") }
}

fn encode_cursor(key: &SessionKey, room: &RoomName, position: JoinNo) -> String {
    format!("{position}.{}", key.sign(cursor_payload(room, position).as_bytes()))
}

fn decode_cursor(key: &SessionKey, room: &RoomName, cursor: &str) -> Option<JoinNo> {
    let (position, signature) = cursor.split_once('.')?;
    let position: JoinNo = position.parse().ok()?;
    key.verify(cursor_payload(room, position).as_bytes(), signature).then_some(position)
}

pub async fn list_users(State(state): State<AppState>, uri: Uri) -> Result<Json<UsersPage>, ApiError> {
    let pairs = form::parse_pairs(uri.query().unwrap_or("").as_bytes())
        .map_err(|error| ApiError::BadRequest(error.to_string()))?;
    let field = |name: &str| pairs.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str());
    let limit = match field("limit") {
        None => DEFAULT_LIMIT,
        Some(raw) => {
            raw.parse::<usize>().ok().filter(|limit| (1..=MAX_LIMIT).contains(limit)).ok_or_else(|| {
                ApiError::BadRequest(format!("limit must be a whole number from 1 to {MAX_LIMIT}"))
            })?
        }
    };
    let room = field("room").map(RoomName::parse).transpose()?.unwrap_or_default();
    let after = match field("after") {
        None => None,
        Some(cursor) => Some(decode_cursor(&state.sessions, &room, cursor).ok_or_else(|| {
            ApiError::BadRequest("after must be a cursor this server returned for this room".into())
        })?),
    };
    let (users, next) = state.hub.users_page(&room, after, limit);
    let next = next.map(|position| encode_cursor(&state.sessions, &room, position));
    Ok(Json(UsersPage { users, next }))
}
