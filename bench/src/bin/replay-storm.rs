//! `replay-storm`: many clients replay the whole retained history at once while a publisher
//! posts at a steady rate; reports the posts' answer latency during the storm.
//!
//! The question it answers: does a burst of long replays (a deploy that reconnects everyone
//! with an old `last_event_id`, or clients that were away) delay the commits of new messages?
//! Replays older than the server's in-memory cache are read from the store; the server reads
//! them in pages, so posts commit between pages instead of waiting behind whole replays.
//!
//! Run against a server started with its rate limits out of the way (as `scripts/bench.sh`
//! starts it): `replay-storm --url http://127.0.0.1:3000 --history 10000 --replayers 50`.
//! Prints a summary on stderr and one JSON line on stdout; exits 1 when a replay was
//! incomplete or a post failed.

use bench::{
    context::RunContext,
    http::{self, Endpoint, StreamRequest},
    latency::Histogram,
    publisher::{Pacing, Publisher},
    rooms::RoomLayout,
    target::{Target, User},
};
use clap::Parser;
use std::{process::ExitCode, sync::Arc, time::Duration};
use tokio::time::Instant;

#[derive(Debug, Parser)]
#[command(
    name = "replay-storm",
    about = "Posts' latency while many clients replay the whole history at once"
)]
struct Cli {
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    url: String,
    /// Messages posted first (the history the replayers ask for).
    #[arg(long, default_value_t = 10_000)]
    history: u64,
    /// Clients that replay everything at once (`last_event_id=0`).
    #[arg(long, default_value_t = 50)]
    replayers: usize,
    /// Messages per second posted during the storm, all publishers together.
    #[arg(long, default_value_t = 200.0)]
    rate: f64,
    /// Publishers sharing the rate. Each sends its next message only after the previous was
    /// answered, so with one publisher a stall of the store would delay one post and push the
    /// rest back unmeasured; with several, every post due during a stall is measured.
    #[arg(long, default_value_t = 16)]
    publishers: u32,
    /// How long the publisher posts from the start of the storm: about as long as the replays
    /// take, so that the latencies are those of posts made during them.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// How long the replays may take.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    replay_timeout: Duration,
    /// Extra bytes in every message text (a replay of 10,000 is then that much larger).
    #[arg(long, default_value_t = 100)]
    message_padding: usize,
}

#[derive(Debug, Default, serde::Serialize)]
struct Outcome {
    history: u64,
    replayers: usize,
    /// Replayers that received every message of the history.
    complete_replays: usize,
    /// From opening the replayers to the last one complete, in seconds.
    replay_s: f64,
    posts: u64,
    post_errors: u64,
    ack_p50_ms: f64,
    ack_p99_ms: f64,
    ack_max_ms: f64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("replay-storm: cannot start a runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(outcome) => {
            eprintln!(
                "replay-storm: {} of {} replays of {} messages complete in {:.2} s; {} posts during it \
                 ({} failed): ack p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                outcome.complete_replays,
                outcome.replayers,
                outcome.history,
                outcome.replay_s,
                outcome.posts,
                outcome.post_errors,
                outcome.ack_p50_ms,
                outcome.ack_p99_ms,
                outcome.ack_max_ms
            );
            println!("{}", serde_json::to_string(&outcome).unwrap_or_default());
            if outcome.complete_replays == outcome.replayers && outcome.post_errors == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(error) => {
            eprintln!("replay-storm: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<Outcome, String> {
    let endpoint = Endpoint::parse(&cli.url).map_err(|error| error.to_string())?;
    let mut context = RunContext::new(
        vec![endpoint.clone()],
        Target::Ssechat,
        RoomLayout::new("general".into(), 1, 1),
        1_000,
    )
    .map_err(|error| error.to_string())?;
    context.message_padding = cli.message_padding;
    let context = Arc::new(context);

    // The history: posted as fast as answers come.
    let mut loader = Publisher::prepare(&context, 0).await.map_err(|error| error.to_string())?;
    let far = Instant::now() + Duration::from_secs(600);
    let loaded =
        loader.publish(&context, 0, Pacing::AsFastAsAnswers, (Instant::now(), far), Some(cli.history)).await;
    if loaded.acknowledged.len() != cli.history {
        return Err(format!(
            "loading the history: {} of {} acknowledged",
            loaded.acknowledged.len(),
            cli.history
        ));
    }
    drop(loader);

    // The storm and, beside it, publishers at a steady rate.
    let mut publishers = Vec::new();
    for index in 1..=cli.publishers.max(1) {
        publishers.push(Publisher::prepare(&context, index).await.map_err(|error| error.to_string())?);
    }
    let interval = Duration::from_secs_f64(f64::from(cli.publishers.max(1)) / cli.rate.max(0.001));
    let started = Instant::now();
    let replays: Vec<_> = (0..cli.replayers)
        .map(|index| tokio::spawn(replay(endpoint.clone(), index, cli.history, started + cli.replay_timeout)))
        .collect();
    let posting: Vec<_> = publishers
        .into_iter()
        .map(|mut publisher| {
            let context = Arc::clone(&context);
            tokio::spawn(async move {
                publisher
                    .publish(&context, 1, Pacing::Every(interval), (started, started + cli.duration), None)
                    .await
            })
        })
        .collect();
    let mut outcome = Outcome { history: cli.history, replayers: cli.replayers, ..Outcome::default() };
    for replay in replays {
        if let Ok(Some(done_at)) = replay.await {
            outcome.complete_replays += 1;
            outcome.replay_s = outcome.replay_s.max(done_at.duration_since(started).as_secs_f64());
        }
    }
    let mut ack_latency = Histogram::default();
    for posted in posting {
        let posted = posted.await.map_err(|error| error.to_string())?;
        ack_latency.merge(&posted.ack_latency);
        outcome.posts += posted.attempted;
        outcome.post_errors += posted.errors.values().sum::<u64>();
    }
    let latency = ack_latency.summary();
    outcome.ack_p50_ms = latency.p50_ms;
    outcome.ack_p99_ms = latency.p99_ms;
    outcome.ack_max_ms = latency.max_ms;
    Ok(outcome)
}

/// Opens a stream that replays everything (`last_event_id=0`) and reads until `history`
/// messages arrived; the instant it had them all, or `None` if not by `deadline`.
async fn replay(endpoint: Endpoint, index: usize, history: u64, deadline: Instant) -> Option<Instant> {
    let user = User::new(format!("replayer{index}"));
    let path =
        format!("{}&last_event_id=0", Target::Ssechat.stream_path(&["general".to_owned()], false, &user));
    let opened =
        http::open_stream(&endpoint, StreamRequest { path_and_query: &path, cookie: None }).await.ok()?;
    let (socket, mut body) = (opened.socket, opened.body);
    let mut lines = IdLines::default();
    body.feed(&opened.early_body, &mut |bytes| lines.feed(bytes)).ok()?;
    while lines.ids < history {
        let read = socket.read_with(|bytes| body.feed(bytes, &mut |decoded| lines.feed(decoded)).is_ok());
        match tokio::time::timeout_at(deadline, read).await {
            Ok(Ok(Some(true))) => {}
            _ => return None,
        }
    }
    Some(Instant::now())
}

/// Counts the `id:` lines of an event stream (one per `message` event), across reads.
#[derive(Default)]
struct IdLines {
    partial: Vec<u8>,
    ids: u64,
}

impl IdLines {
    fn feed(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            if byte == b'\n' {
                if self.partial.starts_with(b"id:") {
                    self.ids += 1;
                }
                self.partial.clear();
            } else if self.partial.len() < 8 {
                self.partial.push(byte);
            }
        }
    }
}
