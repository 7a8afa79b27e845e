//! The shared message store: Redis, so that several instances behave as one server (one `seq`
//! sequence, one room, replay from any of them).
//!
//! **Layout.** Messages live in one Redis Stream, `<prefix>:messages`, each entry with id
//! `<seq>-0` and one field, `json`, holding the message exactly as [`ChatMessage`] serialises.
//! The last `seq` handed out is a counter, `<prefix>:seq`. It is never reset and must never be
//! deleted: retention trims old entries (`XADD … MAXLEN <retention>`), not the counter, so a
//! `seq` is never reused.
//!
//! **Appending.** A Lua script does `INCR` on the counter and `XADD` with that number as the id,
//! so every instance sharing the Redis draws from one sequence, and the number and the entry
//! appear together (Redis runs one script at a time, and a failed `XADD` gives the number back,
//! so there is no hole). `ts` is the appending instance's clock, formatted as the SQLite store
//! does: it is for display only (order is `seq`), and keeping it in Rust keeps one definition of
//! the format instead of date arithmetic in Lua; instances' clock skew only shifts what is shown.
//!
//! **Group commit and durability.** One writer task takes every append waiting (up to
//! [`MAX_BATCH`]) and sends them as one pipeline: one round trip. Redis is expected to run with
//! `appendonly yes` and `appendfsync always`; then it writes and fsyncs its AOF before it
//! answers, once for all the commands it read together, so a pipeline shares one fsync as a
//! SQLite transaction does. *Acknowledged* means exactly this: Redis answered the script, so
//! the entry and the counter are on Redis's disk and survive a `kill -9` of Redis or of us.
//! [`RedisStore::connect`] warns when the server is configured otherwise.
//!
//! **The feed.** Other instances append too, so `append` cannot feed the hub: a tailer task
//! reads the stream itself (`XREAD BLOCK … STREAMS <key> <last id>`, on its own connection, as
//! a blocking read would stall a shared one) and hands each batch to the [`MessageFeed`]. This
//! keeps order and loses nothing because of how the stream grows: ids only increase (`XADD`
//! refuses an id not above the stream's last one) and seqs have no holes, so at any moment the
//! stream holds one contiguous run of seqs, minus what retention trimmed from the front. "Every
//! entry after the last one I delivered" is therefore always the next contiguous run, and an
//! entry added later has a larger id than everything read so far, so the next read finds it.
//! The cursor (the last delivered `seq`) lives in this process, not in the connection: after a
//! connection loss or a Redis restart the tailer reconnects and reads on from the same id, and
//! the stream, unlike pub/sub, kept what was appended meanwhile. Only trimming can take an
//! unread entry away (a tailer behind by more than the retention); the tailer logs it, and the
//! hub's clients get `history-gap` when they replay past it. The feed is only ever called with
//! consecutive seqs, as the hub requires of one batch.
//!
//! `append` answers once Redis has answered *and* this instance's tailer has fed the message
//! (waiting at most [`FEED_PATIENCE`]: the message is durable either way), so a poster's own
//! instance has the message when the poster hears its `seq`, as with SQLite.
//!
//! **Failure.** Every Redis call is bounded by [`CALL_TIMEOUT`]; an unreachable or hung Redis
//! makes `append` return [`StoreError::Unavailable`] within a few seconds, never a hang, and
//! connections are re-established by themselves when Redis is back. A call that timed out may
//! still have been carried out (it reached Redis, the answer did not reach us): its caller was
//! told `Unavailable`, yet the message appears and is fed like any other. That is the one
//! ambiguity of any remote store; what was acknowledged is never lost.
//!
//! Redis Cluster is not supported: the script touches two keys that would need one slot.

use super::{MessageFeed, MessageStore, Replay, StoreError};
use app::protocol::{ChatMessage, MessageText, User, UserId, UserName};
use futures_util::future::BoxFuture;
use redis::{
    AsyncConnectionConfig, Client, Cmd, ErrorKind, RedisError, RedisResult, Script, ServerErrorKind, Value,
    aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection},
    streams::{StreamId, StreamRangeReply, StreamReadReply},
};
use serde::Serialize;
use std::{
    collections::HashMap,
    future::Future,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};
use tokio::{
    sync::{mpsc, oneshot, watch},
    task::JoinHandle,
    time::timeout,
};
use tokio_util::sync::CancellationToken;

/// Longest any one Redis call may take before the store gives up on it: the bound on how long
/// a post waits when Redis hangs.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest one attempt to open a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest a health check waits for `PONG`.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(1);
/// An append that waited this long for the writer (Redis slow or down, earlier batches timing
/// out) is refused without being sent, so that every caller hears within a few seconds.
const QUEUE_PATIENCE: Duration = Duration::from_secs(2);
/// Longest an append waits for this instance's tailer to feed it before answering anyway.
const FEED_PATIENCE: Duration = Duration::from_secs(1);
/// How long one `XREAD` waits for new entries before asking again.
const TAIL_BLOCK: Duration = Duration::from_secs(1);
/// Most entries one `XREAD` returns.
const TAIL_COUNT: usize = 1024;
/// First and longest pause between the tailer's reconnection attempts.
const RECONNECT_PAUSE: (Duration, Duration) = (Duration::from_millis(50), Duration::from_secs(1));
/// Most appends sent in one pipeline.
const MAX_BATCH: usize = 1024;
/// Appends that may wait for the writer.
const QUEUE_DEPTH: usize = 16 * 1024;
/// The stream entry's one field.
const FIELD: &str = "json";

/// Assigns the next `seq` and appends the entry, atomically for every instance.
/// `KEYS`: the stream, the counter. `ARGV`: the retention, the message's JSON without its `seq`
/// (an object whose fields follow `{`; the script puts `"seq":<n>,` in front of them, since the
/// number is only known here).
const APPEND_SCRIPT: &str = r#"
local seq = redis.call('INCR', KEYS[2])
local added = redis.pcall('XADD', KEYS[1], 'MAXLEN', ARGV[1], string.format('%d-0', seq),
    'json', string.format('{"seq":%d,', seq) .. string.sub(ARGV[2], 2))
if type(added) == 'table' and added.err then
    -- Nothing was appended: give the number back, so that seq has no hole.
    redis.call('DECR', KEYS[2])
    return added
end
return seq
"#;

/// A message as sent to the script: everything but the `seq`.
#[derive(Serialize)]
struct Unsequenced<'a> {
    id: &'a UserId,
    name: &'a UserName,
    message: &'a MessageText,
    ts: &'a str,
}

/// The Redis keys of one chat.
struct Keys {
    stream: String,
    counter: String,
}

impl Keys {
    fn new(prefix: &str) -> Self {
        Self { stream: format!("{prefix}:messages"), counter: format!("{prefix}:seq") }
    }
}

/// An append waiting for the writer, and where to send its outcome.
struct PendingAppend {
    author: User,
    text: MessageText,
    queued: Instant,
    reply: oneshot::Sender<Result<ChatMessage, StoreError>>,
}

type Command = super::Command<PendingAppend, oneshot::Sender<u64>>;

/// A message store in Redis, shared by every instance pointed at the same Redis and prefix.
pub struct RedisStore {
    commands: mpsc::Sender<Command>,
    closed: AtomicBool,
    /// Reads and health checks share the writer's connection: it is multiplexed, and it
    /// reconnects by itself (cloning it is shallow).
    conn: ConnectionManager,
    keys: Arc<Keys>,
    /// The newest `seq` this instance's tailer has handed to the feed.
    fed: watch::Receiver<u64>,
    stop_tailer: CancellationToken,
    /// Taken by `close`, which waits for the tailer to finish. A std mutex: held for a `take()`.
    tailer: Mutex<Option<JoinHandle<()>>>,
}

impl RedisStore {
    /// Connects to the Redis at `url` (`redis://host:port/db`), keeping messages under
    /// `key_prefix` and at most `retention` of them, and starts the writer and the tailer. The
    /// tailer feeds `feed` every message appended after the newest one present now, by any
    /// instance. Fails when Redis cannot be reached.
    pub async fn connect(
        url: &str,
        key_prefix: &str,
        retention: u64,
        feed: MessageFeed,
    ) -> Result<Self, StoreError> {
        Self::open(url, key_prefix, retention, feed, None).await
    }

    /// Like [`RedisStore::connect`], but the tailer feeds every retained message with
    /// `seq > after` first, then the new ones.
    pub async fn connect_after(
        url: &str,
        key_prefix: &str,
        retention: u64,
        feed: MessageFeed,
        after: u64,
    ) -> Result<Self, StoreError> {
        Self::open(url, key_prefix, retention, feed, Some(after)).await
    }

    async fn open(
        url: &str,
        key_prefix: &str,
        retention: u64,
        feed: MessageFeed,
        after: Option<u64>,
    ) -> Result<Self, StoreError> {
        // The URL may carry a password: it is never put in an error or a log line.
        let client =
            Client::open(url).map_err(|error| StoreError::Backend(format!("invalid Redis URL: {error}")))?;
        // Few and short reconnection retries: a call that finds Redis down fails fast (and within
        // CALL_TIMEOUT in any case), and the next call starts a new attempt, so appends work
        // again with the first call after Redis is back.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(CALL_TIMEOUT))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let mut conn =
            match timeout(CALL_TIMEOUT * 2, ConnectionManager::new_with_config(client.clone(), config)).await
            {
                Ok(Ok(conn)) => conn,
                Ok(Err(error)) => {
                    return Err(StoreError::Backend(format!("cannot connect to Redis: {error}")));
                }
                Err(_) => return Err(StoreError::Backend("cannot connect to Redis: no answer".into())),
            };
        let keys = Arc::new(Keys::new(key_prefix));
        let script = Script::new(APPEND_SCRIPT);
        call(script.load_async(&mut conn)).await?;
        warn_unless_durable(&mut conn).await;
        let start = match after {
            Some(after) => after,
            None => newest_seq(&mut conn, &keys.stream).await?,
        };

        let (commands, receiver) = mpsc::channel(QUEUE_DEPTH);
        let writer = Writer {
            conn: conn.clone(),
            script,
            keys: Arc::clone(&keys),
            retention: retention.max(1),
            highest_seq: start,
            reachable: true,
        };
        tokio::spawn(writer.run(receiver));

        let (fed_sender, fed) = watch::channel(start);
        let stop_tailer = CancellationToken::new();
        let tailer = Tailer {
            client,
            stream: keys.stream.clone(),
            last: start,
            feed,
            fed: fed_sender,
            stop: stop_tailer.clone(),
        };
        let tailer = tokio::spawn(tailer.run());
        Ok(Self {
            commands,
            closed: AtomicBool::new(false),
            conn,
            keys,
            fed,
            stop_tailer,
            tailer: Mutex::new(Some(tailer)),
        })
    }

    /// True when Redis answers a `PING` within [`HEALTH_TIMEOUT`]: what `/healthz` reports.
    pub async fn is_healthy(&self) -> bool {
        let mut conn = self.conn.clone();
        let ping = redis::cmd("PING");
        matches!(timeout(HEALTH_TIMEOUT, ping.query_async::<String>(&mut conn)).await, Ok(Ok(_)))
    }
}

impl Drop for RedisStore {
    fn drop(&mut self) {
        // The writer stops when its queue's sender (ours) is dropped; the tailer needs telling.
        self.stop_tailer.cancel();
    }
}

/// Locks a mutex around plain data, ignoring poisoning (nothing half-updated can be left).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs one Redis call within [`CALL_TIMEOUT`].
async fn call<T>(request: impl Future<Output = RedisResult<T>>) -> Result<T, StoreError> {
    match timeout(CALL_TIMEOUT, request).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(store_error(&error)),
        Err(_) => Err(StoreError::Unavailable),
    }
}

/// `Unavailable` for what passes by itself (Redis down, unreachable, loading its AOF after a
/// restart, out of memory, unable to persist): the caller should retry later. `Backend` for
/// what will not (a bug, corrupt data).
fn store_error(error: &RedisError) -> StoreError {
    let transient_server_error = matches!(
        error.kind(),
        ErrorKind::Server(
            ServerErrorKind::BusyLoading
                | ServerErrorKind::TryAgain
                | ServerErrorKind::MasterDown
                | ServerErrorKind::ClusterDown
                | ServerErrorKind::ReadOnly
        )
    ) || matches!(error.code(), Some("MISCONF" | "OOM" | "BUSY" | "NOREPLICAS"));
    if error.is_io_error()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_timeout()
        || error.is_unrecoverable_error()
        || transient_server_error
    {
        StoreError::Unavailable
    } else {
        StoreError::Backend(error.to_string())
    }
}

/// The "acknowledged means on disk" promise rests on Redis's configuration: say so when it does
/// not hold. Managed Redis often disables `CONFIG`; then nothing can be checked.
async fn warn_unless_durable(conn: &mut ConnectionManager) {
    let mut get = redis::cmd("CONFIG");
    get.arg("GET").arg("append*");
    match call(get.query_async::<HashMap<String, String>>(conn)).await {
        Ok(config) => {
            let setting = |name: &str| config.get(name).map_or("unknown", String::as_str).to_owned();
            let (appendonly, appendfsync) = (setting("appendonly"), setting("appendfsync"));
            if appendonly != "yes" || appendfsync != "always" {
                tracing::warn!(
                    %appendonly,
                    %appendfsync,
                    "Redis is not configured with `appendonly yes` and `appendfsync always`: \
                     acknowledged messages can be lost if Redis crashes"
                );
            }
        }
        Err(error) => {
            tracing::info!(%error, "cannot read Redis's persistence settings; assuming AOF with fsync always");
        }
    }
}

/// The `seq` of the newest retained entry, or 0 when there is none.
async fn newest_seq(conn: &mut ConnectionManager, stream: &str) -> Result<u64, StoreError> {
    let newest: StreamRangeReply =
        call(redis::cmd("XREVRANGE").arg(stream).arg("+").arg("-").arg("COUNT").arg(1).query_async(conn))
            .await?;
    match newest.ids.first() {
        Some(entry) => entry_seq(&entry.id).ok_or_else(|| corrupt(&entry.id, "its id is not <seq>-0")),
        None => Ok(0),
    }
}

/// The stream id of the entry for `seq`.
fn entry_id(seq: u64) -> String {
    format!("{seq}-0")
}

/// The `seq` in an entry id `<seq>-0`.
fn entry_seq(id: &str) -> Option<u64> {
    match id.split_once('-') {
        Some((seq, "0")) => seq.parse().ok(),
        _ => None,
    }
}

/// The same error again, for every caller of a batch that failed as a whole (`StoreError` is
/// not `Clone`).
fn same_error(error: &StoreError) -> StoreError {
    match error {
        StoreError::Unavailable => StoreError::Unavailable,
        StoreError::Backend(reason) => StoreError::Backend(reason.clone()),
    }
}

fn corrupt(id: &str, why: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("stream entry {id} is corrupt: {why}"))
}

/// Parses the entries of an `XRANGE` or `XREVRANGE` reply, in its order.
fn parse_entries(reply: StreamRangeReply) -> Result<Vec<ChatMessage>, StoreError> {
    reply.ids.iter().map(entry_to_message).collect()
}

/// Parses an entry. Entries were validated when written; one that no longer parses (or whose
/// JSON disagrees with its id) is corruption, reported as an error instead of a panic.
fn entry_to_message(entry: &StreamId) -> Result<ChatMessage, StoreError> {
    let seq = entry_seq(&entry.id).ok_or_else(|| corrupt(&entry.id, "its id is not <seq>-0"))?;
    let Some(Value::BulkString(json)) = entry.map.get(FIELD) else {
        return Err(corrupt(&entry.id, format_args!("it has no `{FIELD}` field")));
    };
    let message: ChatMessage = serde_json::from_slice(json).map_err(|error| corrupt(&entry.id, error))?;
    if message.seq != seq {
        return Err(corrupt(&entry.id, format_args!("its JSON says seq {}", message.seq)));
    }
    Ok(message)
}

struct Writer {
    conn: ConnectionManager,
    script: Script,
    keys: Arc<Keys>,
    retention: u64,
    /// The highest `seq` seen (from the tailer's start, then from our appends): a new one at or
    /// below it means Redis lost data.
    highest_seq: u64,
    /// Whether the last batch reached Redis, so that an outage is logged once, not per batch.
    reachable: bool,
}

impl Writer {
    async fn run(mut self, mut receiver: mpsc::Receiver<Command>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        let mut written = 0;
        while let Some(first) = receiver.recv().await {
            let close = super::gather(first, &mut receiver, &mut batch, MAX_BATCH);
            if !batch.is_empty() {
                written = written.max(self.commit(&mut batch).await);
            }
            if let Some(done) = close {
                let _ = done.send(written);
                return;
            }
        }
    }

    /// The script call for one message.
    fn append_command(&self, json: &str) -> Cmd {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(self.script.get_hash())
            .arg(2)
            .arg(&self.keys.stream)
            .arg(&self.keys.counter)
            .arg(self.retention)
            .arg(json);
        cmd
    }

    /// Sends the batch in one pipeline and answers every caller. Returns the highest `seq`
    /// written (0 when none was).
    async fn commit(&mut self, batch: &mut Vec<PendingAppend>) -> u64 {
        let ts = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        let mut sending = Vec::with_capacity(batch.len());
        for append in batch.drain(..) {
            if append.queued.elapsed() > QUEUE_PATIENCE {
                let _ = append.reply.send(Err(StoreError::Unavailable));
                continue;
            }
            let unsequenced = Unsequenced {
                id: &append.author.id,
                name: &append.author.name,
                message: &append.text,
                ts: &ts,
            };
            match serde_json::to_string(&unsequenced) {
                Ok(json) => sending.push((append, json)),
                Err(error) => {
                    let _ = append.reply.send(Err(StoreError::Backend(error.to_string())));
                }
            }
        }
        if sending.is_empty() {
            return 0;
        }

        let outcomes = self.send(&sending).await;
        let mut highest = 0;
        let mut unavailable = 0;
        for ((append, _), outcome) in sending.into_iter().zip(outcomes) {
            let PendingAppend { author, text, reply, .. } = append;
            let outcome = outcome.map(|seq| {
                highest = highest.max(seq);
                ChatMessage { id: author.id, name: author.name, message: text, seq, ts: ts.clone() }
            });
            if matches!(outcome, Err(StoreError::Unavailable)) {
                unavailable += 1;
            }
            let _ = reply.send(outcome);
        }

        if highest > 0 && !self.reachable {
            tracing::info!("Redis is reachable again: appends resume");
        }
        if highest == 0 && unavailable > 0 && self.reachable {
            tracing::warn!("Redis is unreachable: appends are refused until it is back");
        }
        self.reachable = highest > 0 || unavailable == 0;
        if highest > 0 && highest <= self.highest_seq {
            tracing::error!(
                seq = highest,
                seen = self.highest_seq,
                "Redis handed out a seq at or below one seen before: it lost data (is AOF on?)"
            );
        }
        self.highest_seq = self.highest_seq.max(highest);
        highest
    }

    /// One pipeline of script calls, plus a second one for those Redis did not know the script
    /// for (its script cache is empty after a restart). `NOSCRIPT` means the call did not run,
    /// so resending it cannot append twice.
    async fn send(&mut self, sending: &[(PendingAppend, String)]) -> Vec<Result<u64, StoreError>> {
        let mut outcomes: Vec<Option<Result<u64, StoreError>>> = sending.iter().map(|_| None).collect();
        let mut todo: Vec<usize> = (0..sending.len()).collect();
        for attempt in 0..2 {
            let mut pipe = redis::pipe();
            pipe.ignore_errors();
            for &i in &todo {
                pipe.add_command(self.append_command(&sending[i].1));
            }
            let results = match call(pipe.query_async::<Vec<RedisResult<u64>>>(&mut self.conn)).await {
                Ok(results) => results,
                Err(error) => {
                    for &i in &todo {
                        outcomes[i] = Some(Err(same_error(&error)));
                    }
                    break;
                }
            };
            let mut again = Vec::new();
            for (&i, result) in todo.iter().zip(results) {
                match result {
                    Err(error)
                        if attempt == 0 && error.kind() == ErrorKind::Server(ServerErrorKind::NoScript) =>
                    {
                        again.push(i);
                    }
                    Err(error) => outcomes[i] = Some(Err(store_error(&error))),
                    Ok(seq) => outcomes[i] = Some(Ok(seq)),
                }
            }
            if again.is_empty() {
                break;
            }
            tracing::info!("Redis does not know the append script (it restarted?): loading it again");
            if let Err(error) = call(self.script.load_async(&mut self.conn)).await {
                for &i in &again {
                    outcomes[i] = Some(Err(same_error(&error)));
                }
                break;
            }
            todo = again;
        }
        outcomes
            .into_iter()
            .map(|outcome| {
                outcome.unwrap_or_else(|| {
                    Err(StoreError::Backend("Redis sent fewer replies than commands".into()))
                })
            })
            .collect()
    }
}

/// Reads the stream from a cursor and feeds every entry after it, once, in order.
struct Tailer {
    client: Client,
    stream: String,
    /// The `seq` of the last entry delivered (or skipped): the cursor.
    last: u64,
    feed: MessageFeed,
    fed: watch::Sender<u64>,
    stop: CancellationToken,
}

impl Tailer {
    async fn run(mut self) {
        let mut conn: Option<MultiplexedConnection> = None;
        let mut pause = RECONNECT_PAUSE.0;
        let mut reachable = true;
        loop {
            let failure = match conn.as_mut() {
                None => match self.connect().await {
                    Ok(connected) => {
                        conn = Some(connected);
                        if !reachable {
                            tracing::info!(after = self.last, "the message feed is reading from Redis again");
                            reachable = true;
                        }
                        pause = RECONNECT_PAUSE.0;
                        continue;
                    }
                    Err(failure) => failure,
                },
                Some(connected) => {
                    let mut read = redis::cmd("XREAD");
                    read.arg("COUNT")
                        .arg(TAIL_COUNT)
                        .arg("BLOCK")
                        .arg(TAIL_BLOCK.as_millis() as u64)
                        .arg("STREAMS")
                        .arg(&self.stream)
                        .arg(entry_id(self.last));
                    let read = read.query_async::<Option<StreamReadReply>>(connected);
                    let reply = tokio::select! {
                        () = self.stop.cancelled() => return,
                        reply = timeout(TAIL_BLOCK + CALL_TIMEOUT, read) => reply,
                    };
                    match reply {
                        Ok(Ok(reply)) => {
                            for key in reply.into_iter().flat_map(|reply| reply.keys) {
                                self.deliver(key.ids);
                            }
                            continue;
                        }
                        Ok(Err(error)) => error.to_string(),
                        Err(_) => "no answer".to_owned(),
                    }
                }
            };
            // A fresh connection next time: the old one may be dead, or still blocked server-side.
            conn = None;
            if reachable {
                tracing::warn!(error = %failure, after = self.last, "the message feed lost Redis; reconnecting");
                reachable = false;
            }
            tokio::select! {
                () = self.stop.cancelled() => return,
                () = tokio::time::sleep(pause) => {}
            }
            pause = (pause * 2).min(RECONNECT_PAUSE.1);
        }
    }

    async fn connect(&self) -> Result<MultiplexedConnection, String> {
        // Blocked reads wait TAIL_BLOCK before answering: the response timeout allows for it.
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(TAIL_BLOCK + CALL_TIMEOUT));
        tokio::select! {
            () = self.stop.cancelled() => Err("stopping".to_owned()),
            connected = timeout(CALL_TIMEOUT, self.client.get_multiplexed_async_connection_with_config(&config)) => {
                match connected {
                    Ok(Ok(conn)) => Ok(conn),
                    Ok(Err(error)) => Err(error.to_string()),
                    Err(_) => Err("no answer".to_owned()),
                }
            }
        }
    }

    /// Feeds the entries after the cursor, each run of consecutive seqs as one batch.
    fn deliver(&mut self, entries: Vec<StreamId>) {
        let mut run: Vec<ChatMessage> = Vec::with_capacity(entries.len());
        for entry in &entries {
            let Some(seq) = entry_seq(&entry.id) else {
                tracing::error!(id = %entry.id, "skipping a stream entry whose id is not <seq>-0");
                continue;
            };
            if seq <= self.last {
                continue;
            }
            if seq != self.last + 1 {
                self.flush(&mut run);
                tracing::warn!(
                    from = self.last + 1,
                    to = seq - 1,
                    "messages were trimmed from Redis before this instance read them; \
                     clients replaying past them get a history-gap"
                );
            }
            match entry_to_message(entry) {
                Ok(message) => run.push(message),
                Err(error) => {
                    self.flush(&mut run);
                    tracing::error!(%error, "skipping an unreadable message");
                }
            }
            self.last = seq;
        }
        self.flush(&mut run);
        self.fed.send_replace(self.last);
    }

    fn flush(&self, run: &mut Vec<ChatMessage>) {
        if !run.is_empty() {
            (self.feed)(run, &mut || {});
            run.clear();
        }
    }
}

impl MessageStore for RedisStore {
    fn append(&self, author: User, text: MessageText) -> BoxFuture<'_, Result<ChatMessage, StoreError>> {
        Box::pin(async move {
            if self.closed.load(Ordering::Acquire) {
                return Err(StoreError::Unavailable);
            }
            let (reply, answer) = oneshot::channel();
            let append = PendingAppend { author, text, queued: Instant::now(), reply };
            match timeout(QUEUE_PATIENCE, self.commands.send(Command::Job(append))).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return Err(StoreError::Unavailable),
            }
            // A dropped reply means the writer stopped before this append: not written.
            let message = answer.await.map_err(|_| StoreError::Unavailable)??;
            // Durable already; waiting lets this instance's hub have it before the poster hears.
            let mut fed = self.fed.clone();
            if timeout(FEED_PATIENCE, fed.wait_for(|&fed| fed >= message.seq)).await.is_err() {
                tracing::debug!(seq = message.seq, "answering before the feed delivered the message");
            }
            Ok(message)
        })
    }

    fn read_after(&self, after: u64, limit: usize) -> BoxFuture<'_, Result<Replay, StoreError>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            // One transaction, so that the oldest retained and the messages agree.
            let mut pipe = redis::pipe();
            pipe.atomic();
            pipe.cmd("XRANGE").arg(&self.keys.stream).arg("-").arg("+").arg("COUNT").arg(1);
            if limit > 0 {
                pipe.cmd("XRANGE")
                    .arg(&self.keys.stream)
                    .arg(format!("({}", entry_id(after)))
                    .arg("+")
                    .arg("COUNT")
                    .arg(limit);
            }
            let mut replies: Vec<StreamRangeReply> = call(pipe.query_async(&mut conn)).await?;
            let messages = match replies.len() {
                2 => parse_entries(replies.remove(1))?,
                _ => Vec::new(),
            };
            let oldest_retained = match replies.first().and_then(|oldest| oldest.ids.first()) {
                Some(entry) => {
                    Some(entry_seq(&entry.id).ok_or_else(|| corrupt(&entry.id, "its id is not <seq>-0"))?)
                }
                None => None,
            };
            Ok(Replay { messages, oldest_retained })
        })
    }

    fn read_last(&self, n: usize) -> BoxFuture<'_, Result<Vec<ChatMessage>, StoreError>> {
        Box::pin(async move {
            if n == 0 {
                return Ok(Vec::new());
            }
            let mut conn = self.conn.clone();
            let newest: StreamRangeReply = call(
                redis::cmd("XREVRANGE")
                    .arg(&self.keys.stream)
                    .arg("+")
                    .arg("-")
                    .arg("COUNT")
                    .arg(n)
                    .query_async(&mut conn),
            )
            .await?;
            let mut messages = parse_entries(newest)?;
            messages.reverse();
            Ok(messages)
        })
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let written = super::close_writer(&self.closed, &self.commands).await.unwrap_or(0);
            // Let the feed catch up with what this instance wrote, so that its hub has every
            // message it acknowledged, then stop the tailer.
            let mut fed = self.fed.clone();
            let _ = timeout(FEED_PATIENCE, fed.wait_for(|&fed| fed >= written)).await;
            self.stop_tailer.cancel();
            let tailer = lock(&self.tailer).take();
            if let Some(tailer) = tailer {
                let _ = tailer.await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_ids_carry_the_seq() {
        assert_eq!(entry_id(42), "42-0");
        assert_eq!(entry_seq("42-0"), Some(42));
        assert_eq!(entry_seq("42-1"), None);
        assert_eq!(entry_seq("1700000000000-0x"), None);
        assert_eq!(entry_seq("nonsense"), None);
    }

    #[test]
    fn the_scripts_json_is_a_chat_message_once_the_seq_is_put_in_front() {
        let id = UserId::parse("ann").unwrap();
        let name = UserName::parse("Ann").unwrap();
        let message = MessageText::parse("hi \"there\"").unwrap();
        let json = serde_json::to_string(&Unsequenced {
            id: &id,
            name: &name,
            message: &message,
            ts: "2026-01-01T00:00:00.000Z",
        })
        .unwrap();
        // What the script does.
        let stored = format!("{{\"seq\":7,{}", &json[1..]);
        let parsed: ChatMessage = serde_json::from_str(&stored).unwrap();
        assert_eq!(parsed, ChatMessage { id, name, message, seq: 7, ts: "2026-01-01T00:00:00.000Z".into() });
    }

    #[test]
    fn passing_troubles_are_unavailable_and_the_rest_are_backend_errors() {
        let refused = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(matches!(store_error(&refused), StoreError::Unavailable));
        let loading = RedisError::from((ErrorKind::Server(ServerErrorKind::BusyLoading), "loading"));
        assert!(matches!(store_error(&loading), StoreError::Unavailable));
        let cannot_persist =
            redis::make_extension_error("MISCONF".into(), Some("cannot write the AOF".into()));
        assert!(matches!(store_error(&cannot_persist), StoreError::Unavailable));
        let failed = RedisError::from((ErrorKind::Server(ServerErrorKind::ResponseError), "script failed"));
        assert!(matches!(store_error(&failed), StoreError::Backend(_)));
    }
}
