//! The shared message store: Redis, so that several instances behave as one server (one `seq`
//! sequence for every room, replay from any of them).
//!
//! **Layout.** Every key starts with the configured prefix:
//! - `<prefix>:seq`, the counter: the last `seq` handed out, for every room. It is never reset
//!   and must never be deleted: retention trims entries, not the counter, so a `seq` is never
//!   reused.
//! - `<prefix>:room:<room>`, one Redis Stream per room: its history. Each entry has id
//!   `<seq>-0` and one field, `json`, holding the message exactly as [`ChatMessage`] serialises
//!   (with its `room`). It keeps exactly the room's `retention` newest entries. Room names are
//!   `[a-z0-9_-]` ([`RoomName`]), so they go into keys as they are.
//! - `<prefix>:horizons`, a hash: room → its horizon, the `seq` of its newest trimmed entry
//!   (no field: the room lost nothing). Seqs of one room skip the other rooms' messages, so the
//!   horizon cannot be read off the stream; it is written when entries are trimmed.
//! - `<prefix>:rooms`, a hash: room → its newest `seq`, every room that has messages (a room
//!   that had one always keeps at least one).
//! - `<prefix>:messages`, the feed: every room's messages in one stream, same ids and JSON, in
//!   `seq` order. It is what instances tail to fan out (below), not the history: it is bounded
//!   by the retention too (`MAXLEN`), so it holds the newest messages of all rooms together.
//! - `<prefix>:layout`, the layout's version, `2`. Version 1 had one room and only the feed,
//!   which was also the history, holding messages without `room`. [`RedisStore::connect`]
//!   upgrades such data in one script ([`MIGRATE_SCRIPT`]) that checks the marker itself, so
//!   instances that start together migrate once: the newest `retention` entries of the feed
//!   are copied as they are into `general`'s stream (JSON without `room` decodes as
//!   `general`), and `general`'s horizon is the seq before the oldest copied entry, as
//!   version 1's rule was that whatever came before the oldest retained entry is lost. Stop
//!   every version 1 instance first: one still appending after the upgrade would write to the
//!   feed only.
//!
//! **Appending.** A Lua script ([`APPEND_SCRIPT`]) does `INCR` on the counter and `XADD` with
//! that number as the id to the room's stream and to the feed, trims the room's stream to the
//! retention (recording the newest trimmed `seq` as the room's horizon) and records the room's
//! newest `seq`. Redis runs one script at a time, so every instance draws from one sequence and
//! the number, the entries, the horizon and the room list change together. A failed `XADD`
//! gives the number back and leaves neither entry, so there is no hole; the script checks the
//! keys' types before it writes anything, as no later step may fail halfway. `ts` is the
//! appending instance's clock, formatted as the SQLite store does: it is for display only
//! (order is `seq`), and keeping it in Rust keeps one definition of the format instead of date
//! arithmetic in Lua; instances' clock skew only shifts what is shown.
//!
//! **Group commit and durability.** One writer task takes every append waiting (up to
//! [`MAX_BATCH`]) and sends them as one pipeline: one round trip. Redis is expected to run with
//! `appendonly yes` and `appendfsync always`; then it writes and fsyncs its AOF before it
//! answers, once for all the commands it read together, so a pipeline shares one fsync as a
//! SQLite transaction does. *Acknowledged* means exactly this: Redis answered the script, so
//! the entries and the counter are on Redis's disk and survive a `kill -9` of Redis or of us.
//! [`RedisStore::connect`] warns when the server is configured otherwise.
//!
//! **The feed.** Other instances append too, so `append` cannot feed the hub: a tailer task
//! reads the feed stream itself (`XREAD BLOCK … STREAMS <feed> <last id>`, on its own
//! connection, as a blocking read would stall a shared one) and hands each batch to the
//! [`MessageFeed`]. One stream for all rooms is what keeps one `seq` order across rooms and
//! one read per instance, however many rooms there are; each message says its room. This
//! keeps order and loses nothing because of how the stream grows: ids only increase (`XADD`
//! refuses an id not above the stream's last one) and seqs have no holes, so at any moment the
//! feed holds one contiguous run of seqs, minus what its bound trimmed from the front. "Every
//! entry after the last one I delivered" is therefore always the next contiguous run, and an
//! entry added later has a larger id than everything read so far, so the next read finds it.
//! The cursor (the last delivered `seq`) lives in this process, not in the connection: after a
//! connection loss or a Redis restart the tailer reconnects and reads on from the same id, and
//! the stream, unlike pub/sub, kept what was appended meanwhile. Only trimming can take an
//! unread entry away (a tailer behind by more than the retention, counting every room); the
//! tailer logs it, and replay reads the rooms' streams, which may still hold it (or tell their
//! horizon). The feed is only ever called with consecutive seqs, as the hub requires of one
//! batch.
//!
//! **Reading.** Every read is of one room's stream, by id range: `read_after` takes the room's
//! entries after `<after>-0` together with its horizon, in one `MULTI` so that they agree;
//! `read_last` and `read_before` read backwards (`XREVRANGE`), the latter one entry more than
//! the page, which tells whether older ones exist. `rooms` is the rooms hash.
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
//! Redis Cluster is not supported: the scripts touch several keys that would need one slot.

use super::{MessageFeed, MessageStore, Page, Replay, RoomHead, StoreError};
use app::protocol::{ChatMessage, MessageText, RoomName, User, UserId, UserName};
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

/// The layout version [`MIGRATE_SCRIPT`] upgrades to (see the module comment).
const LAYOUT: &str = "2";

/// Assigns the next `seq` and appends the message to its room and to the feed, atomically for
/// every instance.
/// `KEYS`: the feed, the counter, the room's stream, the horizons, the rooms.
/// `ARGV`: the retention, the message's JSON without its `seq` (an object whose fields follow
/// `{`; the script puts `"seq":<n>,` in front of them, since the number is only known here),
/// the room.
const APPEND_SCRIPT: &str = r#"
-- Scripts are not rolled back: check what could fail before writing anything.
for i, kind in pairs({[1] = 'stream', [3] = 'stream', [4] = 'hash', [5] = 'hash'}) do
    local found = redis.call('TYPE', KEYS[i]).ok
    if found ~= 'none' and found ~= kind then
        return redis.error_reply('ERR ' .. KEYS[i] .. ' holds a ' .. found .. ', not a ' .. kind)
    end
end
local seq = redis.call('INCR', KEYS[2])
local id = string.format('%d-0', seq)
local json = string.format('{"seq":%d,', seq) .. string.sub(ARGV[2], 2)
-- An XADD fails only when its id is not above the stream's last one (the counter went back).
-- Then nothing of the message stays and the number is given back, so that seq has no hole.
local added = redis.pcall('XADD', KEYS[3], id, 'json', json)
if type(added) == 'table' and added.err then
    redis.call('DECR', KEYS[2])
    return added
end
added = redis.pcall('XADD', KEYS[1], 'MAXLEN', ARGV[1], id, 'json', json)
if type(added) == 'table' and added.err then
    redis.call('XDEL', KEYS[3], id)
    redis.call('DECR', KEYS[2])
    return added
end
-- Exactly the retention, and the horizon is the newest entry trimmed. Usually one entry goes;
-- more after the retention was lowered.
local excess = redis.call('XLEN', KEYS[3]) - tonumber(ARGV[1])
if excess > 0 then
    local trimmed = redis.call('XRANGE', KEYS[3], '-', '+', 'COUNT', excess)
    redis.call('HSET', KEYS[4], ARGV[3], string.match(trimmed[#trimmed][1], '^%d+'))
    redis.call('XTRIM', KEYS[3], 'MAXLEN', ARGV[1])
end
redis.call('HSET', KEYS[5], ARGV[3], string.format('%d', seq))
return seq
"#;

/// Upgrades version 1's layout (one room, the feed as its history) to this one, once: the
/// newest `retention` entries of the feed become `general`'s history (see the module comment).
/// Returns the number of entries copied, or -1 when the layout was already this one.
/// `KEYS`: the layout marker, the feed, `general`'s stream, the horizons, the rooms.
/// `ARGV`: the layout version, the retention, `general`.
const MIGRATE_SCRIPT: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return -1
end
local function seq_of(id)
    return tonumber(string.match(id, '^%d+'))
end
local copied = 0
-- A rooms hash means the data is already in this layout (only the marker was lost): copying
-- the feed, which holds every room, into general would be wrong.
if redis.call('EXISTS', KEYS[5]) == 0 then
    local newest = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', ARGV[2])
    if #newest > 0 then
        -- Entries general already has (from a copy cut short by an error) are not copied again.
        local have = 0
        local last = redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', 1)
        if #last > 0 then
            have = seq_of(last[1][1])
        end
        for i = #newest, 1, -1 do
            if seq_of(newest[i][1]) > have then
                redis.call('XADD', KEYS[3], newest[i][1], unpack(newest[i][2]))
                copied = copied + 1
            end
        end
        -- Version 1's feed held consecutive seqs: the one before the oldest copied was lost.
        local oldest = seq_of(newest[#newest][1])
        if oldest > 1 then
            redis.call('HSET', KEYS[4], ARGV[3], string.format('%d', oldest - 1))
        end
        redis.call('HSET', KEYS[5], ARGV[3], string.format('%d', seq_of(newest[1][1])))
    end
end
redis.call('SET', KEYS[1], ARGV[1])
return copied
"#;

/// A message as sent to the script: everything but the `seq`.
#[derive(Serialize)]
struct Unsequenced<'a> {
    id: &'a UserId,
    name: &'a UserName,
    message: &'a MessageText,
    ts: &'a str,
    room: &'a RoomName,
}

/// The Redis keys of one chat (see the module comment).
struct Keys {
    prefix: String,
    feed: String,
    counter: String,
    horizons: String,
    rooms: String,
    layout: String,
}

impl Keys {
    fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
            feed: format!("{prefix}:messages"),
            counter: format!("{prefix}:seq"),
            horizons: format!("{prefix}:horizons"),
            rooms: format!("{prefix}:rooms"),
            layout: format!("{prefix}:layout"),
        }
    }

    /// The stream of `room`'s history.
    fn room(&self, room: &RoomName) -> String {
        format!("{}:room:{room}", self.prefix)
    }
}

/// An append waiting for the writer, and where to send its outcome.
struct PendingAppend {
    author: User,
    room: RoomName,
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
    /// `key_prefix` and at most `retention` of them per room, upgrades version 1's layout if
    /// that is what it finds, and starts the writer and the tailer. The tailer feeds `feed`
    /// every message appended after the newest one present now, by any instance, in any room.
    /// Fails when Redis cannot be reached.
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
        let retention = retention.max(1);
        let script = Script::new(APPEND_SCRIPT);
        call(script.load_async(&mut conn)).await?;
        warn_unless_durable(&mut conn).await;
        migrate(&mut conn, &keys, retention).await?;
        let start = match after {
            Some(after) => after,
            None => newest_seq(&mut conn, &keys.feed).await?,
        };

        let (commands, receiver) = mpsc::channel(QUEUE_DEPTH);
        let writer = Writer {
            conn: conn.clone(),
            script,
            keys: Arc::clone(&keys),
            retention,
            highest_seq: start,
            reachable: true,
        };
        tokio::spawn(writer.run(receiver));

        let (fed_sender, fed) = watch::channel(start);
        let stop_tailer = CancellationToken::new();
        let tailer = Tailer {
            client,
            stream: keys.feed.clone(),
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

/// Upgrades version 1's layout, unless the marker says it is done (see the module comment).
/// The script checks the marker itself, so instances starting together migrate once.
async fn migrate(conn: &mut ConnectionManager, keys: &Keys, retention: u64) -> Result<(), StoreError> {
    let general = RoomName::general();
    let script = Script::new(MIGRATE_SCRIPT);
    let mut migration = script.prepare_invoke();
    migration
        .key(&keys.layout)
        .key(&keys.feed)
        .key(keys.room(&general))
        .key(&keys.horizons)
        .key(&keys.rooms)
        .arg(LAYOUT)
        .arg(retention)
        .arg(general.as_str());
    let copied: i64 = call(migration.invoke_async(conn)).await?;
    match copied {
        1.. => tracing::info!(
            copied,
            "upgraded the Redis layout to version {LAYOUT}: the one-room history is now `general`'s"
        ),
        0 => tracing::debug!("marked the Redis layout as version {LAYOUT}"),
        _ => {}
    }
    Ok(())
}

/// The `seq` of the newest entry of a stream, or 0 when there is none.
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

/// The newest `count` entries of `stream` up to `end` (an `XREVRANGE` end: `+`, or an id,
/// `(` for exclusive), newest first.
async fn newest_before(
    conn: &mut ConnectionManager,
    stream: &str,
    end: &str,
    count: usize,
) -> Result<Vec<ChatMessage>, StoreError> {
    let newest: StreamRangeReply =
        call(redis::cmd("XREVRANGE").arg(stream).arg(end).arg("-").arg("COUNT").arg(count).query_async(conn))
            .await?;
    parse_entries(newest)
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
    fn append_command(&self, room: &RoomName, json: &str) -> Cmd {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(self.script.get_hash())
            .arg(5)
            .arg(&self.keys.feed)
            .arg(&self.keys.counter)
            .arg(self.keys.room(room))
            .arg(&self.keys.horizons)
            .arg(&self.keys.rooms)
            .arg(self.retention)
            .arg(json)
            .arg(room.as_str());
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
                room: &append.room,
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
            let PendingAppend { author, room, text, reply, .. } = append;
            let outcome = outcome.map(|seq| {
                highest = highest.max(seq);
                ChatMessage { id: author.id, name: author.name, message: text, seq, ts: ts.clone(), room }
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
                let (append, json) = &sending[i];
                pipe.add_command(self.append_command(&append.room, json));
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
    fn append(
        &self,
        author: User,
        room: RoomName,
        text: MessageText,
    ) -> BoxFuture<'_, Result<ChatMessage, StoreError>> {
        Box::pin(async move {
            if self.closed.load(Ordering::Acquire) {
                return Err(StoreError::Unavailable);
            }
            let (reply, answer) = oneshot::channel();
            let append = PendingAppend { author, room, text, queued: Instant::now(), reply };
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

    fn read_after<'a>(
        &'a self,
        room: &'a RoomName,
        after: u64,
        limit: usize,
    ) -> BoxFuture<'a, Result<Replay, StoreError>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            // One transaction, so that the horizon and the messages agree. An exclusive start
            // (`(<after>-0`) is the entry after `after`, with no `after + 1` to overflow.
            let mut pipe = redis::pipe();
            pipe.atomic();
            pipe.cmd("HGET").arg(&self.keys.horizons).arg(room.as_str());
            if limit == 0 {
                let (horizon,): (Option<u64>,) = call(pipe.query_async(&mut conn)).await?;
                return Ok(Replay { messages: Vec::new(), horizon: horizon.unwrap_or(0) });
            }
            pipe.cmd("XRANGE")
                .arg(self.keys.room(room))
                .arg(format!("({}", entry_id(after)))
                .arg("+")
                .arg("COUNT")
                .arg(limit);
            let (horizon, entries): (Option<u64>, StreamRangeReply) =
                call(pipe.query_async(&mut conn)).await?;
            Ok(Replay { messages: parse_entries(entries)?, horizon: horizon.unwrap_or(0) })
        })
    }

    fn read_last<'a>(
        &'a self,
        room: &'a RoomName,
        n: usize,
    ) -> BoxFuture<'a, Result<Vec<ChatMessage>, StoreError>> {
        Box::pin(async move {
            if n == 0 {
                return Ok(Vec::new());
            }
            let mut conn = self.conn.clone();
            let mut newest = newest_before(&mut conn, &self.keys.room(room), "+", n).await?;
            newest.reverse();
            Ok(newest)
        })
    }

    fn read_before<'a>(
        &'a self,
        room: &'a RoomName,
        before: Option<u64>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Page, StoreError>> {
        Box::pin(async move {
            // An exclusive end (`(<before>-0`): seqs below `before`. None are below 1.
            let end = match before {
                Some(0 | 1) => return Ok(Page { messages: Vec::new(), more: false }),
                Some(before) => format!("({}", entry_id(before)),
                None => "+".to_owned(),
            };
            let mut conn = self.conn.clone();
            // One more than asked for tells whether older ones exist, in the same read.
            let mut messages =
                newest_before(&mut conn, &self.keys.room(room), &end, limit.saturating_add(1)).await?;
            let more = messages.len() > limit;
            messages.truncate(limit);
            messages.reverse();
            Ok(Page { messages, more })
        })
    }

    fn rooms(&self) -> BoxFuture<'_, Result<Vec<RoomHead>, StoreError>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let rooms: Vec<(String, String)> =
                call(redis::cmd("HGETALL").arg(&self.keys.rooms).query_async(&mut conn)).await?;
            // A field nobody could have written (not a room name, not a seq) is skipped, so
            // one bad field does not hide every room.
            Ok(rooms
                .into_iter()
                .filter_map(|(room, last_seq)| match (RoomName::parse(&room), last_seq.parse()) {
                    (Ok(room), Ok(last_seq)) => Some(RoomHead { room, last_seq }),
                    _ => {
                        tracing::warn!(%room, %last_seq, key = %self.keys.rooms, "skipping a corrupt room");
                        None
                    }
                })
                .collect())
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
        let room = RoomName::parse("rust-dev").unwrap();
        let json = serde_json::to_string(&Unsequenced {
            id: &id,
            name: &name,
            message: &message,
            ts: "2026-01-01T00:00:00.000Z",
            room: &room,
        })
        .unwrap();
        // What the script does.
        let stored = format!("{{\"seq\":7,{}", &json[1..]);
        let parsed: ChatMessage = serde_json::from_str(&stored).unwrap();
        assert_eq!(
            parsed,
            ChatMessage { id, name, message, seq: 7, ts: "2026-01-01T00:00:00.000Z".into(), room }
        );
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
