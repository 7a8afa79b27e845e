//! The server-rendered chat page and the headers that protect it.
//!
//! Leptos hydrates from one small inline module script, so the Content-Security-Policy allows
//! scripts by a per-response nonce (Leptos puts it on the scripts it renders) plus the app's
//! own files, and `'wasm-unsafe-eval'` for the wasm module; nothing else inline runs.

use axum::http::{HeaderValue, header};
use leptos::{
    nonce::{provide_nonce, use_nonce},
    prelude::use_context,
};
use leptos_axum::ResponseOptions;

/// Context for each page render: a fresh nonce and the CSP header that names it. `reload_port`
/// is the cargo-leptos live-reload websocket, allowed only while `cargo leptos watch` runs.
pub fn page_context(reload_port: Option<u32>) -> impl Fn() + Clone + Send + Sync + 'static {
    move || {
        provide_nonce();
        let (Some(nonce), Some(response)) = (use_nonce(), use_context::<ResponseOptions>()) else {
            return;
        };
        if let Ok(policy) = HeaderValue::from_str(&content_security_policy(&nonce, reload_port)) {
            response.insert_header(header::CONTENT_SECURITY_POLICY, policy);
        }
    }
}

fn content_security_policy(nonce: &str, reload_port: Option<u32>) -> String {
    let reload =
        reload_port.map(|port| format!(" ws://127.0.0.1:{port} ws://localhost:{port}")).unwrap_or_default();
    format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; \
         style-src 'self'; img-src 'self' data:; connect-src 'self'{reload}; object-src 'none'; \
         base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
}
