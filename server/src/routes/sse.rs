//! `GET /sse?id=&name=`: opens a user's event stream.
//!
//! The query is parsed into validated types first (400), then the room decides whether this
//! browser may hold the `id` (409) and whether there is room for another stream (503). An
//! accepted stream binds the `id` with a session cookie when it was free, and starts with
//! `retry:`, `all-users` and the history it is owed.

use crate::{
    error::ApiError,
    form,
    hub::{OpenError, Refusal},
    state::AppState,
};
use app::protocol::{InputError, UserId, UserName};
use axum::{
    body::Body,
    extract::State,
    http::{HeaderMap, HeaderValue, Uri, header},
    response::{IntoResponse, Response},
};
use std::time::Duration;

/// A parsed `GET /sse` request.
#[derive(Debug)]
struct StreamRequest {
    id: UserId,
    name: UserName,
    last_event_id: Option<u64>,
}

impl StreamRequest {
    fn parse(uri: &Uri, headers: &HeaderMap) -> Result<Self, ApiError> {
        let pairs = form::parse_pairs(uri.query().unwrap_or("").as_bytes())
            .map_err(|error| ApiError::BadRequest(error.to_string()))?;
        let field = |name: &str| pairs.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str());
        let (id, name) = match (field("id"), field("name")) {
            (Some(id), Some(name)) if !id.trim().is_empty() && !name.trim().is_empty() => (id, name),
            _ => return Err(InputError::IdOrNameMissing.into()),
        };
        // The header (set by the browser on its own reconnects) wins over the query parameter
        // (set by clients that reconnect by hand and cannot set headers).
        let header = headers.get("last-event-id").map(|value| value.to_str().unwrap_or("\u{fffd}"));
        let last_event_id =
            match header.or(field("last_event_id")) {
                Some(raw) if !raw.trim().is_empty() => Some(raw.trim().parse::<u64>().map_err(|_| {
                    ApiError::BadRequest("Last-Event-ID must be the seq of a message".into())
                })?),
                _ => None,
            };
        Ok(Self { id: UserId::parse(id)?, name: UserName::parse(name)?, last_event_id })
    }
}

pub async fn open_stream(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let request = StreamRequest::parse(&uri, &headers)?;
    let session = state.sessions.from_headers(&headers);
    let opened = state.hub.open_stream(request.id, request.name, session.as_ref()).await.map_err(
        |error| match error {
            OpenError::Refused(Refusal::IdHeldElsewhere) => {
                ApiError::Conflict("this id is in use by someone else in the chat")
            }
            OpenError::Refused(Refusal::SessionHoldsAnotherId) => {
                ApiError::Conflict("this browser is already in the chat under another id")
            }
            OpenError::Refused(Refusal::TooManyStreams) => ApiError::Unavailable {
                reason: "too many open streams for this user: close a tab and retry",
                retry_after: Duration::from_secs(5),
            },
            OpenError::ServerFull => ApiError::Unavailable {
                reason: "the server is at its connection limit: retry shortly",
                retry_after: Duration::from_secs(5),
            },
            OpenError::RoomUnavailable => ApiError::Unavailable {
                reason: "the chat's shared store is unreachable: retry shortly",
                retry_after: Duration::from_secs(2),
            },
            OpenError::ShuttingDown => ApiError::Unavailable {
                reason: "the server is shutting down: retry shortly",
                retry_after: Duration::from_secs(1),
            },
        },
    )?;
    let cookie = opened.new_session.as_ref().map(|session| state.sessions.set_cookie_header(session));
    let user = opened.user.clone();
    let stream = opened.start(&state.hub, request.last_event_id).await.map_err(|error| {
        tracing::warn!(%error, "cannot read history for a new stream");
        ApiError::Unavailable {
            reason: "message history is unavailable: retry shortly",
            retry_after: Duration::from_secs(2),
        }
    })?;
    tracing::info!(user = %user.id, "stream opened");

    let (handoff, body) = stream.into_handoff();
    let mut response = Body::from_stream(body).into_response();
    response.extensions_mut().insert(handoff);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    if let Some(cookie) = cookie.and_then(|cookie| HeaderValue::from_str(&cookie).ok()) {
        headers.insert(header::SET_COOKIE, cookie);
    }
    Ok(response)
}
