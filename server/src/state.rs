//! The state every handler shares. Cloning is shallow: each field is a handle.

use crate::{
    config::Config,
    hub::Hub,
    limits::{AddressSlots, ClientAddr, RateLimiter},
    session::SessionKey,
    store::MessageStore,
};
use app::protocol::UserId;
use axum::extract::FromRef;
use leptos::config::LeptosOptions;
use std::sync::Arc;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub hub: Hub,
    pub store: Arc<dyn MessageStore>,
    pub sessions: SessionKey,
    /// Messages per author.
    pub rate: Arc<RateLimiter<UserId>>,
    /// Messages per client address.
    pub addr_rate: Arc<RateLimiter<ClientAddr>>,
    /// New ids bound per client address.
    pub new_ids: Arc<RateLimiter<ClientAddr>>,
    /// Open streams per client address.
    pub address_slots: AddressSlots,
    /// Behind an `Arc` because axum clones the state for every request, and the options are
    /// a dozen shared strings; only page rendering needs them.
    pub leptos_options: Arc<LeptosOptions>,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        LeptosOptions::clone(&state.leptos_options)
    }
}
