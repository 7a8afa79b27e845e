//! Fan-out: subscribers connect, then publishers post for a while, at a rate or as fast as
//! answers come; every subscriber must get every acknowledged message, once, in order.

use super::{
    Setup, StepPlan, connect_failures, history_failures, open_subscribers, prepare_publishers, run_step,
};
use crate::report::{MemoryReport, Report};
use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct FanoutSettings {
    pub subscribers: usize,
    pub publishers: usize,
    /// Messages per second from all publishers together; `None`: as fast as answers come.
    pub rate: Option<f64>,
    /// Publishing stops after this long, or after `messages` were sent.
    pub duration: Duration,
    pub messages: Option<u64>,
}

pub async fn fanout(setup: &Setup, settings: FanoutSettings) -> Report {
    let FanoutSettings { subscribers, publishers, rate, duration, messages } = settings;
    let mode = if rate.is_some() { "fanout" } else { "throughput" };
    let mut report = setup.report(mode);
    let (subscriber_set, connect, rss_before) = open_subscribers(setup, subscribers, "sub").await;
    report.failures.extend(connect_failures(&connect));
    if let (Some(before), Some(after)) = (rss_before, setup.server.rss_kib()) {
        report.memory = Some(MemoryReport::new(before, after, connect.connected));
    }
    report.connect = Some(connect);
    let publisher_set = match prepare_publishers(setup, publishers).await {
        Ok(publisher_set) => publisher_set,
        Err(error) => {
            report.failures.push(format!("cannot prepare the publishers: {error}"));
            return report.conclude();
        }
    };
    let plan = StepPlan { step: 1, rate, duration, messages };
    let (_publishers, step) = run_step(setup, &subscriber_set, publisher_set, plan).await;
    report.failures.extend(step.failures("publishing"));
    if !step.drained && step.lost == 0 {
        report.failures.push("subscribers were still receiving when the drain timeout passed".into());
    }
    report.failures.extend(history_failures(&subscriber_set));
    report.steps.push(step);
    subscriber_set.close();
    report.conclude()
}
