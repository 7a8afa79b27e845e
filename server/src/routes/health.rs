//! `GET /healthz` (ready or not) and `GET /metrics` (Prometheus text).

use crate::state::AppState;
use axum::{
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
};

/// 200 while the server accepts connections; 503 once shutdown has begun, so a load balancer
/// stops sending new clients here.
pub async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    if state.hub.shutdown_token().is_cancelled() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down")
    } else {
        (StatusCode::OK, "ok")
    }
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let body = state.hub.metrics().render(state.hub.users_online());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body)
}
