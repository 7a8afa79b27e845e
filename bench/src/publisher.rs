//! Publishers: each is one user with one keep-alive connection that sends one message at a
//! time, like a browser tab waiting for its `fetch`. So a publisher's messages have a defined
//! order (the next is sent only after the previous was answered), which is what lets every
//! server be checked for reordering, with or without a `seq`.
//!
//! On ssechat a publisher first opens its own stream, as the protocol asks, to be given a
//! session cookie; that stream is kept open and read (and its bytes thrown away), because the
//! session ends when the user leaves the room.
//!
//! Pacing is either a rate (messages due at fixed times; a publisher behind schedule sends
//! at once until it has caught up, so the rate asked is kept on average whenever answers
//! allow) or as fast as answers come.

use crate::{
    context::RunContext,
    error::LoadError,
    http::{self, PostClient, StreamRequest},
    latency::{Histogram, LatencySummary},
    ledger::Bitset,
    marker::Marker,
    target::User,
};
use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};
use tokio::{task::JoinHandle, time::Instant};

/// A post with no answer after this long counts as failed, and its connection is replaced.
const POST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pacing {
    /// One message per interval, from each publisher.
    Every(Duration),
    AsFastAsAnswers,
}

/// What one publisher did in one step.
#[derive(Debug, Clone, Default)]
pub struct PublishOutcome {
    /// Counters of the messages the server acknowledged.
    pub acknowledged: Bitset,
    pub attempted: u64,
    pub errors: BTreeMap<String, u64>,
    /// The first answer that was not an acknowledgement, for the report.
    pub first_error: Option<String>,
    /// From sending a post to its answer, in µs.
    pub ack_latency: Histogram,
}

impl PublishOutcome {
    pub fn ack_latency_summary(&self) -> LatencySummary {
        self.ack_latency.summary()
    }
}

/// ssechat only: the publisher's own stream, which keeps its session alive.
struct OwnStream {
    task: JoinHandle<()>,
    open: Arc<AtomicBool>,
}

pub struct Publisher {
    pub index: u32,
    user: User,
    /// The room it posts in.
    room: String,
    client: PostClient,
    cookie: Option<String>,
    own_stream: Option<OwnStream>,
}

impl Drop for Publisher {
    fn drop(&mut self) {
        if let Some(stream) = &self.own_stream {
            stream.task.abort();
        }
    }
}

impl Publisher {
    /// A publisher ready to post: on ssechat, with its stream open and its session cookie.
    pub async fn prepare(context: &RunContext, index: u32) -> Result<Self, LoadError> {
        let user = User::new(format!("pub{index}"));
        let endpoint = context.endpoint(index as usize);
        let client = PostClient::new(endpoint.clone());
        let layout = &context.rooms;
        let room = layout.name(layout.publisher_room(index as usize));
        if !context.target.posts_need_a_session() {
            return Ok(Self { index, user, room, client, cookie: None, own_stream: None });
        }
        // Its stream follows its room: a post needs its author in the room.
        let path = context.target.stream_path(std::slice::from_ref(&room), layout.has_rooms(), &user);
        let opened =
            http::open_stream(endpoint, StreamRequest { path_and_query: &path, cookie: None }).await?;
        let cookie = opened.head.cookie.clone().ok_or(LoadError::NoSessionCookie)?;
        let open = Arc::new(AtomicBool::new(true));
        let still_open = Arc::clone(&open);
        let task = tokio::spawn(async move {
            while let Ok(Some(())) = opened.socket.read_with(|_| ()).await {}
            still_open.store(false, Ordering::Release);
        });
        Ok(Self {
            index,
            user,
            room,
            client,
            cookie: Some(cookie),
            own_stream: Some(OwnStream { task, open }),
        })
    }

    /// False when the publisher's own stream ended (its session will end with it).
    pub fn stream_open(&self) -> bool {
        self.own_stream.as_ref().is_none_or(|stream| stream.open.load(Ordering::Acquire))
    }

    /// Posts messages of `step` from `start` until `until`, or until `limit` were sent.
    pub async fn publish(
        &mut self,
        context: &RunContext,
        step: u32,
        pacing: Pacing,
        (start, until): (Instant, Instant),
        limit: Option<u64>,
    ) -> PublishOutcome {
        let mut outcome = PublishOutcome::default();
        let mut counter: u64 = 0;
        while limit.is_none_or(|limit| counter < limit) {
            let due = match pacing {
                Pacing::Every(interval) => start + interval.mul_f64(counter as f64),
                Pacing::AsFastAsAnswers => Instant::now(),
            };
            // A publisher behind schedule stops at the end too, not when it has caught up.
            if due >= until || Instant::now() >= until {
                break;
            }
            // Only when early: a timer, even one already due, waits for the next tick (1 ms).
            if due > Instant::now() {
                tokio::time::sleep_until(due).await;
            }
            let sent_us = context.clock.now_us();
            let marker = Marker { step, publisher: self.index, counter, sent_us };
            let text = context.markers.text(&marker, context.message_padding);
            let request =
                context.target.post_request(&self.room, context.rooms.has_rooms(), &self.user, &text);
            outcome.attempted += 1;
            let answer =
                tokio::time::timeout(POST_TIMEOUT, self.client.post(&request, self.cookie.as_deref())).await;
            let error = match answer {
                Ok(Ok(answer)) if context.target.acknowledges(answer.status) => {
                    outcome.acknowledged.insert(counter);
                    outcome.ack_latency.record(context.clock.now_us().saturating_sub(sent_us));
                    None
                }
                Ok(Ok(answer)) => Some((
                    format!("http-{}", answer.status),
                    format!("HTTP {}: {}", answer.status, String::from_utf8_lossy(&answer.body).trim()),
                )),
                Ok(Err(error)) => Some((error.kind(), error.to_string())),
                Err(_) => {
                    self.client.reset();
                    Some(("timeout".into(), format!("no answer within {POST_TIMEOUT:?}")))
                }
            };
            if let Some((kind, detail)) = error {
                *outcome.errors.entry(kind).or_default() += 1;
                outcome.first_error.get_or_insert(detail);
            }
            counter += 1;
        }
        outcome
    }
}
