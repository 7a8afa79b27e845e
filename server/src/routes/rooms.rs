//! `GET /rooms`: every room that exists, with its users (as presence counts them, the grace
//! period included) and its newest message's `seq`, most recent message first.

use crate::state::AppState;
use app::protocol::RoomList;
use axum::{Json, extract::State};

pub async fn list_rooms(State(state): State<AppState>) -> Json<RoomList> {
    Json(RoomList { rooms: state.hub.room_summaries() })
}
