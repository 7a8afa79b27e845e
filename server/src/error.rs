//! One error type for every refusal the HTTP API makes, mapped to the protocol's status codes
//! with a plain-text reason. Handlers return `Result<_, ApiError>`; nothing else builds error
//! responses, so a status code and its reason are chosen in exactly one place.

use app::protocol::InputError;
use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    InvalidInput(#[from] InputError),
    #[error("{0}")]
    BadRequest(String),
    /// A body that is not the protocol's shape (wrong JSON types, unknown fields...).
    #[error("malformed body: {0}")]
    MalformedBody(String),
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0}")]
    Conflict(&'static str),
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error(
        "unsupported content type: use application/x-www-form-urlencoded, multipart/form-data \
         or application/json"
    )]
    UnsupportedMediaType,
    #[error("too many messages: wait a moment before sending again")]
    RateLimited { retry_after: Duration },
    #[error("{reason}")]
    Unavailable { reason: &'static str, retry_after: Duration },
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidInput(_) | Self::BadRequest(_) | Self::MalformedBody(_) => StatusCode::BAD_REQUEST,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after } | Self::Unavailable { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status(), self.to_string()).into_response();
        if let Some(wait) = self.retry_after() {
            // Retry-After is in whole seconds; never advertise 0, which invites a busy loop.
            let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
