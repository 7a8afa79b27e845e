//! The scenarios of issue 9, each a function that drives load and returns a [`Report`]:
//! [`idle`] (many streams, nothing sent), [`fanout`] (publishers at a rate, or as fast as
//! answers come, to many subscribers), [`search`] (the highest rate that holds) and
//! [`join_burst`] (many users joining at once, and what presence costs).
//!
//! This module holds what they share: opening the subscribers and publishers, and one
//! publishing step with its accounting (what was acknowledged against what each subscriber
//! got).

mod fanout;
mod idle;
mod join_burst;
mod search;

pub use fanout::{FanoutSettings, fanout};
pub use idle::idle;
pub use join_burst::join_burst;
pub use search::{SearchSettings, search};

use crate::{
    context::{RunContext, lock},
    countdown::Countdown,
    error::LoadError,
    latency::Histogram,
    ledger::Bitset,
    publisher::{Pacing, Publisher},
    report::{ConnectReport, PostReport, Report, SATURATED_CPU_PCT, StepReport},
    subscriber::{StreamState, SubscriberSet},
    usage::{self, CpuWindow, ServerProcesses},
};
use std::{sync::Arc, time::Duration};
use tokio::{runtime::Handle, time::Instant};

/// A run's fixed settings: the shared context and what the CLI says about limits.
pub struct Setup {
    pub context: Arc<RunContext>,
    /// The server's processes, for memory and CPU (none: not measured).
    pub server: ServerProcesses,
    /// How long opening all streams may take.
    pub connect_timeout: Duration,
    /// How long, after publishing stops, subscribers may take to receive everything.
    pub drain_timeout: Duration,
    pub label: Option<String>,
    /// Worker threads of the load tester's runtime (for the CPU verdict).
    pub threads: usize,
    /// Where publishers are prepared and run: a runtime on a thread of its own, so that their
    /// timing does not wait on the subscribers' reading.
    pub publishing: Handle,
}

impl Setup {
    pub(crate) fn report(&self, mode: &str) -> Report {
        Report::new(
            mode,
            self.context.target,
            self.label.clone(),
            self.context.describe_endpoints(),
            self.threads,
        )
    }
}

/// Opens `count` subscribers and waits until all are ready (or the connect timeout).
/// Returns them, how it went, and the server's RSS before the first connect.
pub(crate) async fn open_subscribers(
    setup: &Setup,
    count: usize,
    prefix: &str,
) -> (SubscriberSet, ConnectReport, Option<u64>) {
    let rss_before = setup.server.rss_kib();
    let overflows_before = usage::listen_overflows();
    let cpu = CpuWindow::start(&setup.server);
    let subscribers = SubscriberSet::open(&setup.context, count, prefix);
    let outcome = subscribers.wait_ready(Instant::now() + setup.connect_timeout).await;
    let connect = ConnectReport {
        streams: outcome.streams,
        connected: outcome.ready,
        failed: outcome.failed,
        pending: outcome.pending,
        seconds: outcome.seconds,
        failure_reasons: outcome.failure_reasons,
        listen_overflows: overflows_before
            .zip(usage::listen_overflows())
            .map(|(before, after)| after.saturating_sub(before)),
        cpu: cpu.finish(&setup.server),
    };
    (subscribers, connect, rss_before)
}

/// Why opening the streams counts as a failure, if it does.
pub(crate) fn connect_failures(connect: &ConnectReport) -> Vec<String> {
    let missing = connect.streams - connect.connected;
    if missing == 0 {
        return Vec::new();
    }
    let reasons: Vec<String> =
        connect.failure_reasons.iter().map(|(reason, count)| format!("{count} × {reason}")).collect();
    vec![format!(
        "{missing} of {} streams did not connect ({} failed, {} still connecting{}{})",
        connect.streams,
        connect.failed,
        connect.pending,
        if reasons.is_empty() { "" } else { ": " },
        reasons.join("; ")
    )]
}

/// Opens `count` publishers, one after another, on the publishers' runtime (their sockets
/// belong to it).
pub(crate) async fn prepare_publishers(setup: &Setup, count: usize) -> Result<Vec<Publisher>, LoadError> {
    let context = Arc::clone(&setup.context);
    let preparing = setup.publishing.spawn(async move {
        let mut publishers = Vec::with_capacity(count);
        for index in 0..count {
            publishers.push(Publisher::prepare(&context, index as u32).await?);
        }
        Ok(publishers)
    });
    preparing.await.map_err(|error| LoadError::Publishers(error.to_string()))?
}

/// Complaints about messages sent before the run (history): their `seq` must grow too.
pub(crate) fn history_failures(subscribers: &SubscriberSet) -> Vec<String> {
    let regressions: u64 = subscribers.records().map(|record| lock(record).deliveries.seq_regressions).sum();
    if regressions == 0 {
        Vec::new()
    } else {
        vec![format!("{regressions} history messages arrived with a seq that did not grow")]
    }
}

/// What one publishing step does.
#[derive(Debug, Clone, Copy)]
pub struct StepPlan {
    pub step: u32,
    /// Messages per second, all publishers together; `None`: as fast as answers come.
    pub rate: Option<f64>,
    /// Publishing stops after this long...
    pub duration: Duration,
    /// ...or once this many messages were sent, all publishers together.
    pub messages: Option<u64>,
}

/// One publishing step: every publisher posts as `plan` says, then the step waits until every
/// subscriber has every acknowledged message (or the drain timeout), and counts.
pub(crate) async fn run_step(
    setup: &Setup,
    subscribers: &SubscriberSet,
    publishers: Vec<Publisher>,
    plan: StepPlan,
) -> (Vec<Publisher>, StepReport) {
    let StepPlan { step, rate: asked_rate, duration, messages } = plan;
    let context = &setup.context;
    for record in subscribers.records() {
        lock(record).deliveries.begin_step(step);
    }
    *lock(&context.latencies) = Histogram::default();
    let publisher_count = publishers.len();
    let slots = publishers.iter().map(|publisher| publisher.index as usize + 1).max().unwrap_or(0);
    // Each publisher sends one message per interval; they are spread evenly over it.
    let pacing = match asked_rate {
        Some(rate) => Pacing::Every(Duration::from_secs_f64(publisher_count as f64 / rate.max(1e-9))),
        None => Pacing::AsFastAsAnswers,
    };
    let cpu = CpuWindow::start(&setup.server);
    let started_us = context.clock.now_us();
    let start = Instant::now();
    let until = start + duration;
    let tasks: Vec<_> = publishers
        .into_iter()
        .enumerate()
        .map(|(i, mut publisher)| {
            let context = Arc::clone(context);
            let offset = match pacing {
                Pacing::Every(interval) => interval.mul_f64(i as f64 / publisher_count as f64),
                Pacing::AsFastAsAnswers => Duration::ZERO,
            };
            // The messages are shared out evenly, the first publishers taking the remainder.
            let limit = messages.map(|total| {
                let count = publisher_count.max(1) as u64;
                total / count + u64::from((i as u64) < total % count)
            });
            setup.publishing.spawn(async move {
                let outcome = publisher.publish(&context, step, pacing, (start + offset, until), limit).await;
                (publisher, outcome)
            })
        })
        .collect();
    let mut publishers = Vec::with_capacity(publisher_count);
    let mut acknowledged: Vec<Bitset> = vec![Bitset::default(); slots];
    let mut posts = PostReport::default();
    let mut ack_latency = Histogram::default();
    for task in tasks {
        match task.await {
            Ok((publisher, outcome)) => {
                posts.attempted += outcome.attempted;
                posts.acknowledged += outcome.acknowledged.len();
                for (kind, count) in &outcome.errors {
                    *posts.errors.entry(kind.clone()).or_default() += count;
                }
                if posts.first_error.is_none() {
                    posts.first_error = outcome.first_error.clone();
                }
                ack_latency.merge(&outcome.ack_latency);
                acknowledged[publisher.index as usize] = outcome.acknowledged;
                publishers.push(publisher);
            }
            Err(error) => {
                *posts.errors.entry("publisher-task".into()).or_default() += 1;
                posts.first_error.get_or_insert(error.to_string());
            }
        }
    }
    let publishing_s = start.elapsed().as_secs_f64();
    posts.acknowledged_per_s = posts.acknowledged as f64 / publishing_s;
    posts.ack_latency = ack_latency.summary();

    // What each subscriber is owed: every acknowledged message of the rooms it follows.
    let layout = &context.rooms;
    let mut acknowledged_in_room = vec![0u64; layout.count()];
    for (publisher, acked) in acknowledged.iter().enumerate() {
        acknowledged_in_room[layout.publisher_room(publisher)] += acked.len();
    }
    let owed_to = |subscriber: usize| -> u64 {
        layout.subscriber_rooms(subscriber).iter().map(|room| acknowledged_in_room[*room]).sum()
    };
    let drained = Arc::new(Countdown::new(subscribers.len()));
    let drain_started = Instant::now();
    for (index, record) in subscribers.records().enumerate() {
        let mut record = lock(record);
        let ended = !record.is_ready();
        record.deliveries.watch_drain(owed_to(index), Arc::clone(&drained), ended);
    }
    let all_drained = drained.wait_until(Instant::now() + setup.drain_timeout).await;
    let drain_s = drain_started.elapsed().as_secs_f64();
    let cpu = cpu.finish(&setup.server);

    let mut report = StepReport {
        step,
        subscribers: subscribers.len(),
        publishers: publisher_count,
        asked_rate,
        publishing_s,
        drained: all_drained,
        drain_s,
        loadtester_saturated: cpu.loadtester_cpu_pct >= SATURATED_CPU_PCT * setup.threads as f64,
        cpu,
        ..StepReport::default()
    };
    let mut last_delivery_us = started_us;
    for (index, record) in subscribers.records().enumerate() {
        let record = lock(record);
        match record.state {
            StreamState::Ready { .. } => {
                report.lost +=
                    record.deliveries.missing(&acknowledged, |publisher| layout.is_owed(index, publisher));
                last_delivery_us = last_delivery_us.max(record.deliveries.last_delivery_us);
            }
            StreamState::Ended(_) => report.disconnected += 1,
            StreamState::Connecting | StreamState::Failed(_) => {}
        }
        report.delivered_events += record.deliveries.delivered;
        report.duplicated += record.deliveries.duplicated;
        report.out_of_order += record.deliveries.out_of_order;
    }
    report.publisher_streams_lost = publishers.iter().filter(|publisher| !publisher.stream_open()).count();
    let delivering_s = (last_delivery_us - started_us) as f64 / 1e6;
    report.delivered_per_s =
        if delivering_s > 0.0 { report.delivered_events as f64 / delivering_s } else { 0.0 };
    report.latency = lock(&context.latencies).summary();
    report.posts = posts;
    (publishers, report)
}
