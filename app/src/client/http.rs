//! The few HTTP requests the page makes besides its stream (probing `/sse`, `POST /message`,
//! `GET /users`), through gloo-net's `fetch` wrapper. Same origin, so the session cookie goes
//! along by itself.

use crate::reconnect;
use gloo_net::http::{Request, Response};
use std::time::Duration;
use web_sys::AbortSignal;

/// Sends a request; `json` becomes the body, sent as `application/json`. `None` when there was
/// no answer at all (offline, refused connection, aborted).
pub async fn fetch(
    method: &str,
    url: &str,
    json: Option<&str>,
    signal: Option<&AbortSignal>,
) -> Option<Response> {
    let builder = match method {
        "POST" => Request::post(url),
        _ => Request::get(url),
    }
    .abort_signal(signal);
    let request = match json {
        Some(json) => builder.header("Content-Type", "application/json").body(json.to_owned()).ok()?,
        None => builder.build().ok()?,
    };
    request.send().await.ok()
}

/// The body as text; empty if it cannot be read.
pub async fn text(response: &Response) -> String {
    response.text().await.unwrap_or_default()
}

/// `Retry-After` in whole seconds (rounded up), when the server sent one: delta-seconds or an
/// HTTP date, read against this browser's clock.
pub fn retry_after(response: &Response) -> Option<u32> {
    let wait = retry_after_wait(response)?;
    Some(u32::try_from(wait.as_millis().div_ceil(1000)).unwrap_or(u32::MAX))
}

/// `Retry-After` as a wait from now, when the server sent one.
pub fn retry_after_wait(response: &Response) -> Option<Duration> {
    let value = response.headers().get("retry-after")?;
    reconnect::parse_retry_after(&value, js_sys::Date::now())
}
