//! Subscribers: streams opened like any client opens them, each read on its own task.
//!
//! A task connects (at most `--connect-concurrency` at once), sends its `GET`, and counts as
//! ready once the server has taken it into the room: its `all-users` event, or the response
//! head where there is no such event (nchan). From then on every read goes through the body
//! decoder and the SSE parser, and every event is accounted in the subscriber's
//! [`StreamRecord`], which the coordinator reads at the end of each step. The record's lock is
//! taken once per read and never held across an `.await`.

use crate::{
    context::{RunContext, lock},
    countdown::Countdown,
    error::LoadError,
    http::{self, BodyDecoder, StreamRequest},
    ledger::Deliveries,
    sse::{SseEvent, SseParser},
    target::{PresenceChange, User},
};
use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};
use tokio::{sync::OwnedSemaphorePermit, task::JoinHandle, time::Instant};

/// Where a stream is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamState {
    Connecting,
    /// In the room since this run-clock time (µs).
    Ready {
        at_us: u64,
    },
    /// Never got in: the reason.
    Failed(String),
    /// Got in, then the stream ended: the reason.
    Ended(String),
}

/// Bytes and events a stream received.
#[derive(Debug, Clone, Copy, Default)]
pub struct Traffic {
    /// Response body bytes as sent (chunk framing included).
    pub body_bytes: u64,
    pub events: u64,
    pub presence_events: u64,
    /// Wire bytes of the events that tell who is in the room.
    pub presence_bytes: u64,
    pub new_user_events: u64,
}

/// A stream's idea of how many users are in the room, and who waits for it to be right.
#[derive(Debug, Default)]
pub struct PresenceTally {
    pub count: Option<u64>,
    watch: Option<(u64, Arc<Countdown>, bool)>,
}

impl PresenceTally {
    fn apply(&mut self, change: PresenceChange) {
        self.count = match change {
            PresenceChange::Count(count) => Some(count),
            PresenceChange::Joined => self.count.map(|count| count + 1),
            PresenceChange::Left => self.count.map(|count| count.saturating_sub(1)),
            PresenceChange::Unchanged => self.count,
        };
        self.tell_if_right();
    }

    /// Asks to tick `countdown` once the count is `users` (or the stream ended).
    pub fn watch(&mut self, users: u64, countdown: Arc<Countdown>, ended: bool) {
        self.watch = Some((users, countdown, false));
        if ended {
            self.stop_waiting();
        } else {
            self.tell_if_right();
        }
    }

    fn stop_waiting(&mut self) {
        if let Some((_, countdown, told)) = self.watch.as_mut().filter(|(_, _, told)| !told) {
            *told = true;
            countdown.tick();
        }
    }

    fn tell_if_right(&mut self) {
        let count = self.count;
        if let Some((_, countdown, told)) =
            self.watch.as_mut().filter(|(users, _, told)| !told && count == Some(*users))
        {
            *told = true;
            countdown.tick();
        }
    }

    /// True when the count is what the watch asked for.
    pub fn is_right(&self) -> bool {
        self.watch.as_ref().is_some_and(|(users, _, _)| self.count == Some(*users))
    }
}

/// Everything known about one stream, shared by its task and the coordinator.
#[derive(Debug)]
pub struct StreamRecord {
    pub state: StreamState,
    pub deliveries: Deliveries,
    pub presence: PresenceTally,
    pub traffic: Traffic,
}

impl StreamRecord {
    fn new() -> Self {
        Self {
            state: StreamState::Connecting,
            deliveries: Deliveries::default(),
            presence: PresenceTally::default(),
            traffic: Traffic::default(),
        }
    }

    pub fn is_ready(&self) -> bool {
        matches!(self.state, StreamState::Ready { .. })
    }

    fn end(&mut self, reason: String) {
        self.state = match self.state {
            StreamState::Ready { .. } => StreamState::Ended(reason),
            _ => StreamState::Failed(reason),
        };
        self.deliveries.stop_waiting();
        self.presence.stop_waiting();
    }
}

/// One subscriber: its user, its record, its task.
pub struct Subscriber {
    pub user: User,
    pub record: Arc<Mutex<StreamRecord>>,
    task: JoinHandle<()>,
}

/// How opening a set of streams went.
#[derive(Debug, Clone, Default)]
pub struct ConnectOutcome {
    pub streams: usize,
    pub ready: usize,
    pub failed: usize,
    /// Still connecting when the deadline passed.
    pub pending: usize,
    /// From the first connect to the last stream ready (or to the deadline).
    pub seconds: f64,
    pub failure_reasons: BTreeMap<String, u64>,
}

/// A set of subscribers opened together.
pub struct SubscriberSet {
    pub subscribers: Vec<Subscriber>,
    /// Ticked by each stream once it is ready or has failed.
    settled: Arc<Countdown>,
    started: Instant,
    started_us: u64,
}

impl SubscriberSet {
    /// Starts `count` subscribers at once, named `{prefix}{i}`.
    pub fn open(context: &Arc<RunContext>, count: usize, prefix: &str) -> Self {
        let settled = Arc::new(Countdown::new(count));
        let started = Instant::now();
        let started_us = context.clock.now_us();
        let subscribers = (0..count)
            .map(|i| {
                let user = User::new(format!("{prefix}{i}"));
                let record = Arc::new(Mutex::new(StreamRecord::new()));
                let task = tokio::spawn(subscribe(
                    Arc::clone(context),
                    i,
                    user.clone(),
                    Arc::clone(&record),
                    Arc::clone(&settled),
                ));
                Subscriber { user, record, task }
            })
            .collect();
        Self { subscribers, settled, started, started_us }
    }

    /// Waits until every stream is ready or failed, or `deadline`, and says how it went.
    pub async fn wait_ready(&self, deadline: Instant) -> ConnectOutcome {
        let all_settled = self.settled.wait_until(deadline).await;
        let mut outcome = ConnectOutcome { streams: self.subscribers.len(), ..ConnectOutcome::default() };
        let mut last_ready_us = self.started_us;
        for subscriber in &self.subscribers {
            match &lock(&subscriber.record).state {
                StreamState::Ready { at_us } => {
                    outcome.ready += 1;
                    last_ready_us = last_ready_us.max(*at_us);
                }
                StreamState::Connecting => outcome.pending += 1,
                StreamState::Failed(reason) | StreamState::Ended(reason) => {
                    outcome.failed += 1;
                    *outcome.failure_reasons.entry(reason.clone()).or_default() += 1;
                }
            }
        }
        outcome.seconds = if all_settled {
            (last_ready_us - self.started_us) as f64 / 1e6
        } else {
            self.started.elapsed().as_secs_f64()
        };
        outcome
    }

    pub fn records(&self) -> impl Iterator<Item = &Arc<Mutex<StreamRecord>>> {
        self.subscribers.iter().map(|subscriber| &subscriber.record)
    }

    pub fn len(&self) -> usize {
        self.subscribers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.subscribers.is_empty()
    }

    /// Stops every task (their sockets close as they drop).
    pub fn close(&self) {
        for subscriber in &self.subscribers {
            subscriber.task.abort();
        }
    }
}

impl Drop for SubscriberSet {
    fn drop(&mut self) {
        self.close();
    }
}

/// The part of a subscriber's task that handles bytes: synchronous, so it can run inside
/// [`http::EventSocket::read_with`] on the thread's scratch buffer.
struct StreamReader {
    body: BodyDecoder,
    parser: SseParser,
    latencies: Vec<u64>,
    /// Set while handling the read in which the stream became ready.
    became_ready: bool,
}

impl StreamReader {
    fn on_bytes(
        &mut self,
        context: &RunContext,
        record: &Mutex<StreamRecord>,
        bytes: &[u8],
    ) -> Result<(), LoadError> {
        let now_us = context.clock.now_us();
        let ready_event = context.target.ready_event();
        {
            let mut record = lock(record);
            record.traffic.body_bytes += bytes.len() as u64;
            let Self { body, parser, latencies, became_ready } = self;
            let mut on_event = |event: &SseEvent<'_>| {
                handle_event(context, &mut record, event, now_us, latencies);
                if !record.is_ready() && ready_event == Some(event.name) {
                    record.state = StreamState::Ready { at_us: now_us };
                    *became_ready = true;
                }
            };
            body.feed(bytes, &mut |decoded| parser.feed(decoded, &mut on_event))?;
            // Merged while the record is still locked: the delivery that completes the drain
            // is counted above, and the scenario locks every record before it reads the
            // histogram, so it never reads it without this read's latencies.
            if !latencies.is_empty() {
                let mut histogram = lock(&context.latencies);
                for latency in latencies.drain(..) {
                    histogram.record(latency);
                }
            }
        }
        if self.body.is_done() {
            return Err(LoadError::Closed);
        }
        Ok(())
    }
}

fn handle_event(
    context: &RunContext,
    record: &mut StreamRecord,
    event: &SseEvent<'_>,
    now_us: u64,
    latencies: &mut Vec<u64>,
) {
    let target = context.target;
    record.traffic.events += 1;
    if event.name == b"message" {
        let seq = target.seq_of(event);
        match context.markers.find(event.data) {
            Some(marker) => {
                let arrival = record.deliveries.record(&marker, seq, now_us);
                if matches!(arrival, crate::ledger::Arrival::InOrder | crate::ledger::Arrival::OutOfOrder) {
                    latencies.push(now_us.saturating_sub(marker.sent_us));
                }
            }
            None => record.deliveries.record_unmarked(seq),
        }
    } else if let Some(change) = target.presence_change(event) {
        record.traffic.presence_events += 1;
        record.traffic.presence_bytes += event.wire_bytes as u64;
        if change == PresenceChange::Joined {
            record.traffic.new_user_events += 1;
        }
        record.presence.apply(change);
    }
}

async fn subscribe(
    context: Arc<RunContext>,
    index: usize,
    user: User,
    record: Arc<Mutex<StreamRecord>>,
    settled: Arc<Countdown>,
) {
    // The gate is never closed; without a permit the stream simply opens unthrottled.
    let mut permit: Option<OwnedSemaphorePermit> =
        Arc::clone(&context.connect_slots).acquire_owned().await.ok();
    let layout = &context.rooms;
    let rooms: Vec<String> =
        layout.subscriber_rooms(index).into_iter().map(|room| layout.name(room)).collect();
    let path = context.target.stream_path(&rooms, layout.has_rooms(), &user);
    let opened =
        http::open_stream(context.endpoint(index), StreamRequest { path_and_query: &path, cookie: None })
            .await;
    let opened = match opened {
        Ok(opened) => opened,
        Err(error) => {
            lock(&record).end(error.to_string());
            settled.tick();
            return;
        }
    };
    let mut settled = Some(settled);
    let mut reader = StreamReader {
        body: opened.body,
        parser: SseParser::default(),
        latencies: Vec::new(),
        became_ready: false,
    };
    if context.target.ready_event().is_none() {
        lock(&record).state = StreamState::Ready { at_us: context.clock.now_us() };
        reader.became_ready = true;
    }
    let mut outcome = reader.on_bytes(&context, &record, &opened.early_body);
    loop {
        if std::mem::take(&mut reader.became_ready) {
            permit.take();
            if let Some(settled) = settled.take() {
                settled.tick();
            }
        }
        if let Err(error) = outcome {
            lock(&record).end(error.to_string());
            break;
        }
        outcome = match opened.socket.read_with(|bytes| reader.on_bytes(&context, &record, bytes)).await {
            Ok(Some(result)) => result,
            Ok(None) => Err(LoadError::Closed),
            Err(error) => Err(LoadError::Io(error)),
        };
    }
    if let Some(settled) = settled.take() {
        settled.tick();
    }
}
