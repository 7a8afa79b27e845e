//! `POST /message`: a message from the session's user, acknowledged once it is durable.
//!
//! The checks run in the protocol's order, and the first that fails answers: size (413),
//! content type (415), session (403), shape and values (400, the room's name included), a
//! body `id`/`name` that disagrees with the session (403), an author not in the room (403),
//! rate (429). Only then is the message appended; the hub hears of it from the store, not
//! from here.

use crate::{
    error::ApiError,
    form,
    limits::{ClientAddr, PeerAddr},
    state::AppState,
    store::StoreError,
};
use app::protocol::{InputError, MessageText, PostMessage, RoomName};
use axum::{
    Json,
    body::{Body, Bytes},
    extract::{Request, State},
    http::{HeaderMap, header},
    response::{IntoResponse, Response},
};

use std::{convert::Infallible, time::Duration};

/// The body encodings the protocol accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
enum BodyKind {
    Form,
    Multipart { boundary: String },
    Json,
}

impl BodyKind {
    fn from_headers(headers: &HeaderMap) -> Result<Self, ApiError> {
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .ok_or(ApiError::UnsupportedMediaType)?;
        let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        match essence.as_str() {
            "application/x-www-form-urlencoded" => Ok(Self::Form),
            "application/json" => Ok(Self::Json),
            "multipart/form-data" => multer::parse_boundary(content_type)
                .map(|boundary| Self::Multipart { boundary })
                .map_err(|_| ApiError::BadRequest("multipart body without a boundary".into())),
            _ => Err(ApiError::UnsupportedMediaType),
        }
    }

    async fn parse(self, body: Bytes) -> Result<PostMessage, ApiError> {
        match self {
            Self::Json => {
                // serde would also build the struct from a JSON array; the protocol's body is
                // an object, so anything else is refused before decoding.
                if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
                    return Err(ApiError::MalformedBody("expected a JSON object".into()));
                }
                serde_json::from_slice(&body).map_err(|error| ApiError::MalformedBody(error.to_string()))
            }
            Self::Form => {
                let pairs =
                    form::parse_pairs(&body).map_err(|error| ApiError::MalformedBody(error.to_string()))?;
                from_fields(pairs)
            }
            Self::Multipart { boundary } => {
                let chunks = futures_util::stream::once(async move { Ok::<_, Infallible>(body) });
                let mut multipart = multer::Multipart::new(chunks, boundary);
                let mut pairs = Vec::new();
                let malformed = |error: multer::Error| ApiError::MalformedBody(error.to_string());
                while let Some(field) = multipart.next_field().await.map_err(malformed)? {
                    let name = field.name().unwrap_or_default().to_owned();
                    if pairs.iter().any(|(existing, _)| *existing == name) {
                        return Err(ApiError::MalformedBody(format!("field {name} appears more than once")));
                    }
                    pairs.push((name, field.text().await.map_err(malformed)?));
                }
                from_fields(pairs)
            }
        }
    }
}

/// Builds the body from form fields, refusing unknown ones as the JSON decoder does.
fn from_fields(pairs: Vec<(String, String)>) -> Result<PostMessage, ApiError> {
    let mut body = PostMessage { message: String::new(), id: None, name: None, room: None };
    let mut has_message = false;
    for (key, value) in pairs {
        match key.as_str() {
            "message" => {
                body.message = value;
                has_message = true;
            }
            "id" => body.id = Some(value),
            "name" => body.name = Some(value),
            "room" => body.room = Some(value),
            other => return Err(ApiError::MalformedBody(format!("unknown field {other:?}"))),
        }
    }
    if !has_message {
        return Err(InputError::MessageMissing.into());
    }
    Ok(body)
}

/// Whether the browser says this request comes from another site's page: `Sec-Fetch-Site:
/// cross-site` (sent by every current browser), or else an `Origin` whose host is not the
/// request's `Host` (an opaque `null` origin included). The `SameSite=Strict` cookie already
/// keeps the session off such requests; this refuses them even where a browser or a proxy
/// gets that wrong. Requests without either header (curl, the load generator) are not
/// browsers' cross-site requests and pass.
fn is_cross_site(headers: &HeaderMap) -> bool {
    let text = |name: &str| headers.get(name).map(|value| value.to_str().unwrap_or("\u{fffd}"));
    if let Some(site) = text("sec-fetch-site") {
        return site.eq_ignore_ascii_case("cross-site");
    }
    let Some(origin) = text("origin") else { return false };
    let origin_host = origin.split_once("://").map(|(_, rest)| hostname(rest.trim_end_matches('/')));
    let host = text("host").map(hostname);
    match (origin_host, host) {
        (Some(origin_host), Some(host)) => !origin_host.eq_ignore_ascii_case(host),
        // `null`, or a malformed origin, or no Host to compare it with.
        _ => true,
    }
}

/// `host[:port]` without its port: a site is its host name, and a proxy may forward `Host`
/// without the port the browser used (nginx's `$host`).
fn hostname(authority: &str) -> &str {
    if let Some(end) = authority.strip_prefix('[').and_then(|rest| rest.find(']')) {
        return &authority[..end + 2];
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    }
}

async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    axum::body::to_bytes(body, limit).await.map_err(|_| ApiError::PayloadTooLarge { limit })
}

pub async fn post_message(State(state): State<AppState>, request: Request) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let body = read_body(&parts.headers, body, state.config.max_body_bytes).await?;
    let kind = BodyKind::from_headers(&parts.headers)?;
    if is_cross_site(&parts.headers) {
        return Err(ApiError::Forbidden("cross-site posts are refused: post from the chat's own page"));
    }
    let session = state
        .sessions
        .from_headers(&parts.headers)
        .ok_or(ApiError::Forbidden("no session: open the event stream (GET /sse) before posting"))?;
    let author = state
        .hub
        .authorize(&session)
        .ok_or(ApiError::Forbidden("your session has ended: reconnect to the chat before posting"))?;
    let fields = kind.parse(body).await?;
    let text = MessageText::parse(&fields.message)?;
    // A post that names its room is answered in version 2's shape, with the room.
    let named_room = fields.room.as_deref().map(RoomName::parse).transpose()?;
    let id_differs = fields.id.as_deref().is_some_and(|id| id != author.id.as_str());
    let name_differs = fields.name.as_deref().is_some_and(|name| name.trim() != author.name.as_str());
    if id_differs || name_differs {
        return Err(ApiError::Forbidden("id and name must be those of your session"));
    }
    let room = named_room.clone().unwrap_or_default();
    if !state.hub.is_in_room(&author.id, &room) {
        return Err(ApiError::Forbidden("not in room"));
    }
    state.rate.check(&author.id).map_err(|retry_after| ApiError::RateLimited { retry_after })?;
    let peer = parts.extensions.get::<PeerAddr>().copied();
    if let Some(client) = ClientAddr::of_request(peer, &parts.headers, &state.config.trusted_proxies) {
        state.addr_rate.check(&client).map_err(|retry_after| ApiError::RateLimited { retry_after })?;
    }
    let started = std::time::Instant::now();
    let message = state.store.append(author, room, text).await.map_err(|error| {
        if let StoreError::Backend(reason) = &error {
            tracing::error!(%reason, "appending a message failed");
        }
        if state.config.redis_url.is_some() {
            state.hub.metrics().redis_error();
        }
        ApiError::Unavailable {
            reason: "the message store is unavailable: retry shortly",
            retry_after: Duration::from_secs(1),
        }
    })?;
    state.hub.metrics().message_accepted(started.elapsed());
    Ok(match named_room {
        Some(_) => Json(message).into_response(),
        None => Json(message.v1()).into_response(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| (header::HeaderName::from_static(name), value.parse().unwrap()))
            .collect()
    }

    #[test]
    fn posts_from_another_site_are_told_from_the_chats_own() {
        assert!(is_cross_site(&headers(&[("sec-fetch-site", "cross-site")])));
        assert!(is_cross_site(&headers(&[("origin", "https://evil.example"), ("host", "chat.example")])));
        assert!(is_cross_site(&headers(&[("origin", "null"), ("host", "chat.example")])));
        assert!(!is_cross_site(&headers(&[("sec-fetch-site", "same-origin")])));
        assert!(!is_cross_site(&headers(&[("origin", "http://127.0.0.1:3000"), ("host", "127.0.0.1:3000")])));
        assert!(!is_cross_site(&headers(&[("host", "chat.example")])), "curl sends neither");
        assert!(
            !is_cross_site(&headers(&[("origin", "https://chat.example:8443"), ("host", "chat.example")])),
            "a proxy that forwards Host without the port"
        );
        assert!(!is_cross_site(&headers(&[("origin", "http://[::1]:3000"), ("host", "[::1]:3000")])));
        assert!(is_cross_site(&headers(&[("origin", "http://[::2]:3000"), ("host", "[::1]:3000")])));
    }
}
