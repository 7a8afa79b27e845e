//! The highest rate that holds: the same subscribers and publishers step through rates,
//! doubling from a start until a step does not hold, then bisecting between the last that
//! held and the first that did not. A step holds when nothing acknowledged was lost, nobody
//! was disconnected, every post was acknowledged, the rate asked was kept and p99 latency
//! stayed under the bound.
//!
//! A step that disconnected subscribers or did not drain ends the search: what follows would
//! run on a damaged room or a backlog, and measure that.

use super::{
    Setup, StepPlan, connect_failures, history_failures, open_subscribers, prepare_publishers, run_step,
};
use crate::report::{MemoryReport, Report, SearchReport, StepReport};
use std::time::Duration;

/// A step keeps the rate asked when at least this share was acknowledged per second.
const RATE_KEPT: f64 = 0.95;

/// The search's parameters, parsed straight from the command line (`loadtest search`).
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct SearchSettings {
    #[arg(long, default_value_t = 1_000)]
    pub subscribers: usize,
    #[arg(long, default_value_t = 1)]
    pub publishers: usize,
    /// How long each rate is tried.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub step_duration: Duration,
    #[arg(long, default_value_t = 100.0)]
    pub p99_bound_ms: f64,
    #[arg(long, default_value_t = 25.0)]
    pub start_rate: f64,
    #[arg(long, default_value_t = 100_000.0)]
    pub max_rate: f64,
    /// Bisection steps once a rate did not hold.
    #[arg(long, default_value_t = 3)]
    pub refine_steps: u32,
}

/// Why a step did not hold, if it did not.
fn did_not_hold(step: &StepReport, p99_bound_ms: f64) -> Option<String> {
    let mut reasons = step.failures("");
    reasons.iter_mut().for_each(|reason| *reason = reason.trim_start_matches(": ").to_owned());
    if !step.drained {
        reasons.push("not drained".into());
    }
    if step.latency.p99_ms >= p99_bound_ms {
        reasons.push(format!("p99 {:.1} ms ≥ {p99_bound_ms} ms", step.latency.p99_ms));
    }
    let asked = step.asked_rate.unwrap_or(0.0);
    if step.posts.acknowledged_per_s < asked * RATE_KEPT {
        reasons.push(format!("only {:.0} of {asked} msg/s acknowledged", step.posts.acknowledged_per_s));
    }
    (!reasons.is_empty()).then(|| reasons.join(", "))
}

pub async fn search(setup: &Setup, settings: SearchSettings) -> Report {
    let mut report = setup.report("search");
    let (subscribers, connect, rss_before) = open_subscribers(setup, settings.subscribers, "sub").await;
    report.failures.extend(connect_failures(&connect));
    if let (Some(before), Some(after)) = (rss_before, setup.server.rss_kib()) {
        report.memory = Some(MemoryReport::new(before, after, connect.connected));
    }
    report.connect = Some(connect);
    let mut publishers = match prepare_publishers(setup, settings.publishers).await {
        Ok(publishers) => publishers,
        Err(error) => {
            report.failures.push(format!("cannot prepare the publishers: {error}"));
            return report.conclude();
        }
    };
    let mut search = SearchReport { p99_bound_ms: settings.p99_bound_ms, ..SearchReport::default() };
    let mut rate = settings.start_rate.max(1.0).round();
    let mut refinements = 0;
    let mut step_no = 0;
    loop {
        step_no += 1;
        let step;
        let plan =
            StepPlan { step: step_no, rate: Some(rate), duration: settings.step_duration, messages: None };
        (publishers, step) = run_step(setup, &subscribers, publishers, plan).await;
        let damaged = step.disconnected > 0 || !step.drained || step.publisher_streams_lost > 0;
        match did_not_hold(&step, settings.p99_bound_ms) {
            None => {
                search.best_rate = Some(rate);
                search.best_step = Some(step_no);
            }
            Some(reason) => {
                if search.first_failing_rate.is_none_or(|failing| rate < failing) {
                    search.first_failing_rate = Some(rate);
                    search.first_failing_reason = Some(reason);
                }
            }
        }
        // Duplicates and reordering are never a matter of load: they fail the run.
        report.failures.extend(
            step.failures(&format!("step {step_no} at {rate} msg/s"))
                .into_iter()
                .filter(|failure| failure.contains("duplicated") || failure.contains("out of order")),
        );
        report.steps.push(step);
        if damaged {
            break;
        }
        rate = match (search.best_rate, search.first_failing_rate) {
            (Some(good), None) if good < settings.max_rate => (good * 2.0).min(settings.max_rate),
            (Some(good), Some(bad)) if refinements < settings.refine_steps => {
                refinements += 1;
                let middle = ((good + bad) / 2.0).round();
                if middle <= good || middle >= bad {
                    break;
                }
                middle
            }
            (None, Some(bad)) if refinements < settings.refine_steps && bad > 1.0 => {
                refinements += 1;
                (bad / 2.0).round().max(1.0)
            }
            _ => break,
        };
    }
    report.failures.extend(history_failures(&subscribers));
    report.search = Some(search);
    subscribers.close();
    report.conclude()
}
