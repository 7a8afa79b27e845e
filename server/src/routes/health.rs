//! `GET /healthz` (ready or not) and `GET /metrics` (Prometheus text).

use crate::state::AppState;
use axum::{
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
};

/// 200 while the server accepts connections and reaches what it shares with other instances;
/// 503 once shutdown has begun or while Redis is unreachable, so a load balancer sends new
/// clients elsewhere.
pub async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    if state.hub.shutdown_token().is_cancelled() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down")
    } else if !state.hub.is_ready() {
        (StatusCode::SERVICE_UNAVAILABLE, "the shared store is unreachable")
    } else {
        (StatusCode::OK, "ok")
    }
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let body = state.hub.metrics().render(state.hub.users_online(), state.hub.rooms().count());
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], body)
}
