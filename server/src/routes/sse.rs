//! `GET /sse?id=&name=[&rooms=]`: opens a user's event stream.
//!
//! The query is parsed into validated types first (400), then presence decides whether this
//! browser may hold the `id` (409), whether its rooms may exist (409) and whether there is
//! room for another stream (503). An accepted stream binds the `id` with a session cookie
//! when it was free, and starts with `retry:`, an `all-users` per room and the history it is
//! owed. A request that names its rooms speaks version 2; one that does not follows `general`
//! in version 1's shapes.

use crate::{
    error::ApiError,
    form,
    hub::{OpenError, Refusal},
    limits::{AddressSlot, ClientAddr, PeerAddr},
    session::Session,
    state::AppState,
};
use app::protocol::{InputError, RoomName, UserId, UserName};
use axum::{
    Extension,
    body::Body,
    extract::State,
    http::{HeaderMap, HeaderValue, Uri, header},
    response::{IntoResponse, Response},
};
use std::time::Duration;

/// Most rooms one stream may follow.
pub const MAX_ROOMS_PER_STREAM: usize = 50;

/// The rooms a stream follows, as its request named them.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Following {
    /// No `rooms`: version 1, in `general`.
    General,
    /// `rooms=R1,R2,...`: version 2, 1-50 distinct rooms in the order given.
    Rooms(Vec<RoomName>),
}

impl Following {
    fn parse(raw: Option<&str>) -> Result<Self, ApiError> {
        let Some(raw) = raw else { return Ok(Self::General) };
        let mut rooms: Vec<RoomName> = Vec::new();
        for name in raw.split(',') {
            let room = RoomName::parse(name)?;
            if rooms.contains(&room) {
                return Err(ApiError::BadRequest(format!("room {room} is named twice")));
            }
            rooms.push(room);
        }
        if rooms.len() > MAX_ROOMS_PER_STREAM {
            return Err(ApiError::BadRequest(format!(
                "a stream follows at most {MAX_ROOMS_PER_STREAM} rooms"
            )));
        }
        Ok(Self::Rooms(rooms))
    }

    fn rooms(&self) -> Vec<RoomName> {
        match self {
            Self::General => vec![RoomName::general()],
            Self::Rooms(rooms) => rooms.clone(),
        }
    }
}

/// A parsed `GET /sse` request.
#[derive(Debug)]
struct StreamRequest {
    id: UserId,
    name: UserName,
    following: Following,
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
        let (id, name) = (UserId::parse(id)?, UserName::parse(name)?);
        let following = Following::parse(field("rooms"))?;
        Ok(Self { id, name, following, last_event_id })
    }
}

/// The refusals of [`crate::hub::Hub::open_stream`], as the protocol answers them.
fn refusal(error: OpenError) -> ApiError {
    match error {
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
        OpenError::TooManyRooms => ApiError::Conflict("too many rooms"),
        OpenError::ServerFull => ApiError::Unavailable {
            reason: "the server is at its connection limit: retry shortly",
            retry_after: Duration::from_secs(5),
        },
        OpenError::RoomUnavailable | OpenError::JoinNotMirrored { .. } => ApiError::Unavailable {
            reason: "the chat's shared store is unreachable: retry shortly",
            retry_after: Duration::from_secs(2),
        },
        OpenError::ShuttingDown => ApiError::Unavailable {
            reason: "the server is shutting down: retry shortly",
            retry_after: Duration::from_secs(1),
        },
    }
}

/// A 503 for a stream that failed after its id was bound: the id stays bound to this browser
/// for the grace period, so the answer carries the cookie, or the client's own retry would be
/// refused as someone else's (409).
fn unavailable_keeping_the_binding(
    state: &AppState,
    new_session: Option<&Session>,
    reason: &'static str,
) -> Response {
    let mut response = ApiError::Unavailable { reason, retry_after: Duration::from_secs(2) }.into_response();
    if let Some(cookie) = new_session.and_then(|session| cookie_header(state, session)) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

fn cookie_header(state: &AppState, session: &Session) -> Option<HeaderValue> {
    HeaderValue::from_str(&state.sessions.set_cookie_header(session)).ok()
}

/// `HEAD /sse?...`: what a `GET` would answer, checked the same way as far as that can be done
/// without touching the room: the query (400), then the stream's headers. Nothing is bound,
/// joined or counted.
pub async fn describe_stream(uri: Uri, headers: HeaderMap) -> Result<Response, ApiError> {
    StreamRequest::parse(&uri, &headers)?;
    let mut response = Response::new(Body::empty());
    set_stream_headers(response.headers_mut());
    Ok(response)
}

fn set_stream_headers(headers: &mut HeaderMap) {
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
}

/// Takes what a stream from `client` counts against its address: a slot among its open
/// streams and, when the request would bind an id (its session does not hold this one), one
/// of the new ids it may bind per minute.
fn admit_client(
    state: &AppState,
    client: ClientAddr,
    request: &StreamRequest,
    session: Option<&Session>,
) -> Result<AddressSlot, ApiError> {
    let binds = session.is_none_or(|session| session.id != request.id);
    if binds {
        state.new_ids.check(&client).map_err(|retry_after| ApiError::Unavailable {
            reason: "too many new users from your address: retry shortly",
            retry_after,
        })?;
    }
    state.address_slots.try_take(client.0).ok_or(ApiError::Unavailable {
        reason: "too many open streams from your address: close a tab and retry",
        retry_after: Duration::from_secs(5),
    })
}

pub async fn open_stream(
    State(state): State<AppState>,
    peer: Option<Extension<PeerAddr>>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let request = StreamRequest::parse(&uri, &headers)?;
    let session = state.sessions.from_headers(&headers);
    let address_slot = match ClientAddr::of_request(
        peer.map(|Extension(peer)| peer),
        &headers,
        &state.config.trusted_proxies,
    ) {
        Some(client) => Some(admit_client(&state, client, &request, session.as_ref())?),
        None => None,
    };
    let rooms = request.following.rooms();
    let version_1 = request.following == Following::General;
    let opened = match state
        .hub
        .open_stream(request.id, request.name, session.as_ref(), address_slot, &rooms, version_1)
        .await
    {
        Ok(opened) => opened,
        Err(OpenError::JoinNotMirrored { new_session }) => {
            return Ok(unavailable_keeping_the_binding(
                &state,
                new_session.as_ref(),
                "the chat's shared rooms are slow to answer: retry shortly",
            ));
        }
        Err(error) => return Err(refusal(error)),
    };
    let new_session = opened.new_session.clone();
    let user = opened.user.clone();
    let stream = match opened.start(state.store.as_ref(), request.last_event_id).await {
        Ok(stream) => stream,
        Err(error) => {
            tracing::warn!(%error, "cannot read history for a new stream");
            return Ok(unavailable_keeping_the_binding(
                &state,
                new_session.as_ref(),
                "message history is unavailable: retry shortly",
            ));
        }
    };
    let cookie = new_session.as_ref().and_then(|session| cookie_header(&state, session));
    tracing::info!(user = %user.id, "stream opened");

    let (handoff, body) = stream.into_handoff();
    let mut response = Body::from_stream(body).into_response();
    response.extensions_mut().insert(handoff);
    let headers = response.headers_mut();
    set_stream_headers(headers);
    if let Some(cookie) = cookie {
        headers.insert(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        config::Config,
        hub::{Hub, LocalPresence, Rooms},
        limits::{AddressSlots, RateLimiter},
        metrics::Metrics,
        session::SessionKey,
        store::{MessageStore, Page, Replay, RoomHead, StoreError},
    };
    use app::protocol::{ChatMessage, MessageText, User};
    use futures_util::future::BoxFuture;
    use std::sync::Arc;
    use tokio_util::sync::CancellationToken;

    /// A store whose replay reads fail, as a store that lost its backend does, and which says
    /// it lost everything up to 99 (so that memory cannot serve a replay from before it).
    struct FailingReads;

    impl MessageStore for FailingReads {
        fn append(
            &self,
            _: User,
            _: RoomName,
            _: MessageText,
        ) -> BoxFuture<'_, Result<ChatMessage, StoreError>> {
            Box::pin(async { Err(StoreError::Unavailable) })
        }
        fn read_after<'a>(
            &'a self,
            _: &'a RoomName,
            _: u64,
            limit: usize,
        ) -> BoxFuture<'a, Result<Replay, StoreError>> {
            Box::pin(async move {
                if limit == 0 {
                    Ok(Replay { messages: Vec::new(), horizon: 99 })
                } else {
                    Err(StoreError::Unavailable)
                }
            })
        }
        fn read_last<'a>(
            &'a self,
            _: &'a RoomName,
            _: usize,
        ) -> BoxFuture<'a, Result<Vec<ChatMessage>, StoreError>> {
            Box::pin(async { Ok(Vec::new()) })
        }
        fn read_before<'a>(
            &'a self,
            _: &'a RoomName,
            _: Option<u64>,
            _: usize,
        ) -> BoxFuture<'a, Result<Page, StoreError>> {
            Box::pin(async { Err(StoreError::Unavailable) })
        }
        fn rooms(&self) -> BoxFuture<'_, Result<Vec<RoomHead>, StoreError>> {
            Box::pin(async { Ok(Vec::new()) })
        }
        fn close(&self) -> BoxFuture<'_, ()> {
            Box::pin(async {})
        }
    }

    async fn state_with_failing_reads() -> AppState {
        let config = Config::for_tests(std::env::temp_dir());
        let metrics = Arc::new(Metrics::default());
        let settings = crate::hub_config(&config);
        let rooms = Rooms::new(&settings, Arc::clone(&metrics));
        let store: Arc<dyn MessageStore> = Arc::new(FailingReads);
        rooms.preload(store.as_ref()).await.expect("preloaded");
        // Messages 100 and 101 are in memory; anything older must be read from the store.
        let author = User { id: UserId::parse("bob").unwrap(), name: UserName::parse("Bob").unwrap() };
        let messages: Vec<ChatMessage> = (100..=101)
            .map(|seq| ChatMessage {
                id: author.id.clone(),
                name: author.name.clone(),
                message: MessageText::parse("hi").unwrap(),
                seq,
                ts: "2026-01-01T00:00:00.000Z".into(),
                room: RoomName::general(),
            })
            .collect();
        rooms.publish(&messages, &mut || {});
        let presence = Box::new(LocalPresence::new(rooms.clone(), settings.leave_grace));
        let hub = Hub::new(settings, presence, rooms, metrics, CancellationToken::new());
        AppState {
            leptos_options: Arc::new(leptos::config::LeptosOptions::builder().output_name("test").build()),
            rate: Arc::new(RateLimiter::new(10, 5.0)),
            addr_rate: Arc::new(RateLimiter::new(10, 5.0)),
            new_ids: Arc::new(RateLimiter::new(10, 1.0)),
            address_slots: AddressSlots::new(10),
            sessions: SessionKey::from_secret(&[3u8; 32]).unwrap(),
            config: Arc::new(config),
            hub,
            store,
        }
    }

    #[tokio::test]
    async fn a_stream_refused_after_binding_its_id_still_gets_the_cookie_for_it() {
        let state = state_with_failing_reads().await;
        let uri: Uri = "/sse?id=ann&name=Ann&last_event_id=1".parse().unwrap();
        let response =
            open_stream(State(state.clone()), None, uri, HeaderMap::new()).await.expect("an answer");
        assert_eq!(response.status(), axum::http::StatusCode::SERVICE_UNAVAILABLE);
        assert!(response.headers().contains_key(header::RETRY_AFTER));
        let set_cookie = response.headers().get(header::SET_COOKIE).expect("the cookie of the binding");
        let mut retry_headers = HeaderMap::new();
        let cookie = set_cookie.to_str().unwrap().split(';').next().unwrap().to_owned();
        retry_headers.insert(header::COOKIE, cookie.parse().unwrap());
        let session = state.sessions.from_headers(&retry_headers).expect("a valid cookie");
        assert_eq!(state.hub.authorize(&session).map(|user| user.id.to_string()), Some("ann".into()));
        // The retry, with the cookie and a replay memory can serve, is the same user's stream.
        let uri: Uri = "/sse?id=ann&name=Ann&last_event_id=100".parse().unwrap();
        let retry = open_stream(State(state), None, uri, retry_headers).await.expect("an answer");
        assert_eq!(retry.status(), axum::http::StatusCode::OK, "not a 409");
    }
}
