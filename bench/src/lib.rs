//! ssechat's load tester, as a library: the `loadtest` binary is a thin CLI over it, and the CI
//! smoke test (`tests/smoke.rs`) calls the same scenarios against an in-process server.
//!
//! It speaks the public protocol over real sockets, like any client: subscribers open
//! `GET /sse?id=&name=` and keep their session cookie, publishers open a stream first and post
//! with that cookie. It speaks the peers' protocols too ([`target`]), so the same numbers can
//! be taken from nginx + nchan and from the original Hono/Bun design, side by side.
//!
//! Why a hand-written HTTP/1.1 client ([`http`]) and not reqwest: ten thousand streams from
//! one process on one core. Here a stream is one socket, one task and a parser state of a few
//! hundred bytes, and every read lands in one scratch buffer per thread.
//!
//! How a delivery is checked, top to bottom: a publisher writes a [`marker`] (run, step,
//! publisher, counter, send time) into its message text → the server fans it out → each
//! subscriber decodes the chunked body ([`http::BodyDecoder`]) and the SSE events
//! ([`sse::SseParser`]) → finds the marker and records it in its [`ledger::Deliveries`]
//! (duplicate? out of order?) and its latency in a [`latency::Histogram`] → at the end the
//! [`scenario`] compares every subscriber's deliveries with what each publisher had
//! acknowledged, and the [`report`] says what was lost.

pub mod cli;
pub mod context;
pub mod countdown;
pub mod error;
pub mod http;
pub mod latency;
pub mod ledger;
pub mod marker;
pub mod publisher;
pub mod render;
pub mod report;
pub mod rooms;
pub mod scenario;
pub mod sse;
pub mod subscriber;
pub mod target;
pub mod usage;

pub use error::LoadError;
pub use report::Report;
pub use target::Target;
