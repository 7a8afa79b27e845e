//! What every subscriber and publisher task of one run shares: where the server is, how to
//! speak to it, the run's markers and clock, the latency histogram, and the gate that bounds
//! how many connections are being opened at once. One `Arc<RunContext>` is cloned into each
//! task; the histogram is the only thing behind a lock, taken once per read, never across an
//! `.await`.

use crate::{
    http::Endpoint,
    latency::Histogram,
    marker::{MarkerFormat, RunClock},
    target::Target,
};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Semaphore;

pub struct RunContext {
    pub endpoint: Endpoint,
    pub target: Target,
    /// The channel (nchan) the run publishes to; the other targets have one room.
    pub room: String,
    pub markers: MarkerFormat,
    pub clock: RunClock,
    /// Send-to-receive latency of every delivery in the current step, in µs.
    pub latencies: Mutex<Histogram>,
    /// Connections being opened (connect, request, until ready) at once, at most.
    pub connect_slots: Arc<Semaphore>,
    /// Extra bytes in every message text.
    pub message_padding: usize,
}

impl RunContext {
    pub fn new(endpoint: Endpoint, target: Target, room: String, connect_concurrency: usize) -> Self {
        // A fresh run id: messages of earlier runs (history on connect) are never counted.
        let run = uuid::Uuid::new_v4().as_u128() as u32;
        Self {
            endpoint,
            target,
            room,
            markers: MarkerFormat::new(run),
            clock: RunClock::default(),
            latencies: Mutex::new(Histogram::default()),
            connect_slots: Arc::new(Semaphore::new(connect_concurrency.max(1))),
            message_padding: 0,
        }
    }
}

/// Locks a mutex that guards plain counters: a panicked holder cannot leave them worse than
/// a wrong count, which the report would show, so poisoning is ignored.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
