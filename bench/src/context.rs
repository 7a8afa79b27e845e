//! What every subscriber and publisher task of one run shares: where the server is, how to
//! speak to it, the run's markers and clock, the latency histogram, and the gate that bounds
//! how many connections are being opened at once. One `Arc<RunContext>` is cloned into each
//! task; the histogram is the only thing behind a lock, taken once per read, never across an
//! `.await`.

use crate::{
    error::LoadError,
    http::Endpoint,
    latency::Histogram,
    marker::{MarkerFormat, RunClock},
    rooms::RoomLayout,
    target::Target,
};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Semaphore;

pub struct RunContext {
    /// The server, or the instances of one chat: the i-th subscriber or publisher speaks to
    /// `endpoints[i % len]`. Never empty.
    endpoints: Vec<Endpoint>,
    pub target: Target,
    /// The rooms (nchan: channels) the run's clients are spread over.
    pub rooms: RoomLayout,
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
    pub fn new(
        endpoints: Vec<Endpoint>,
        target: Target,
        rooms: RoomLayout,
        connect_concurrency: usize,
    ) -> Result<Self, LoadError> {
        if endpoints.is_empty() {
            return Err(LoadError::NoServer);
        }
        // A fresh run id: messages of earlier runs (history on connect) are never counted.
        let run = uuid::Uuid::new_v4().as_u128() as u32;
        Ok(Self {
            endpoints,
            target,
            rooms,
            markers: MarkerFormat::new(run),
            clock: RunClock::default(),
            latencies: Mutex::new(Histogram::default()),
            connect_slots: Arc::new(Semaphore::new(connect_concurrency.max(1))),
            message_padding: 0,
        })
    }

    /// The instance the `index`-th subscriber (or publisher) speaks to.
    pub fn endpoint(&self, index: usize) -> &Endpoint {
        &self.endpoints[index % self.endpoints.len()]
    }

    /// Every instance, as `http://host` URLs, for the report.
    pub fn describe_endpoints(&self) -> String {
        self.endpoints.iter().map(|e| format!("http://{}", e.host)).collect::<Vec<_>>().join(", ")
    }
}

/// Locks a mutex that guards plain counters: a panicked holder cannot leave them worse than
/// a wrong count, which the report would show, so poisoning is ignored.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_room() -> RoomLayout {
        RoomLayout::new("room".into(), 1, 1)
    }

    fn endpoint(port: u16) -> Endpoint {
        Endpoint::parse(&format!("http://127.0.0.1:{port}")).expect("a loopback URL")
    }

    #[test]
    fn clients_are_dealt_out_over_the_instances_in_turn() {
        let context =
            RunContext::new(vec![endpoint(1), endpoint(2)], Target::Ssechat, one_room(), 1).expect("two");
        let hosts: Vec<_> = (0..4).map(|i| context.endpoint(i).host.clone()).collect();
        assert_eq!(hosts, ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:1", "127.0.0.1:2"]);
        assert_eq!(context.describe_endpoints(), "http://127.0.0.1:1, http://127.0.0.1:2");
    }

    #[test]
    fn a_run_without_a_server_is_refused() {
        assert!(matches!(
            RunContext::new(Vec::new(), Target::Ssechat, one_room(), 1),
            Err(LoadError::NoServer)
        ));
    }
}
