//! `GET /messages?room=R&before=SEQ&limit=N`: scroll-back, one room's history a page at a
//! time, newest pages first (each page oldest first), read from the store.

use crate::{error::ApiError, form, state::AppState};
use app::protocol::{MessagesPage, RoomName};
use axum::{Json, extract::State, http::Uri};
use std::time::Duration;

const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 200;

pub async fn list_messages(State(state): State<AppState>, uri: Uri) -> Result<Json<MessagesPage>, ApiError> {
    let pairs = form::parse_pairs(uri.query().unwrap_or("").as_bytes())
        .map_err(|error| ApiError::BadRequest(error.to_string()))?;
    let field = |name: &str| pairs.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str());
    let room = field("room").map(RoomName::parse).transpose()?.unwrap_or_default();
    let limit = match field("limit") {
        None => DEFAULT_LIMIT,
        Some(raw) => {
            raw.parse::<usize>().ok().filter(|limit| (1..=MAX_LIMIT).contains(limit)).ok_or_else(|| {
                ApiError::BadRequest(format!("limit must be a whole number from 1 to {MAX_LIMIT}"))
            })?
        }
    };
    let before = match field("before") {
        None => None,
        Some(raw) => Some(
            raw.parse::<u64>()
                .map_err(|_| ApiError::BadRequest("before must be the seq of a message".into()))?,
        ),
    };
    let page = state.store.read_before(&room, before, limit).await.map_err(|error| {
        tracing::warn!(%error, "cannot read a page of history");
        ApiError::Unavailable {
            reason: "message history is unavailable: retry shortly",
            retry_after: Duration::from_secs(1),
        }
    })?;
    Ok(Json(MessagesPage { messages: page.messages, more: page.more }))
}
