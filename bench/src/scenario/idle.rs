//! Idle streams: open many, send nothing, and see how fast they all got in and what each
//! costs the server in memory. The streams are held open a moment before memory is read, so
//! the figure is what an idle stream costs, not what opening one does.

use super::{Setup, connect_failures, open_subscribers};
use crate::{
    context::lock,
    report::{MemoryReport, Report},
    subscriber::StreamState,
};
use std::time::Duration;

pub async fn idle(setup: &Setup, streams: usize, hold: Duration) -> Report {
    let mut report = setup.report("idle");
    let (subscribers, connect, rss_before) = open_subscribers(setup, streams, "idle").await;
    report.failures.extend(connect_failures(&connect));
    // A measurement pause, not synchronisation: memory is read after the streams sat idle.
    tokio::time::sleep(hold).await;
    let ended =
        subscribers.records().filter(|record| matches!(lock(record).state, StreamState::Ended(_))).count();
    if ended > 0 {
        report.failures.push(format!("{ended} streams ended while idle"));
    }
    if let (Some(before), Some(after)) = (rss_before, setup.server.rss_kib()) {
        report.memory = Some(MemoryReport::new(before, after, connect.connected));
    }
    report.connect = Some(connect);
    subscribers.close();
    report.conclude()
}
