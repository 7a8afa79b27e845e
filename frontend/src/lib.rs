//! The wasm entry point. cargo-leptos builds this crate for `wasm32-unknown-unknown`; the page
//! the server rendered calls `hydrate()`, which attaches the Leptos app to the existing DOM
//! instead of rendering it again.

#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
}
