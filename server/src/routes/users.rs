//! `GET /users?after=CURSOR&limit=N`: the whole user list, page by page, for rooms too large
//! to send to everyone. A cursor is a position in join order signed by the server, so it
//! stays valid when users leave and a cursor the server did not issue is refused.

use crate::{error::ApiError, form, hub::JoinNo, session::SessionKey, state::AppState};
use app::protocol::UsersPage;
use axum::{Json, extract::State, http::Uri};

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 500;

fn cursor_payload(position: JoinNo) -> String {
    format!("users:{position}")
}

fn encode_cursor(key: &SessionKey, position: JoinNo) -> String {
    format!("{position}.{}", key.sign(cursor_payload(position).as_bytes()))
}

fn decode_cursor(key: &SessionKey, cursor: &str) -> Option<JoinNo> {
    let (position, signature) = cursor.split_once('.')?;
    let position: JoinNo = position.parse().ok()?;
    key.verify(cursor_payload(position).as_bytes(), signature).then_some(position)
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
    let after = match field("after") {
        None => None,
        Some(cursor) => Some(
            decode_cursor(&state.sessions, cursor)
                .ok_or_else(|| ApiError::BadRequest("after must be a cursor this server returned".into()))?,
        ),
    };
    let (users, next) = state.hub.users_page(after, limit);
    Ok(Json(UsersPage { users, next: next.map(|position| encode_cursor(&state.sessions, position)) }))
}
