//! The `loadtest` command line: options every scenario shares, then one subcommand per
//! scenario. [`Cli::run`] turns it into a [`Setup`] and runs the scenario.

use crate::{
    context::RunContext,
    error::LoadError,
    http::Endpoint,
    report::Report,
    rooms::RoomLayout,
    scenario::{self, FanoutSettings, SearchSettings, Setup},
    target::Target,
    usage::ServerProcesses,
};
use clap::{Args, Parser, Subcommand};
use std::{sync::Arc, time::Duration};
use tokio::runtime::Handle;

#[derive(Debug, Parser)]
#[command(
    name = "loadtest",
    version,
    about = "Load tester for ssechat and its peers: speaks the public protocol over real sockets.",
    long_about = "Load tester for ssechat and its peers (nginx + nchan, the original Hono/Bun design): speaks \
                  each one's public protocol over real sockets, like any client. Prints a human summary on \
                  stderr and one JSON line on stdout; exits 1 when the run failed (any message lost, \
                  duplicated or out of order, any stream that did not connect or was dropped)."
)]
pub struct Cli {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(subcommand)]
    pub scenario: ScenarioArgs,
}

#[derive(Debug, Args)]
pub struct CommonArgs {
    /// The server under test. Repeat it for several instances of one chat (sharing a Redis):
    /// subscribers and publishers are dealt out over them in turn.
    #[arg(long = "url", global = true, default_value = "http://127.0.0.1:3000")]
    pub urls: Vec<String>,

    /// Which protocol to speak.
    #[arg(long, global = true, value_enum, default_value_t = Target::Ssechat)]
    pub target: Target,

    /// The server's process id, for its memory (VmRSS) and CPU; repeat for several processes
    /// (nginx's master and worker).
    #[arg(long = "server-pid", global = true)]
    pub server_pids: Vec<u32>,

    /// The channel to publish to and subscribe on (nchan; the others have one room), or with
    /// --rooms, the name every room's name starts with (`room-0`, `room-1`, ...).
    #[arg(long, global = true, default_value = "room")]
    pub room: String,

    /// Rooms (nchan: channels) to spread the clients over: publisher p posts in room
    /// p % rooms. More than one makes ssechat speak protocol version 2.
    #[arg(long, global = true, default_value_t = 1)]
    pub rooms: usize,

    /// With --rooms: how many rooms each subscriber's one stream follows.
    #[arg(long, global = true, default_value_t = 1)]
    pub rooms_per_stream: usize,

    /// Worker threads for the subscribers; 1 runs them on the calling thread (pin the
    /// process with taskset). Publishers always run on one more thread of their own.
    #[arg(long, global = true, default_value_t = 1)]
    pub threads: usize,

    /// Connections being opened at once, at most (each until it is in the room).
    #[arg(long, global = true, default_value_t = 1000)]
    pub connect_concurrency: usize,

    /// How long opening all streams may take.
    #[arg(long, global = true, default_value = "60s", value_parser = humantime::parse_duration)]
    pub connect_timeout: Duration,

    /// After publishing, how long subscribers may take to receive everything acknowledged.
    #[arg(long, global = true, default_value = "10s", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,

    /// Extra bytes in every message text.
    #[arg(long, global = true, default_value_t = 0)]
    pub message_padding: usize,

    /// The scenario's name, copied into the report (for scripts/bench.sh).
    #[arg(long, global = true)]
    pub label: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ScenarioArgs {
    /// Opens idle streams; reports connect time and server memory per stream.
    Idle {
        #[arg(long, default_value_t = 10_000)]
        streams: usize,
        /// How long the streams sit idle before memory is read.
        #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
        hold: Duration,
    },
    /// Publishers post at a fixed total rate to every subscriber.
    Fanout {
        #[arg(long, default_value_t = 1_000)]
        subscribers: usize,
        #[arg(long, default_value_t = 1)]
        publishers: usize,
        /// Messages per second, all publishers together.
        #[arg(long, default_value_t = 100.0)]
        rate: f64,
        #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
        duration: Duration,
        /// Stop after this many messages (all publishers together), if before the duration.
        #[arg(long)]
        messages: Option<u64>,
    },
    /// Publishers post as fast as answers come (each one message at a time).
    Throughput {
        #[arg(long, default_value_t = 10)]
        subscribers: usize,
        #[arg(long, default_value_t = 16)]
        publishers: usize,
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        duration: Duration,
        /// Stop after this many messages (all publishers together), if before the duration.
        #[arg(long)]
        messages: Option<u64>,
    },
    /// Finds the highest rate with 0 lost, 0 disconnected and p99 under a bound.
    Search(SearchSettings),
    /// N users join at once; reports join time and presence bytes per user.
    JoinBurst {
        #[arg(long, default_value_t = 1_000)]
        users: usize,
        /// After joining, how long every user's view may take to count everyone.
        #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
        settle_timeout: Duration,
    },
}

impl ScenarioArgs {
    /// The parameters in words, for the report.
    fn describe(&self) -> String {
        let duration = |d: &Duration| humantime::format_duration(*d).to_string();
        let limit =
            |messages: &Option<u64>| messages.map(|m| format!(" (at most {m} messages)")).unwrap_or_default();
        match self {
            Self::Idle { streams, hold } => format!("{streams} idle streams, held {}", duration(hold)),
            Self::Fanout { subscribers, publishers, rate, duration: d, messages } => format!(
                "{subscribers} subscribers, {publishers} publishers, {rate} messages/s asked, {}{}",
                duration(d),
                limit(messages)
            ),
            Self::Throughput { subscribers, publishers, duration: d, messages } => format!(
                "{subscribers} subscribers, {publishers} publishers, as fast as answers come, {}{}",
                duration(d),
                limit(messages)
            ),
            Self::Search(SearchSettings { subscribers, publishers, step_duration, p99_bound_ms, .. }) => {
                format!(
                    "{subscribers} subscribers, {publishers} publishers, {} per rate, p99 under {p99_bound_ms} ms",
                    duration(step_duration)
                )
            }
            Self::JoinBurst { users, settle_timeout } => {
                format!("{users} users join at once, views may take {} to be right", duration(settle_timeout))
            }
        }
    }
}

impl Cli {
    /// Runs the scenario on the current runtime; publishers are prepared and run on
    /// `publishing`.
    pub async fn run(self, publishing: Handle) -> Result<Report, LoadError> {
        let rooms = match (self.common.rooms, self.common.rooms_per_stream) {
            (0 | 1, _) => String::new(),
            (rooms, 0 | 1) => format!("; {rooms} rooms, each stream in one"),
            (rooms, per_stream) => format!("; {rooms} rooms, each stream following {per_stream}"),
        };
        let parameters = format!(
            "{}{rooms}; at most {} connections opening at once",
            self.scenario.describe(),
            self.common.connect_concurrency
        );
        let report = self.run_scenario(publishing).await?;
        Ok(Report { parameters, ..report })
    }

    async fn run_scenario(self, publishing: Handle) -> Result<Report, LoadError> {
        let common = self.common;
        let endpoints = common.urls.iter().map(|url| Endpoint::parse(url)).collect::<Result<Vec<_>, _>>()?;
        let rooms = RoomLayout::new(common.room, common.rooms, common.rooms_per_stream);
        let mut context = RunContext::new(endpoints, common.target, rooms, common.connect_concurrency)?;
        context.message_padding = common.message_padding;
        let setup = Setup {
            context: Arc::new(context),
            server: ServerProcesses::new(common.server_pids),
            connect_timeout: common.connect_timeout,
            drain_timeout: common.drain_timeout,
            label: common.label,
            threads: common.threads.max(1),
            publishing,
        };
        Ok(match self.scenario {
            ScenarioArgs::Idle { streams, hold } => scenario::idle(&setup, streams, hold).await,
            ScenarioArgs::Fanout { subscribers, publishers, rate, duration, messages } => {
                let settings =
                    FanoutSettings { subscribers, publishers, rate: Some(rate), duration, messages };
                scenario::fanout(&setup, settings).await
            }
            ScenarioArgs::Throughput { subscribers, publishers, duration, messages } => {
                let settings = FanoutSettings { subscribers, publishers, rate: None, duration, messages };
                scenario::fanout(&setup, settings).await
            }
            ScenarioArgs::Search(settings) => scenario::search(&setup, settings).await,
            ScenarioArgs::JoinBurst { users, settle_timeout } => {
                scenario::join_burst(&setup, users, settle_timeout).await?
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn common_options_go_before_or_after_the_scenario() {
        let cli =
            Cli::parse_from(["loadtest", "--target", "nchan", "fanout", "--rate", "50", "--label", "x"]);
        assert_eq!(cli.common.target, Target::Nchan);
        assert_eq!(cli.common.label.as_deref(), Some("x"));
        assert!(matches!(cli.scenario, ScenarioArgs::Fanout { rate, .. } if rate == 50.0));
    }
}
