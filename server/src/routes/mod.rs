//! The HTTP API of `shared/protocol.md`, one module per endpoint, and the page's headers.

pub mod health;
pub mod message;
pub mod messages;
pub mod page;
pub mod rooms;
pub mod sse;
pub mod users;
