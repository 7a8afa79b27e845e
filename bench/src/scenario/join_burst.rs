//! A join burst: many users connect at once. Measured: the time until every one got its
//! `all-users` (it is in the room), the time until every one's view of the room counts all
//! of them, and the bytes of presence events each received on the way. Telling everyone about
//! everyone one by one costs O(N²) bytes; the target is bytes per user that stay flat as N
//! grows.

use super::{Setup, connect_failures, open_subscribers};
use crate::{
    context::lock,
    countdown::Countdown,
    error::LoadError,
    report::{JoinReport, MemoryReport, Report},
    usage::CpuWindow,
};
use std::{sync::Arc, time::Duration};
use tokio::time::Instant;

pub async fn join_burst(setup: &Setup, users: usize, settle_timeout: Duration) -> Result<Report, LoadError> {
    let target = setup.context.target;
    if !target.has_presence() {
        return Err(LoadError::Unsupported { target: target.name(), reason: "it has no presence events" });
    }
    let mut report = setup.report("join-burst");
    let cpu = CpuWindow::start(&setup.server);
    let started = Instant::now();
    let (subscribers, connect, rss_before) = open_subscribers(setup, users, "user").await;
    report.failures.extend(connect_failures(&connect));

    let converged = Arc::new(Countdown::new(users));
    for record in subscribers.records() {
        let mut record = lock(record);
        let ended = !record.is_ready();
        record.presence.watch(users as u64, Arc::clone(&converged), ended);
    }
    converged.wait_until(Instant::now() + settle_timeout).await;
    let converge_s = started.elapsed().as_secs_f64();

    let mut join = JoinReport {
        users,
        joined: connect.connected,
        join_s: connect.seconds,
        converge_s,
        cpu: cpu.finish(&setup.server),
        ..JoinReport::default()
    };
    let mut body_bytes = 0;
    for record in subscribers.records() {
        let record = lock(record);
        join.converged += usize::from(record.presence.is_right());
        join.presence_events += record.traffic.presence_events;
        join.presence_bytes += record.traffic.presence_bytes;
        join.new_user_events += record.traffic.new_user_events;
        body_bytes += record.traffic.body_bytes;
    }
    let per_user = |total: u64| if users == 0 { 0.0 } else { (total as f64 / users as f64).round() };
    join.presence_bytes_per_user = per_user(join.presence_bytes);
    join.body_bytes_per_user = per_user(body_bytes);
    if join.converged < users {
        report.failures.push(format!(
            "{} of {users} users did not see the room's full count within {settle_timeout:?}",
            users - join.converged
        ));
    }
    if let (Some(before), Some(after)) = (rss_before, setup.server.rss_kib()) {
        report.memory = Some(MemoryReport::new(before, after, connect.connected));
    }
    report.connect = Some(connect);
    report.join = Some(join);
    subscribers.close();
    Ok(report.conclude())
}
