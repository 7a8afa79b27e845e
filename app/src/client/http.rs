//! The few HTTP requests the page makes besides its stream (probing `/sse`, `POST /message`,
//! `GET /users`), on the browser's `fetch`. Same origin, so the session cookie goes along by
//! itself. A thin layer of our own rather than a crate: it is all we need, and every kilobyte of
//! wasm is downloaded by every visitor.

use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortSignal, Headers, RequestInit, Response};

/// Sends a request; `json` becomes the body, sent as `application/json`. `None` when there was
/// no answer at all (offline, refused connection, aborted).
pub async fn fetch(
    method: &str,
    url: &str,
    json: Option<&str>,
    signal: Option<&AbortSignal>,
) -> Option<Response> {
    let init = RequestInit::new();
    init.set_method(method);
    if let Some(json) = json {
        let headers = Headers::new().ok()?;
        headers.set("Content-Type", "application/json").ok()?;
        init.set_headers(&headers);
        init.set_body(&JsValue::from_str(json));
    }
    init.set_signal(signal);
    let promise = web_sys::window()?.fetch_with_str_and_init(url, &init);
    JsFuture::from(promise).await.ok()?.dyn_into::<Response>().ok()
}

/// The body as text; empty if it cannot be read.
pub async fn text(response: &Response) -> String {
    let Ok(promise) = response.text() else { return String::new() };
    JsFuture::from(promise).await.ok().and_then(|text| text.as_string()).unwrap_or_default()
}

/// `Retry-After` in seconds, when the server sent one.
pub fn retry_after(response: &Response) -> Option<u32> {
    response.headers().get("retry-after").ok().flatten()?.trim().parse().ok()
}
