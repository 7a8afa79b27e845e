//! The state every handler shares. Cloning is shallow: each field is a handle.

use crate::{config::Config, hub::Hub, limits::RateLimiter, session::SessionKey, store::MessageStore};
use axum::extract::FromRef;
use leptos::config::LeptosOptions;
use std::sync::Arc;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub hub: Hub,
    pub store: Arc<dyn MessageStore>,
    pub sessions: SessionKey,
    pub rate: Arc<RateLimiter>,
    pub leptos_options: LeptosOptions,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}
