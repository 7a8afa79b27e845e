//! Turns the JSON lines of one benchmark run (`scripts/bench.sh`) into `BENCHMARKS.md`: a
//! summary against the targets of issue 9, then one table per scenario with the peers beside
//! ssechat, the commands that produced them, and the notes kept from the previous file.
//!
//! Verdicts are computed, not written by hand, so a run that misses a target says so.

use crate::{
    error::LoadError,
    report::{Report, SATURATED_CPU_PCT, StepReport},
    target::Target,
    usage::CpuUse,
};
use serde::Deserialize;
use std::fmt::Write;

/// Marks the hand-written notes that survive a re-run.
pub const NOTES_BEGIN: &str = "<!-- notes:begin -->";
pub const NOTES_END: &str = "<!-- notes:end -->";

/// A line of the results file: a report, or why a run produced none.
#[derive(Debug, Clone)]
pub enum ResultLine {
    Report(Box<Report>),
    Missing { label: String, target: Target, error: String },
}

#[derive(Deserialize)]
struct MissingLine {
    label: String,
    target: Target,
    error: String,
}

impl ResultLine {
    fn label(&self) -> Option<&str> {
        match self {
            Self::Report(report) => report.label.as_deref(),
            Self::Missing { label, .. } => Some(label),
        }
    }

    fn target(&self) -> Target {
        match self {
            Self::Report(report) => report.target,
            Self::Missing { target, .. } => *target,
        }
    }
}

/// Parses the results file: one JSON object per line.
pub fn parse_results(text: &str) -> Result<Vec<ResultLine>, LoadError> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .enumerate()
        .map(|(number, line)| {
            let bad = |error: serde_json::Error| LoadError::Results(format!("line {}: {error}", number + 1));
            let value: serde_json::Value = serde_json::from_str(line).map_err(bad)?;
            if value.get("mode").is_some() {
                Ok(ResultLine::Report(Box::new(serde_json::from_value(value).map_err(bad)?)))
            } else {
                let missing: MissingLine = serde_json::from_value(value).map_err(bad)?;
                Ok(ResultLine::Missing { label: missing.label, target: missing.target, error: missing.error })
            }
        })
        .collect()
}

/// Everything the page shows besides the results.
#[derive(Debug, Clone, Default)]
pub struct RunInfo {
    pub date: String,
    pub machine: Vec<String>,
    pub versions: Vec<String>,
    pub commands: Vec<String>,
    pub quick: bool,
    pub notes: Option<String>,
    /// Runs that started while other work (builds, browsers) was running on the machine, as
    /// `label/target (processes)`.
    pub disturbed: Vec<String>,
}

impl RunInfo {
    fn was_disturbed(&self, label: &str, target: Target) -> bool {
        let run = format!("{label}/{target}");
        self.disturbed.iter().any(|line| line.split_whitespace().next() == Some(run.as_str()))
    }

    /// The server's name, marked when its run was disturbed.
    fn server_cell(&self, report: &Report) -> String {
        let disturbed = report.label.as_deref().is_some_and(|label| self.was_disturbed(label, report.target));
        format!("{}{}", peer_name(report.target), if disturbed { " ‡" } else { "" })
    }
}

/// The scenarios of the issue, in the order the page shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    Idle,
    Fanout1000,
    Fanout5000,
    /// `Fanout5000` with the subscribers split over two instances sharing one Redis.
    Fanout5000Cluster,
    Search5000,
    Throughput,
    JoinBurst,
    /// 1,000 rooms of 10 subscribers, one publisher per room: the highest total rate.
    Rooms1000,
    /// 5,000 streams each following 10 of 100 rooms, 200 messages/s over all of them.
    RoomsFollowed,
}

impl Scenario {
    const ALL: [Self; 9] = [
        Self::Idle,
        Self::Fanout1000,
        Self::Fanout5000,
        Self::Fanout5000Cluster,
        Self::Search5000,
        Self::Throughput,
        Self::JoinBurst,
        Self::Rooms1000,
        Self::RoomsFollowed,
    ];

    fn of_label(label: &str) -> Option<Self> {
        Some(match label {
            "idle" => Self::Idle,
            "fanout-1000" => Self::Fanout1000,
            "fanout-5000" => Self::Fanout5000,
            "fanout-5000-cluster" => Self::Fanout5000Cluster,
            "search-5000" => Self::Search5000,
            "throughput" => Self::Throughput,
            "rooms-1000" => Self::Rooms1000,
            "rooms-followed" => Self::RoomsFollowed,
            _ if label.starts_with("join-") => Self::JoinBurst,
            _ => return None,
        })
    }

    fn title(self) -> &'static str {
        match self {
            Self::Idle => "10,000 idle streams",
            Self::Fanout1000 => "1,000 subscribers, 100 messages/s, 30 s",
            Self::Fanout5000 => "5,000 subscribers, one publisher asking for 50 messages/s, 20 s",
            Self::Fanout5000Cluster => {
                "The same, the subscribers split over two ssechat instances on one Redis"
            }
            Self::Search5000 => "5,000 subscribers, one publisher: the highest rate that holds",
            Self::Throughput => "10 subscribers, 16 publishers, as fast as answers come, 10 s",
            Self::JoinBurst => "N users join in a burst, N = 1,000 / 3,000 / 10,000",
            Self::Rooms1000 => {
                "1,000 rooms × 10 subscribers, one publisher per room: the highest total rate that holds"
            }
            Self::RoomsFollowed => {
                "5,000 streams each following 10 of 100 rooms, 200 messages/s over all rooms"
            }
        }
    }

    fn goal(self) -> &'static str {
        match self {
            Self::Idle => "all in under 1 s; under 10 KiB per stream",
            Self::Fanout1000 => "p99 under 5 ms, 0 lost",
            Self::Fanout5000 => {
                "50 messages/s held: 250,000 delivered events/s, 0 lost, 0 dropped, p99 under 100 ms"
            }
            Self::Fanout5000Cluster => {
                "as on one process: 50 messages/s held, 0 lost, 0 dropped, p99 under 100 ms (the peers \
                 have no shared mode: not run)"
            }
            Self::Search5000 => "at least 50 messages/s with 0 lost, 0 disconnected, p99 under 100 ms",
            Self::Throughput => "at least 40,000 durable acked posts/s, 0 lost",
            Self::JoinBurst => "presence bytes per user flat as N grows; 10,000 joins done in under 2 s",
            Self::Rooms1000 => "at least 2× nchan's rate (1,000 channels), 0 lost, p99 under 100 ms",
            Self::RoomsFollowed => "all 200 messages/s held, 0 lost, p99 under 100 ms",
        }
    }
}

/// A verdict on ssechat's result: met or not, and the figures that decide it.
struct Verdict {
    met: bool,
    detail: String,
}

fn step(report: &Report) -> Option<&StepReport> {
    report.steps.first()
}

fn fmt_int(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn fmt_ms(ms: f64) -> String {
    if ms >= 100.0 { format!("{ms:.0} ms") } else { format!("{ms:.2} ms") }
}

fn fmt_cpu(pct: Option<f64>) -> String {
    pct.map_or_else(|| "n/a".into(), |pct| format!("{pct:.0}%"))
}

fn verdict(scenario: Scenario, reports: &[&Report], nchan: &[&Report]) -> Verdict {
    let none = || Verdict { met: false, detail: "no result".into() };
    let Some(first) = reports.first() else { return none() };
    match scenario {
        Scenario::Idle => {
            let Some(connect) = &first.connect else { return none() };
            let kib = first.memory.map(|m| m.kib_per_stream);
            let all = connect.connected == connect.streams;
            let met = all && connect.seconds < 1.0 && kib.is_some_and(|kib| kib < 10.0);
            Verdict {
                met,
                detail: format!(
                    "{} of {} in {:.2} s; {} per stream",
                    fmt_int(connect.connected as f64),
                    fmt_int(connect.streams as f64),
                    connect.seconds,
                    kib.map_or_else(|| "n/a".into(), |kib| format!("{kib:.1} KiB"))
                ),
            }
        }
        Scenario::Rooms1000 => {
            let Some(search) = &first.search else { return none() };
            let nchan_best =
                nchan.first().and_then(|report| report.search.as_ref()).and_then(|search| search.best_rate);
            let ratio = search.best_rate.zip(nchan_best).map(|(ours, theirs)| ours / theirs.max(1e-9));
            Verdict {
                met: ratio.is_some_and(|ratio| ratio >= 2.0),
                detail: format!(
                    "{}; {}",
                    search_summary(first),
                    ratio.map_or_else(|| "no ratio to nchan".into(), |ratio| format!("{ratio:.2}× nchan"))
                ),
            }
        }
        Scenario::Fanout1000
        | Scenario::Fanout5000
        | Scenario::Fanout5000Cluster
        | Scenario::Throughput
        | Scenario::RoomsFollowed => {
            let Some(step) = step(first) else { return none() };
            let clean =
                step.lost == 0 && step.duplicated == 0 && step.out_of_order == 0 && step.disconnected == 0;
            let (met, detail) = match scenario {
                Scenario::Fanout1000 => (
                    clean && step.latency.p99_ms < 5.0 && held(step),
                    format!("p99 {}, {} lost", fmt_ms(step.latency.p99_ms), step.lost),
                ),
                Scenario::RoomsFollowed => (
                    clean && held(step) && step.latency.p99_ms < 100.0,
                    format!(
                        "{:.0} of {:.0} messages/s, {} events/s, p99 {}, {} lost, {} dropped",
                        step.posts.acknowledged_per_s,
                        step.asked_rate.unwrap_or(0.0),
                        fmt_int(step.delivered_per_s),
                        fmt_ms(step.latency.p99_ms),
                        step.lost,
                        step.disconnected
                    ),
                ),
                Scenario::Fanout5000 | Scenario::Fanout5000Cluster => {
                    let asked = step.asked_rate.unwrap_or(0.0);
                    let full_rate = asked * step.subscribers as f64;
                    (
                        clean
                            && held(step)
                            && step.delivered_per_s >= 0.95 * full_rate
                            && step.latency.p99_ms < 100.0,
                        format!(
                            "{:.0} of {asked:.0} messages/s, {} events/s, p99 {}, {} lost, {} dropped",
                            step.posts.acknowledged_per_s,
                            fmt_int(step.delivered_per_s),
                            fmt_ms(step.latency.p99_ms),
                            step.lost,
                            step.disconnected
                        ),
                    )
                }
                _ => (
                    clean && step.posts.acknowledged_per_s >= 40_000.0,
                    format!("{} acked posts/s, {} lost", fmt_int(step.posts.acknowledged_per_s), step.lost),
                ),
            };
            Verdict { met, detail }
        }
        Scenario::Search5000 => {
            let Some(search) = &first.search else { return none() };
            Verdict { met: search.best_rate.is_some_and(|rate| rate >= 50.0), detail: search_summary(first) }
        }
        Scenario::JoinBurst => {
            let joins: Vec<_> = reports.iter().filter_map(|report| report.join.as_ref()).collect();
            let Some(largest) = joins.iter().max_by_key(|join| join.users) else { return none() };
            let Some(smallest) = joins.iter().min_by_key(|join| join.users) else { return none() };
            // Flat: the largest room costs each user no more than the smallest one does.
            let flat = largest.presence_bytes_per_user <= smallest.presence_bytes_per_user * 1.1;
            let fast = largest.joined == largest.users && largest.join_s < 2.0;
            let all_right = joins.iter().all(|join| join.converged == join.users);
            Verdict {
                met: flat && fast && all_right,
                detail: format!(
                    "{} per user at {} → {} at {}; {} joins in {:.2} s",
                    bytes(smallest.presence_bytes_per_user),
                    fmt_int(smallest.users as f64),
                    bytes(largest.presence_bytes_per_user),
                    fmt_int(largest.users as f64),
                    fmt_int(largest.users as f64),
                    largest.join_s
                ),
            }
        }
    }
}

/// The highest rate that held and the first that did not, in words.
fn search_summary(report: &Report) -> String {
    let Some(search) = &report.search else { return "no search".into() };
    let best = search.best_rate.map_or_else(
        || "no rate held".into(),
        |rate| {
            let p99 = search
                .best_step
                .and_then(|best| report.steps.iter().find(|step| step.step == best))
                .map(|step| format!(" (p99 {})", fmt_ms(step.latency.p99_ms)))
                .unwrap_or_default();
            format!("{rate:.0} messages/s held{p99}")
        },
    );
    match search.first_failing_rate {
        Some(rate) => format!("{best}; {rate:.0} did not"),
        None => best,
    }
}

/// True when the step kept the rate it asked for (within 5 %).
fn held(step: &StepReport) -> bool {
    step.asked_rate.is_none_or(|asked| step.posts.acknowledged_per_s >= 0.95 * asked)
}

fn bytes(count: f64) -> String {
    if count >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", count / 1024.0 / 1024.0)
    } else if count >= 1024.0 {
        format!("{:.1} KiB", count / 1024.0)
    } else {
        format!("{count:.0} B")
    }
}

/// One-line summary of a target's result in the overview table.
fn overview_cell(scenario: Scenario, line: Option<&ResultLine>, joins: &[&Report]) -> String {
    let report = match line {
        None => return "not run".into(),
        Some(ResultLine::Missing { error, .. }) => return format!("no result ({error})"),
        Some(ResultLine::Report(report)) => report,
    };
    match scenario {
        Scenario::Idle => report.connect.as_ref().map_or_else(String::new, |connect| {
            format!(
                "{} of {} in {:.2} s, {}",
                fmt_int(connect.connected as f64),
                fmt_int(connect.streams as f64),
                connect.seconds,
                report.memory.map_or_else(|| "n/a".into(), |m| format!("{:.1} KiB/stream", m.kib_per_stream))
            )
        }),
        Scenario::Fanout1000
        | Scenario::Fanout5000
        | Scenario::Fanout5000Cluster
        | Scenario::RoomsFollowed => step(report).map_or_else(String::new, |step| {
            format!(
                "{:.0} msg/s, {} events/s, p99 {}, {} lost",
                step.posts.acknowledged_per_s,
                fmt_int(step.delivered_per_s),
                fmt_ms(step.latency.p99_ms),
                step.lost
            )
        }),
        Scenario::Search5000 | Scenario::Rooms1000 => search_summary(report),
        Scenario::Throughput => step(report).map_or_else(String::new, |step| {
            format!("{} acked posts/s, {} lost", fmt_int(step.posts.acknowledged_per_s), step.lost)
        }),
        Scenario::JoinBurst => joins
            .iter()
            .filter_map(|report| report.join.as_ref())
            .map(|join| {
                format!(
                    "{}: {:.2} s, {}/user",
                    fmt_int(join.users as f64),
                    join.join_s,
                    bytes(join.presence_bytes_per_user)
                )
            })
            .collect::<Vec<_>>()
            .join("; "),
    }
}

const TARGETS: [Target; 3] = [Target::Ssechat, Target::Nchan, Target::Hono];

fn peer_name(target: Target) -> &'static str {
    match target {
        Target::Ssechat => "ssechat",
        Target::Nchan => "nginx + nchan",
        Target::Hono => "Hono on Bun (original)",
    }
}

/// Renders the whole page.
pub fn render(results: &[ResultLine], info: &RunInfo) -> String {
    let mut page = String::new();
    let w = &mut page;
    let _ = writeln!(w, "# Benchmarks\n");
    let _ = writeln!(
        w,
        "ssechat beside its peers, measured side by side in one run of `scripts/bench.sh{}` on {}. \
         This file is generated: re-run the script to refresh it (the notes at the end are kept).\n",
        if info.quick { " --quick" } else { "" },
        info.date
    );
    if info.quick {
        let _ = writeln!(
            w,
            "**Quick run**: sizes and durations are shrunk; the figures are not comparable with the targets.\n"
        );
    }
    let _ = writeln!(w, "## Machine\n");
    for line in &info.machine {
        let _ = writeln!(w, "- {line}");
    }
    let _ = writeln!(
        w,
        "- Each server pinned to CPU 0 (`taskset -c 0`), the load tester to CPU 1 (`taskset -c 1`), all traffic on 127.0.0.1."
    );
    for line in &info.versions {
        let _ = writeln!(w, "- {line}");
    }

    let lines_for = |scenario: Scenario| -> Vec<&ResultLine> {
        results.iter().filter(|line| line.label().and_then(Scenario::of_label) == Some(scenario)).collect()
    };
    let reports_for = |scenario: Scenario, target: Target| -> Vec<&Report> {
        lines_for(scenario)
            .into_iter()
            .filter(|line| line.target() == target)
            .filter_map(|line| match line {
                ResultLine::Report(report) => Some(report.as_ref()),
                ResultLine::Missing { .. } => None,
            })
            .collect()
    };

    let _ = writeln!(w, "\n## Against the targets\n");
    let _ = writeln!(w, "| Scenario | Target for ssechat | ssechat | nginx + nchan | Hono on Bun | Met? |");
    let _ = writeln!(w, "|---|---|---|---|---|---|");
    for scenario in Scenario::ALL {
        let lines = lines_for(scenario);
        let cell = |target: Target| {
            let first = lines.iter().copied().find(|line| line.target() == target);
            let disturbed = lines
                .iter()
                .filter(|line| line.target() == target)
                .any(|line| line.label().is_some_and(|label| info.was_disturbed(label, target)));
            let cell = overview_cell(scenario, first, &reports_for(scenario, target));
            if disturbed { format!("{cell} ‡") } else { cell }
        };
        let verdict =
            verdict(scenario, &reports_for(scenario, Target::Ssechat), &reports_for(scenario, Target::Nchan));
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} | {} | {} |",
            scenario.title(),
            scenario.goal(),
            cell(Target::Ssechat),
            cell(Target::Nchan),
            cell(Target::Hono),
            if verdict.met {
                format!("yes: {}", verdict.detail)
            } else {
                format!("**no**: {}", verdict.detail)
            }
        );
    }

    for scenario in Scenario::ALL {
        let lines = lines_for(scenario);
        let _ = writeln!(w, "\n## {}\n", scenario.title());
        let _ = writeln!(w, "Target: {}.\n", scenario.goal());
        let mut as_run: Vec<&str> = Vec::new();
        for line in &lines {
            if let ResultLine::Report(report) = line
                && !report.parameters.is_empty()
                && !as_run.contains(&report.parameters.as_str())
            {
                as_run.push(&report.parameters);
            }
        }
        for parameters in as_run {
            let _ = writeln!(w, "As run: {parameters}.\n");
        }
        match scenario {
            Scenario::Idle => idle_table(w, &lines, info),
            Scenario::JoinBurst => join_table(w, &lines, info),
            Scenario::Search5000 | Scenario::Rooms1000 => search_table(w, &lines, info),
            Scenario::Fanout5000Cluster => cluster_table(w, &lines_for(Scenario::Fanout5000), &lines, info),
            _ => step_table(w, &lines, info),
        }
        failures_list(w, &lines);
    }

    let _ = writeln!(w, "\n## How to read the tables\n");
    let _ = writeln!(
        w,
        "- Latency is from the moment a publisher starts writing its `POST` to the moment a subscriber has parsed the event, on one clock (publishers and subscribers share the load tester's process). Ack latency is from the same start to the publisher's answer."
    );
    let _ = writeln!(
        w,
        "- Lost: messages the server acknowledged that a subscriber still connected at the end never received. Each publisher sends one message at a time, so its messages have an order; out of order and duplicated are checked per subscriber and publisher, and on ssechat the `seq` must grow too."
    );
    let _ = writeln!(
        w,
        "- ssechat's publishers each keep a stream open (the protocol gives the session cookie to a stream), so ssechat serves the subscribers plus one stream per publisher; the peers serve the subscribers only."
    );
    let _ = writeln!(
        w,
        "- Durable: ssechat acknowledges a post once SQLite has committed it (`synchronous=FULL`); nchan keeps messages in memory, the original design keeps nothing."
    );
    let _ = writeln!(
        w,
        "- CPU: share of one core over the measured window (server: all its processes and threads). A load tester near 100 % (marked †) may have been the limit rather than the server."
    );
    if !info.disturbed.is_empty() {
        let _ = writeln!(
            w,
            "- ‡: other work (a build, a browser) was running on the machine at the start or the end of this run; its figures are disturbed."
        );
    }
    let _ = writeln!(
        w,
        "- Accept-queue overflows: connections that found the server's listen queue full while streams were opening (Linux `ListenOverflows`); each retried its handshake a second later."
    );

    let _ = writeln!(w, "\n## Commands\n");
    let _ = writeln!(w, "```sh");
    for command in &info.commands {
        let _ = writeln!(w, "{command}");
    }
    let _ = writeln!(w, "```");

    let _ = writeln!(w, "\n## Notes\n");
    let _ = writeln!(w, "{NOTES_BEGIN}");
    match info.notes.as_deref().map(str::trim).filter(|notes| !notes.is_empty()) {
        Some(notes) => {
            let _ = writeln!(w, "{notes}");
        }
        None => {
            let _ = writeln!(
                w,
                "(Notes written here, between the markers, are kept when the script regenerates this file.)"
            );
        }
    }
    let _ = writeln!(w, "{NOTES_END}");
    page
}

fn saturated_mark(saturated: bool) -> &'static str {
    if saturated { " †" } else { "" }
}

fn saturated(cpu: &CpuUse, report: &Report) -> bool {
    cpu.loadtester_cpu_pct >= SATURATED_CPU_PCT * report.loadtester_threads as f64
}

fn by_target<'a>(lines: &[&'a ResultLine]) -> Vec<(Target, Option<&'a ResultLine>)> {
    TARGETS
        .iter()
        .map(|target| (*target, lines.iter().copied().find(|line| line.target() == *target)))
        .collect()
}

fn idle_table(w: &mut String, lines: &[&ResultLine], info: &RunInfo) {
    let _ = writeln!(
        w,
        "| Server | Connected | Time to connect all | RSS per stream | Accept-queue overflows | Server CPU | Load tester CPU |"
    );
    let _ = writeln!(w, "|---|---|---|---|---|---|---|");
    for (target, line) in by_target(lines) {
        let Some(ResultLine::Report(report)) = line else {
            let _ = writeln!(w, "| {} | {} | | | | | |", peer_name(target), missing_text(line));
            continue;
        };
        let Some(connect) = &report.connect else { continue };
        let _ = writeln!(
            w,
            "| {} | {} of {} | {:.2} s | {} | {} | {} | {}{} |",
            info.server_cell(report),
            fmt_int(connect.connected as f64),
            fmt_int(connect.streams as f64),
            connect.seconds,
            report.memory.map_or_else(|| "n/a".into(), |m| format!("{:.1} KiB", m.kib_per_stream)),
            connect.listen_overflows.map_or_else(|| "n/a".into(), |o| fmt_int(o as f64)),
            fmt_cpu(connect.cpu.server_cpu_pct),
            fmt_cpu(Some(connect.cpu.loadtester_cpu_pct)),
            saturated_mark(saturated(&connect.cpu, report))
        );
    }
}

fn step_table(w: &mut String, lines: &[&ResultLine], info: &RunInfo) {
    step_table_head(w);
    for (target, line) in by_target(lines) {
        step_row(w, peer_name(target), line, info);
    }
}

/// The single-process ssechat run beside the two-instance one.
fn cluster_table(w: &mut String, single: &[&ResultLine], cluster: &[&ResultLine], info: &RunInfo) {
    fn ssechat<'a>(lines: &[&'a ResultLine]) -> Option<&'a ResultLine> {
        lines.iter().copied().find(|line| line.target() == Target::Ssechat)
    }
    step_table_head(w);
    step_row(w, "ssechat, one process (SQLite)", ssechat(single), info);
    step_row(w, "ssechat, two instances + Redis", ssechat(cluster), info);
    let _ = writeln!(
        w,
        "\nThe two instances and redis-server (AOF, `appendfsync always`) share CPU 0, as one \
         process does above; memory and CPU are summed over the three. Subscribers are dealt out \
         over the instances in turn; the publisher posts on the first, so every message reaches \
         half the room through Redis."
    );
}

fn step_table_head(w: &mut String) {
    let _ = writeln!(
        w,
        "| Server | Acked posts/s (asked) | Ack p50 / p99 | Delivered events/s | Latency p50 | p90 | p99 | max | Lost | Dup / out of order | Disconnected | Server CPU | Load tester CPU |"
    );
    let _ = writeln!(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|");
}

/// One row of a step table; `name` is the server's name when the run gave no report.
fn step_row(w: &mut String, name: &str, line: Option<&ResultLine>, info: &RunInfo) {
    let Some(ResultLine::Report(report)) = line else {
        let _ = writeln!(w, "| {name} | {} | | | | | | | | | | | |", missing_text(line));
        return;
    };
    let Some(step) = step(report) else {
        let _ = writeln!(w, "| {name} | did not publish | | | | | | | | | | | |");
        return;
    };
    let disturbed = report.label.as_deref().is_some_and(|label| info.was_disturbed(label, report.target));
    let asked = step.asked_rate.map_or_else(|| "max".into(), |rate| format!("{rate:.0}"));
    let _ = writeln!(
        w,
        "| {name}{} | {} ({asked}) | {} / {} | {} | {} | {} | {} | {} | {} | {} / {} | {} | {} | {}{} |",
        if disturbed { " ‡" } else { "" },
        fmt_int(step.posts.acknowledged_per_s),
        fmt_ms(step.posts.ack_latency.p50_ms),
        fmt_ms(step.posts.ack_latency.p99_ms),
        fmt_int(step.delivered_per_s),
        fmt_ms(step.latency.p50_ms),
        fmt_ms(step.latency.p90_ms),
        fmt_ms(step.latency.p99_ms),
        fmt_ms(step.latency.max_ms),
        fmt_int(step.lost as f64),
        step.duplicated,
        step.out_of_order,
        step.disconnected,
        fmt_cpu(step.cpu.server_cpu_pct),
        fmt_cpu(Some(step.cpu.loadtester_cpu_pct)),
        saturated_mark(step.loadtester_saturated)
    );
}

fn search_table(w: &mut String, lines: &[&ResultLine], info: &RunInfo) {
    let _ = writeln!(
        w,
        "| Server | Highest rate that held | First rate that did not, and why | Rates tried (acked/s, p99) |"
    );
    let _ = writeln!(w, "|---|---|---|---|");
    for (target, line) in by_target(lines) {
        let Some(ResultLine::Report(report)) = line else {
            let _ = writeln!(w, "| {} | {} | | |", peer_name(target), missing_text(line));
            continue;
        };
        let Some(search) = &report.search else { continue };
        let tried: Vec<String> = report
            .steps
            .iter()
            .map(|step| {
                format!(
                    "{:.0}: {:.0}/s, {}",
                    step.asked_rate.unwrap_or(0.0),
                    step.posts.acknowledged_per_s,
                    fmt_ms(step.latency.p99_ms)
                )
            })
            .collect();
        let _ = writeln!(
            w,
            "| {} | {} | {} | {}{} |",
            info.server_cell(report),
            search.best_rate.map_or_else(|| "none".into(), |rate| format!("{rate:.0} messages/s")),
            match (search.first_failing_rate, &search.first_failing_reason) {
                (Some(rate), Some(reason)) => format!("{rate:.0}: {reason}"),
                _ => "none".into(),
            },
            tried.join("; "),
            saturated_mark(report.steps.iter().any(|step| step.loadtester_saturated))
        );
    }
}

fn join_table(w: &mut String, lines: &[&ResultLine], info: &RunInfo) {
    let _ = writeln!(
        w,
        "| Server | N | Joined | Join time | Views right (after) | Presence bytes per user | new-user events | RSS per stream | Accept-queue overflows | Load tester CPU |"
    );
    let _ = writeln!(w, "|---|---|---|---|---|---|---|---|---|---|");
    for target in TARGETS {
        for line in lines.iter().copied().filter(|line| line.target() == target) {
            let report = match line {
                ResultLine::Report(report) => report,
                ResultLine::Missing { label, error, .. } => {
                    let _ =
                        writeln!(w, "| {} | {label} | no result: {error} | | | | | | | |", peer_name(target));
                    continue;
                }
            };
            let Some(join) = &report.join else { continue };
            let _ = writeln!(
                w,
                "| {} | {} | {} | {:.2} s | {} ({:.2} s) | {} | {} | {} | {} | {}{} |",
                info.server_cell(report),
                fmt_int(join.users as f64),
                fmt_int(join.joined as f64),
                join.join_s,
                fmt_int(join.converged as f64),
                join.converge_s,
                bytes(join.presence_bytes_per_user),
                fmt_int(join.new_user_events as f64),
                report.memory.map_or_else(|| "n/a".into(), |m| format!("{:.1} KiB", m.kib_per_stream)),
                report
                    .connect
                    .as_ref()
                    .and_then(|c| c.listen_overflows)
                    .map_or_else(|| "n/a".into(), |o| fmt_int(o as f64)),
                fmt_cpu(Some(join.cpu.loadtester_cpu_pct)),
                saturated_mark(saturated(&join.cpu, report))
            );
        }
    }
}

fn missing_text(line: Option<&ResultLine>) -> String {
    match line {
        Some(ResultLine::Missing { error, .. }) => format!("no result: {error}"),
        _ => "not run".into(),
    }
}

fn failures_list(w: &mut String, lines: &[&ResultLine]) {
    let mut any = false;
    for line in lines {
        let ResultLine::Report(report) = line else { continue };
        for failure in &report.failures {
            if !any {
                let _ = writeln!(w, "\nWhat the load tester flagged:\n");
                any = true;
            }
            let label = report.label.as_deref().unwrap_or("");
            let _ = writeln!(w, "- {} ({label}): {failure}", peer_name(report.target));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{ConnectReport, MemoryReport};

    fn idle_report(target: Target, seconds: f64, kib: f64) -> Report {
        let mut report = Report::new("idle", target, Some("idle".into()), "http://x".into(), 1);
        report.connect =
            Some(ConnectReport { streams: 10_000, connected: 10_000, seconds, ..ConnectReport::default() });
        report.memory = Some(MemoryReport { kib_per_stream: kib, ..MemoryReport::default() });
        report.conclude()
    }

    #[test]
    fn results_round_trip_and_verdicts_say_when_a_target_is_missed() {
        let lines = [
            idle_report(Target::Ssechat, 1.4, 37.0).to_json_line(),
            idle_report(Target::Nchan, 0.3, 10.0).to_json_line(),
            r#"{"label":"idle","target":"hono","error":"timed out"}"#.to_owned(),
        ]
        .join("\n");
        let results = parse_results(&lines).unwrap();
        assert_eq!(results.len(), 3);
        let page = render(&results, &RunInfo { date: "today".into(), ..RunInfo::default() });
        assert!(page.contains("**no**: 10,000 of 10,000 in 1.40 s; 37.0 KiB per stream"), "{page}");
        assert!(page.contains("no result: timed out"));
        assert!(page.contains(NOTES_BEGIN) && page.contains(NOTES_END));
    }

    fn fanout_report(label: &str, acked_per_s: f64, p99_ms: f64) -> Report {
        let mut report = Report::new("fanout", Target::Ssechat, Some(label.into()), "http://x".into(), 1);
        let mut step = StepReport { subscribers: 5_000, asked_rate: Some(50.0), ..StepReport::default() };
        step.posts.acknowledged_per_s = acked_per_s;
        step.delivered_per_s = acked_per_s * 5_000.0;
        step.latency.p99_ms = p99_ms;
        report.steps.push(step);
        report.conclude()
    }

    #[test]
    fn the_two_instance_run_is_shown_beside_the_single_process_one() {
        let lines = [
            fanout_report("fanout-5000", 50.0, 60.0).to_json_line(),
            fanout_report("fanout-5000-cluster", 31.0, 80.0).to_json_line(),
        ]
        .join("\n");
        let page = render(&parse_results(&lines).unwrap(), &RunInfo::default());
        let section = page.split("## The same, the subscribers split").nth(1).expect("a cluster section");
        let single = section.find("| ssechat, one process (SQLite) | 50 (50) |").expect("the single row");
        let cluster = section.find("| ssechat, two instances + Redis | 31 (50) |").expect("the cluster row");
        assert!(single < cluster, "{section}");
        assert!(page.contains("**no**: 31 of 50 messages/s"), "{page}");
    }

    #[test]
    fn numbers_are_grouped_by_thousands() {
        assert_eq!(fmt_int(1234567.4), "1,234,567");
        assert_eq!(fmt_int(999.0), "999");
        assert_eq!(bytes(2048.0), "2.0 KiB");
    }
}
