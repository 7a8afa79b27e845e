//! The few HTTP requests the page makes besides its stream (probing `/sse`, `POST /message`,
//! `GET /users`), through gloo-net's `fetch` wrapper. Same origin, so the session cookie goes
//! along by itself.

use gloo_net::http::{Request, Response};
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

/// `Retry-After` in seconds, when the server sent one.
pub fn retry_after(response: &Response) -> Option<u32> {
    response.headers().get("retry-after")?.trim().parse().ok()
}
