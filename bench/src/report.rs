//! What a run reports: one [`Report`], printed as a human summary (stderr) and as one JSON
//! line (stdout) that `scripts/bench.sh` collects and [`crate::render`] turns into tables.
//!
//! `failures` lists every reason the run did not pass, in words; a run with any failure exits
//! non-zero. Lost, duplicated and out-of-order messages always fail a run.

use crate::{latency::LatencySummary, target::Target, usage::CpuUse};
use serde::{Deserialize, Serialize};
use std::{collections::BTreeMap, fmt};

/// Above this share of its core, the load tester, not the server, may have been the limit.
pub const SATURATED_CPU_PCT: f64 = 85.0;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// `idle`, `fanout`, `throughput`, `search` or `join-burst`.
    pub mode: String,
    pub target: Target,
    /// The scenario's name in a benchmark (`--label`).
    pub label: Option<String>,
    pub url: String,
    /// The scenario's parameters, in words.
    #[serde(default)]
    pub parameters: String,
    pub connect: Option<ConnectReport>,
    pub memory: Option<MemoryReport>,
    #[serde(default)]
    pub steps: Vec<StepReport>,
    pub search: Option<SearchReport>,
    pub join: Option<JoinReport>,
    /// Worker threads the load tester ran on.
    pub loadtester_threads: usize,
    pub failures: Vec<String>,
    pub passed: bool,
}

/// Opening the streams.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ConnectReport {
    pub streams: usize,
    pub connected: usize,
    pub failed: usize,
    /// Still connecting when time was up.
    pub pending: usize,
    /// Until the last stream was ready (or until time was up).
    pub seconds: f64,
    pub failure_reasons: BTreeMap<String, u64>,
    /// Connections that found the server's accept queue full while the streams opened (each
    /// one retried its handshake a second later); `None` where the kernel does not say.
    pub listen_overflows: Option<u64>,
    pub cpu: CpuUse,
}

/// The server's resident memory before and after the streams were opened.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct MemoryReport {
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
    pub streams: usize,
    pub kib_per_stream: f64,
}

impl MemoryReport {
    pub fn new(rss_before_kib: u64, rss_after_kib: u64, streams: usize) -> Self {
        let growth = rss_after_kib.saturating_sub(rss_before_kib) as f64;
        let kib_per_stream =
            if streams == 0 { 0.0 } else { (growth / streams as f64 * 100.0).round() / 100.0 };
        Self { rss_before_kib, rss_after_kib, streams, kib_per_stream }
    }
}

/// Posting, as the publishers saw it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PostReport {
    pub attempted: u64,
    pub acknowledged: u64,
    pub errors: BTreeMap<String, u64>,
    pub first_error: Option<String>,
    pub acknowledged_per_s: f64,
    /// From sending a post to its answer.
    pub ack_latency: LatencySummary,
}

/// One publishing step: messages at one rate (or as fast as answers came) for a while.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StepReport {
    pub step: u32,
    pub subscribers: usize,
    pub publishers: usize,
    /// Messages per second asked for, all publishers together; `None`: as fast as answers.
    pub asked_rate: Option<f64>,
    pub publishing_s: f64,
    pub posts: PostReport,
    /// Deliveries of this step's messages, all subscribers together.
    pub delivered_events: u64,
    pub delivered_per_s: f64,
    /// From a message's send to its arrival at a subscriber.
    pub latency: LatencySummary,
    /// Acknowledged messages a subscriber still open at the end never got.
    pub lost: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
    /// Subscribers whose stream ended during the step.
    pub disconnected: usize,
    /// ssechat: publishers whose own stream ended.
    pub publisher_streams_lost: usize,
    /// True when every subscriber had every acknowledged message before the drain timeout.
    pub drained: bool,
    /// From the end of publishing until drained (or the timeout).
    pub drain_s: f64,
    pub cpu: CpuUse,
    pub loadtester_saturated: bool,
}

impl StepReport {
    /// Reasons this step failed, with `what` naming it in the text.
    pub fn failures(&self, what: &str) -> Vec<String> {
        let mut failures = Vec::new();
        let mut say = |count: u64, text: &str| {
            if count > 0 {
                failures.push(format!("{what}: {count} {text}"));
            }
        };
        say(self.lost, "acknowledged deliveries lost");
        say(self.duplicated, "deliveries duplicated");
        say(self.out_of_order, "deliveries out of order");
        say(self.disconnected as u64, "subscribers disconnected");
        say(self.publisher_streams_lost as u64, "publisher streams ended");
        say(self.posts.errors.values().sum(), "posts not acknowledged");
        failures
    }
}

/// The highest rate that held.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SearchReport {
    pub p99_bound_ms: f64,
    /// The highest rate asked that held: 0 lost, 0 disconnected, p99 under the bound, the
    /// rate kept.
    pub best_rate: Option<f64>,
    pub best_step: Option<u32>,
    /// The lowest rate asked that did not hold, and why.
    pub first_failing_rate: Option<f64>,
    pub first_failing_reason: Option<String>,
}

/// Many users joining at once.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct JoinReport {
    pub users: usize,
    /// Users that got their `all-users`.
    pub joined: usize,
    /// Until the last `all-users` arrived.
    pub join_s: f64,
    /// Users whose view of the room reached the full count.
    pub converged: usize,
    /// Until every view was right (or until time was up).
    pub converge_s: f64,
    pub presence_events: u64,
    pub presence_bytes: u64,
    pub presence_bytes_per_user: f64,
    pub new_user_events: u64,
    pub body_bytes_per_user: f64,
    pub cpu: CpuUse,
}

impl Report {
    pub fn new(mode: &str, target: Target, label: Option<String>, url: String, threads: usize) -> Self {
        Self {
            mode: mode.into(),
            target,
            label,
            url,
            parameters: String::new(),
            connect: None,
            memory: None,
            steps: Vec::new(),
            search: None,
            join: None,
            loadtester_threads: threads,
            failures: Vec::new(),
            passed: false,
        }
    }

    /// Records the verdict: passed when no failure was found.
    pub fn conclude(mut self) -> Self {
        self.passed = self.failures.is_empty();
        self
    }

    pub fn to_json_line(&self) -> String {
        // A struct of plain fields always serialises.
        serde_json::to_string(self).unwrap_or_else(|error| format!(r#"{{"error":"{error}"}}"#))
    }

    /// True when some phase ran the load tester near its core's limit.
    pub fn loadtester_saturated(&self) -> bool {
        let limit = SATURATED_CPU_PCT * self.loadtester_threads as f64;
        self.steps.iter().any(|step| step.loadtester_saturated)
            || self.connect.as_ref().is_some_and(|c| c.cpu.loadtester_cpu_pct >= limit)
            || self.join.as_ref().is_some_and(|j| j.cpu.loadtester_cpu_pct >= limit)
    }
}

fn cpu_line(cpu: &CpuUse) -> String {
    let server = cpu.server_cpu_pct.map_or_else(|| "n/a".into(), |pct| format!("{pct:.0}%"));
    format!("CPU: server {server}, load tester {:.0}% over {:.1} s", cpu.loadtester_cpu_pct, cpu.wall_s)
}

fn latency_line(latency: &LatencySummary) -> String {
    format!(
        "p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} samples)",
        latency.p50_ms, latency.p90_ms, latency.p99_ms, latency.max_ms, latency.samples
    )
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label = self.label.as_deref().map(|l| format!(" [{l}]")).unwrap_or_default();
        writeln!(f, "loadtest {} against {} at {}{label}", self.mode, self.target, self.url)?;
        if !self.parameters.is_empty() {
            writeln!(f, "  {}", self.parameters)?;
        }
        if let Some(connect) = &self.connect {
            writeln!(
                f,
                "  connect: {} of {} streams ready in {:.3} s ({} failed, {} still connecting)",
                connect.connected, connect.streams, connect.seconds, connect.failed, connect.pending
            )?;
            if let Some(overflows) = connect.listen_overflows.filter(|overflows| *overflows > 0) {
                writeln!(
                    f,
                    "    the accept queue overflowed {overflows} times: those handshakes were retried after 1 s (listen backlog too small?)"
                )?;
            }
            for (reason, count) in &connect.failure_reasons {
                writeln!(f, "    {count} × {reason}")?;
            }
            writeln!(f, "    {}", cpu_line(&connect.cpu))?;
        }
        if let Some(memory) = &self.memory {
            writeln!(
                f,
                "  server RSS: {} KiB before, {} KiB after {} streams: {:.2} KiB per stream",
                memory.rss_before_kib, memory.rss_after_kib, memory.streams, memory.kib_per_stream
            )?;
        }
        for step in &self.steps {
            let rate =
                step.asked_rate.map_or_else(|| "as fast as answers".into(), |r| format!("{r} msg/s asked"));
            writeln!(
                f,
                "  step {}: {} subscribers, {} publishers, {rate}, {:.1} s",
                step.step, step.subscribers, step.publishers, step.publishing_s
            )?;
            writeln!(
                f,
                "    posts: {} acknowledged of {} ({:.0}/s), ack {}",
                step.posts.acknowledged,
                step.posts.attempted,
                step.posts.acknowledged_per_s,
                latency_line(&step.posts.ack_latency)
            )?;
            for (kind, count) in &step.posts.errors {
                writeln!(f, "      {count} × {kind}")?;
            }
            if let Some(first) = &step.posts.first_error {
                writeln!(f, "      first: {first}")?;
            }
            writeln!(f, "    delivered: {} events ({:.0}/s)", step.delivered_events, step.delivered_per_s)?;
            writeln!(f, "    latency: {}", latency_line(&step.latency))?;
            writeln!(
                f,
                "    lost {}, duplicated {}, out of order {}, disconnected {}; drained: {} ({:.2} s)",
                step.lost, step.duplicated, step.out_of_order, step.disconnected, step.drained, step.drain_s
            )?;
            writeln!(f, "    {}", cpu_line(&step.cpu))?;
        }
        if let Some(search) = &self.search {
            match search.best_rate {
                Some(rate) => writeln!(
                    f,
                    "  search: highest rate that held: {rate} msg/s (p99 < {} ms)",
                    search.p99_bound_ms
                )?,
                None => writeln!(f, "  search: no rate held (p99 < {} ms)", search.p99_bound_ms)?,
            }
            if let (Some(rate), Some(reason)) = (search.first_failing_rate, &search.first_failing_reason) {
                writeln!(f, "    {rate} msg/s did not hold: {reason}")?;
            }
        }
        if let Some(join) = &self.join {
            writeln!(
                f,
                "  join burst: {} of {} users joined in {:.3} s",
                join.joined, join.users, join.join_s
            )?;
            writeln!(
                f,
                "    views right: {} of {} after {:.3} s; presence: {} events, {} bytes ({:.0} per user), {} new-user events",
                join.converged,
                join.users,
                join.converge_s,
                join.presence_events,
                join.presence_bytes,
                join.presence_bytes_per_user,
                join.new_user_events
            )?;
            writeln!(f, "    {}", cpu_line(&join.cpu))?;
        }
        if self.loadtester_saturated() {
            writeln!(
                f,
                "  NOTE: the load tester used over {SATURATED_CPU_PCT:.0}% of its CPU: it may have been the limit, not the server"
            )?;
        }
        if self.failures.is_empty() {
            writeln!(f, "  PASSED")
        } else {
            writeln!(f, "  FAILED:")?;
            for failure in &self.failures {
                writeln!(f, "    - {failure}")?;
            }
            Ok(())
        }
    }
}
