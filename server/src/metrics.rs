//! Counters an operator can watch, rendered as Prometheus text at `GET /metrics`. Plain
//! atomics: they sit on the hot path of every event, where a lock or an allocation per update
//! would cost more than the count is worth.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Debug, Default)]
pub struct Metrics {
    pub streams_open: AtomicU64,
    pub messages_total: AtomicU64,
    pub events_sent_total: AtomicU64,
    pub slow_clients_dropped_total: AtomicU64,
}

impl Metrics {
    /// The exposition text; `users_online` comes from the room, which owns that number.
    pub fn render(&self, users_online: usize) -> String {
        let mut out = String::with_capacity(1024);
        let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
            // Writing to a String cannot fail.
            let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n");
        };
        metric("ssechat_streams_open", "gauge", "Open event streams.", self.streams_open.load(Relaxed));
        metric("ssechat_users_online", "gauge", "Users in the room.", users_online as u64);
        metric("ssechat_messages_total", "counter", "Messages accepted.", self.messages_total.load(Relaxed));
        metric(
            "ssechat_events_sent_total",
            "counter",
            "Events written to streams.",
            self.events_sent_total.load(Relaxed),
        );
        metric(
            "ssechat_slow_clients_dropped_total",
            "counter",
            "Streams dropped because their client could not keep up.",
            self.slow_clients_dropped_total.load(Relaxed),
        );
        out
    }
}
