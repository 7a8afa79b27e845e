//! One room shared by every instance on one Redis.
//!
//! Who may hold an `id`, how many streams each user has on each instance, and when a user joins
//! or leaves are decided in Redis, atomically, by the Lua scripts below: the same rules as
//! [`super::room::Room`] decides alone on one instance. Each decision that changes membership
//! appends a `join` or `leave` entry to one Redis Stream, the membership log. Every instance
//! tails that log ([`super::SharedPresence`]'s mirror) and applies it, in log order, to its own
//! [`Room`](super::room::Room), which
//! then announces each change to that instance's streams exactly as a single server would: the
//! same log in the same order gives the same `new-user`, `user-leave`, `users` and `presence`
//! events everywhere. A tailer that loses Redis resumes from the last entry it applied, so it
//! skips nothing and applies nothing twice (applying is idempotent besides).
//!
//! Each open stream is one member of its user's set of stream ids, so that every script can be
//! retried after a timeout without counting anything twice (see [`OPEN`]). This layout replaced
//! per-user counters: instances of the two layouts must not share one Redis (restart them all
//! together, or use a new key prefix).
//!
//! An instance that dies without closing its streams (`kill -9`) stops refreshing its heartbeat;
//! any live instance then removes that instance's streams, and users left with none leave
//! after the usual grace period: within `instance_timeout + leave_grace` of the death.
//! Heartbeats are written and judged by Redis's clock, never an instance's own, so an instance
//! whose clock is wrong is not taken for dead, nor takes others for dead.
//!
//! This module is the Redis client: the scripts and the calls that run them. What drives it
//! (the mirror, the heartbeat, retries) is [`super::shared`].

use super::room::{JoinNo, Refusal};
use crate::session::{Binding, Session};
use app::protocol::{User, UserId, UserName};
use redis::{Script, aio::ConnectionManager, aio::MultiplexedConnection};
use std::{
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

/// Longest any single Redis call may take before the caller is told Redis is unavailable.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one read of the membership log blocks waiting for entries.
const LOG_BLOCK: Duration = Duration::from_millis(1_000);
/// Entries kept in the membership log; a mirror further behind than this re-reads the room.
pub(super) const LOG_MAXLEN: usize = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("unexpected answer from redis: {0}")]
    Protocol(String),
}

/// What the shared room decided for a new stream.
pub struct ClusterAdmission {
    pub user: User,
    pub new_session: Option<Session>,
}

/// One entry of the membership log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogEntry {
    Join { user: User, binding: Binding, join_no: JoinNo },
    Leave { id: UserId },
}

/// Every script below may run twice: a call whose answer timed out is retried, yet Redis may
/// have carried out the first one (it was queued behind a stall, or its answer was lost). So
/// each is idempotent: a stream is one member of its user's set of stream ids (`SADD` on open,
/// `SREM` on close, the count is `SCARD`), a closed stream leaves a tombstone holding its
/// outcome for [`TOMBSTONE_TTL`] (a retried close answers the same, and an open that runs after
/// its close, because its caller gave up on it, changes nothing), and leave tokens are drawn
/// from one counter, so a late expiry can never match a later departure of the same user.
///
/// Admits a stream: `KEYS` user hash, the session's user hash, this instance's streams, the
/// log, the join counter, the room set, the user's streams, the stream's tombstone, the token
/// counter, the log counter; `ARGV` id, name, session id, session binding, new binding, max
/// streams per user, log length, stream id.
const OPEN: &str = r#"
if redis.call('EXISTS', KEYS[8]) == 1 then return {'refused', 'closed'} end
if redis.call('SISMEMBER', KEYS[7], ARGV[8]) == 1 then
  -- Ran before: answer as then. A join bound the id to this call's new binding.
  local bound = redis.call('HMGET', KEYS[1], 'name', 'binding')
  if bound[2] == ARGV[5] then return {'joined', bound[1]} end
  return {'ok', bound[1]}
end
local held = false
if ARGV[3] ~= '' and redis.call('HGET', KEYS[2], 'binding') == ARGV[4] then held = true end
if redis.call('EXISTS', KEYS[1]) == 1 then
  if not (held and ARGV[3] == ARGV[1]) then return {'refused', 'held'} end
  if redis.call('SCARD', KEYS[7]) >= tonumber(ARGV[6]) then return {'refused', 'full'} end
  redis.call('SADD', KEYS[7], ARGV[8])
  redis.call('HSET', KEYS[3], ARGV[8], ARGV[1])
  -- A departure pending for this user is off.
  redis.call('HSET', KEYS[1], 'token', redis.call('INCR', KEYS[9]))
  return {'ok', redis.call('HGET', KEYS[1], 'name')}
end
if held then return {'refused', 'another'} end
if tonumber(ARGV[6]) < 1 then return {'refused', 'full'} end
local no = redis.call('INCR', KEYS[5])
redis.call('HSET', KEYS[1], 'name', ARGV[2], 'binding', ARGV[5], 'token', redis.call('INCR', KEYS[9]), 'no', no)
redis.call('SADD', KEYS[7], ARGV[8])
redis.call('HSET', KEYS[3], ARGV[8], ARGV[1])
redis.call('ZADD', KEYS[6], no, ARGV[1])
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[7], '*', 'n', redis.call('INCR', KEYS[10]), 't', 'join', 'id', ARGV[1], 'name', ARGV[2], 'binding', ARGV[5], 'no', no)
return {'joined', ARGV[2]}
"#;

/// Records a closed stream; returns the leave token when it was the user's last, else -1, and
/// then also lists the user among the departures due (see [`HEARTBEAT`]). `KEYS` user hash, the
/// user's streams, this instance's streams, the stream's tombstone, the token counter, the
/// departures; `ARGV` stream id, tombstone lifetime (ms), user id.
const CLOSE: &str = r#"
local done = redis.call('GET', KEYS[4])
if done then return tonumber(done) end
local token = -1
if redis.call('SREM', KEYS[2], ARGV[1]) == 1 then
  redis.call('HDEL', KEYS[3], ARGV[1])
  if redis.call('SCARD', KEYS[2]) == 0 and redis.call('EXISTS', KEYS[1]) == 1 then
    token = redis.call('INCR', KEYS[5])
    redis.call('HSET', KEYS[1], 'token', token)
    redis.call('ZADD', KEYS[6], redis_now(), ARGV[3])
  end
end
redis.call('SET', KEYS[4], token, 'PX', ARGV[2])
return token
"#;

/// Carries out a departure unless the user came back. `KEYS` user hash, log, room set, the
/// user's streams, the log counter, the departures; `ARGV` id, token, log length.
const EXPIRE: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('SCARD', KEYS[4]) > 0 then return 0 end
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[2] then return 0 end
redis.call('DEL', KEYS[1], KEYS[4])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[6], ARGV[1])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'n', redis.call('INCR', KEYS[5]), 't', 'leave', 'id', ARGV[1])
return 1
"#;

/// Redis's clock in milliseconds, the one clock every instance's heartbeat is written and
/// judged by (instances' own clocks may disagree by seconds).
const REDIS_NOW: &str = r#"
local function redis_now()
  local time = redis.call('TIME')
  return tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end
"#;

/// Beats for this instance; returns Redis's time and the instances silent for longer than the
/// timeout. `KEYS` instances hash, the time of the last beat of any instance, the departures,
/// the room set, the log, the log counter; `ARGV` instance, timeout (ms), backstop delay (ms),
/// user key prefix, user streams key prefix, log length.
///
/// Every instance beats three times per timeout, so when nobody has beaten for half a timeout
/// it was Redis that could not be reached (down, frozen, restarting), not every instance that
/// died: then every instance's silence is counted again from now, instead of the first one back
/// reaping all the others.
///
/// It is also the backstop for departures: a user left with no stream is listed, with the
/// time, among the departures, and the instance that closed the stream expires the user after
/// the grace period. Should that never happen (the instance died first, its retries gave up, or
/// the answer naming the departure was lost), the first heartbeat after the backstop delay
/// carries it out, unless the user came back.
const HEARTBEAT: &str = r#"
local now = redis_now()
local timeout = tonumber(ARGV[2])
local last = tonumber(redis.call('GET', KEYS[2]) or now)
redis.call('SET', KEYS[2], now)
redis.call('HSET', KEYS[1], ARGV[1], now)
local dead = {}
local beats = redis.call('HGETALL', KEYS[1])
for i = 1, #beats, 2 do
  if now - last > timeout / 2 then
    redis.call('HSET', KEYS[1], beats[i], now)
  elseif tonumber(beats[i + 1]) < now - timeout then
    table.insert(dead, beats[i])
  end
end
local due = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now - tonumber(ARGV[3]), 'LIMIT', 0, 100)
for _, id in ipairs(due) do
  redis.call('ZREM', KEYS[3], id)
  local user, streams = ARGV[4] .. id, ARGV[5] .. id
  if redis.call('EXISTS', user) == 1 and redis.call('SCARD', streams) == 0 then
    redis.call('DEL', user, streams)
    redis.call('ZREM', KEYS[4], id)
    redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[6], '*', 'n', redis.call('INCR', KEYS[6]), 't', 'leave', 'id', id)
  end
end
return {now, dead}
"#;

/// Removes a dead instance's streams; returns `id, token` pairs of users left with no stream
/// (and lists them among the departures). `KEYS` instances hash, the dead instance's streams,
/// the token counter, the departures; `ARGV` instance, timeout (ms), user key prefix, user
/// streams key prefix.
const REAP: &str = r#"
local beat = redis.call('HGET', KEYS[1], ARGV[1])
if not beat or tonumber(beat) >= redis_now() - tonumber(ARGV[2]) then return {} end
local streams = redis.call('HGETALL', KEYS[2])
local orphaned = {}
for i = 1, #streams, 2 do
  local id = streams[i + 1]
  local set = ARGV[4] .. id
  if redis.call('SREM', set, streams[i]) == 1 and redis.call('SCARD', set) == 0 then
    local user = ARGV[3] .. id
    if redis.call('EXISTS', user) == 1 then
      local token = redis.call('INCR', KEYS[3])
      redis.call('HSET', user, 'token', token)
      redis.call('ZADD', KEYS[4], redis_now(), id)
      table.insert(orphaned, id)
      table.insert(orphaned, tostring(token))
    end
  end
end
redis.call('DEL', KEYS[2])
redis.call('HDEL', KEYS[1], ARGV[1])
return orphaned
"#;

/// How long a closed stream's tombstone is kept: longer than a close is retried (about
/// [`RETRY_ATTEMPTS`](super::shared::RETRY_ATTEMPTS) × ([`CALL_TIMEOUT`] +
/// [`RETRY_MAX`](super::shared::RETRY_MAX))) and than an open can wait in Redis.
const TOMBSTONE_TTL: Duration = Duration::from_secs(600);

/// Clocks further apart than this are worth a warning: message timestamps show it.
const CLOCK_SKEW_WARNING: Duration = Duration::from_secs(1);

/// The shared room's name for one open stream, unique across instances and restarts, so that
/// a script run twice for the same stream is recognised; with the binding its open offers when
/// it binds the id, so that a retried open answers as the first did.
#[derive(Clone, PartialEq, Eq)]
pub struct StreamId {
    name: String,
    binding: Binding,
}

impl std::fmt::Debug for StreamId {
    // The binding is a secret of the browser it goes to.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("StreamId").field(&self.name).finish()
    }
}

/// A stream entry as Redis returns it: its id and its field-value pairs.
type RawEntry = (String, Vec<(String, String)>);

/// Where a reader of the membership log stands: the id of the last entry applied (to read on
/// from), and its number `n` (to tell whether the next one read follows it). Every entry
/// carries `n`, one more than the entry before it, so that a reader can see that entries it
/// never read were trimmed away (it fell more than [`LOG_MAXLEN`] behind); entries written
/// before numbering have none, and are not checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPosition {
    id: String,
    number: Option<u64>,
}

impl LogPosition {
    /// Moves past `entry`; false when entries between were lost.
    pub(super) fn advance(&mut self, entry: &RawLogEntry) -> bool {
        let follows = match (self.number, entry.number) {
            (Some(last), Some(next)) => next == last + 1,
            _ => true,
        };
        self.id.clone_from(&entry.id);
        self.number = entry.number;
        follows
    }
}

/// One entry read from the log.
pub struct RawLogEntry {
    id: String,
    number: Option<u64>,
    /// `None` for one this version does not understand (skipped, not fatal).
    pub(super) entry: Option<LogEntry>,
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
}

/// The shared room's client. Cheap to share behind an `Arc`.
pub struct ClusterPresence {
    client: redis::Client,
    conn: ConnectionManager,
    prefix: String,
    /// This process's name among instances: random per start, so a restarted instance never
    /// inherits a dead one's counts.
    instance: String,
    open: Script,
    close: Script,
    expire: Script,
    heartbeat: Script,
    reap: Script,
    /// Numbers this instance's streams.
    streams_opened: AtomicU64,
    /// Added to this machine's clock: lets a test give an instance a wrong clock. Heartbeats
    /// use Redis's clock; this one is only compared with it, to warn of skew.
    clock_offset_ms: i64,
    clock_warned: AtomicBool,
}

async fn bounded<T>(call: impl Future<Output = redis::RedisResult<T>>) -> Result<T, ClusterError> {
    tokio::time::timeout(CALL_TIMEOUT, call)
        .await
        .map_err(|_| ClusterError::Timeout(CALL_TIMEOUT))?
        .map_err(Into::into)
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl ClusterPresence {
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, ClusterError> {
        let client = redis::Client::open(url)?;
        let conn = bounded(ConnectionManager::new(client.clone())).await?;
        Ok(Self {
            client,
            conn,
            prefix: prefix.to_owned(),
            instance: uuid::Uuid::new_v4().simple().to_string(),
            open: Script::new(OPEN),
            close: Script::new(&format!("{REDIS_NOW}{CLOSE}")),
            expire: Script::new(EXPIRE),
            heartbeat: Script::new(&format!("{REDIS_NOW}{HEARTBEAT}")),
            reap: Script::new(&format!("{REDIS_NOW}{REAP}")),
            streams_opened: AtomicU64::new(0),
            clock_offset_ms: 0,
            clock_warned: AtomicBool::new(false),
        })
    }

    /// The same, with this instance's clock `offset_ms` off (for tests of clock skew).
    pub fn with_clock_offset(mut self, offset_ms: i64) -> Self {
        self.clock_offset_ms = offset_ms;
        self
    }

    fn key(&self, name: &str) -> String {
        format!("{}:{name}", self.prefix)
    }
    fn user_key(&self, id: &str) -> String {
        format!("{}:user:{id}", self.prefix)
    }
    fn streams_key(&self, id: &str) -> String {
        format!("{}:streams:{id}", self.prefix)
    }
    fn instance_streams_key(&self, instance: &str) -> String {
        format!("{}:conns:{instance}", self.prefix)
    }
    fn tombstone_key(&self, stream: &StreamId) -> String {
        format!("{}:closed:{}", self.prefix, stream.name)
    }

    /// A new stream's id: this instance's, and a number it never gave before.
    pub fn stream_id(&self) -> StreamId {
        let number = self.streams_opened.fetch_add(1, Ordering::Relaxed);
        StreamId { name: format!("{}-{number}", self.instance), binding: Binding::random() }
    }

    /// Decides whether a stream may open, as [`Room::open_stream`] does for one instance.
    pub async fn open(
        &self,
        stream: &StreamId,
        id: &UserId,
        name: &UserName,
        session: Option<&Session>,
        max_streams_per_user: usize,
    ) -> Result<Result<ClusterAdmission, Refusal>, ClusterError> {
        let binding = stream.binding;
        let (session_id, session_binding) =
            session.map_or((String::new(), String::new()), |s| (s.id.to_string(), s.binding.to_text()));
        let mut invocation = self.open.prepare_invoke();
        invocation
            .key(self.user_key(id.as_str()))
            .key(self.user_key(if session_id.is_empty() { id.as_str() } else { &session_id }))
            .key(self.instance_streams_key(&self.instance))
            .key(self.key("log"))
            .key(self.key("joins"))
            .key(self.key("room"))
            .key(self.streams_key(id.as_str()))
            .key(self.tombstone_key(stream))
            .key(self.key("tokens"))
            .key(self.key("logno"))
            .arg(id.as_str())
            .arg(name.as_str())
            .arg(&session_id)
            .arg(&session_binding)
            .arg(binding.to_text())
            .arg(max_streams_per_user)
            .arg(LOG_MAXLEN)
            .arg(&stream.name);
        let mut conn = self.conn.clone();
        let answer: Vec<String> = bounded(invocation.invoke_async(&mut conn)).await?;
        let (outcome, detail) = match answer.as_slice() {
            [outcome, detail] => (outcome.as_str(), detail.as_str()),
            _ => return Err(ClusterError::Protocol(format!("open answered {answer:?}"))),
        };
        let bound_name =
            || UserName::parse(detail).map_err(|_| ClusterError::Protocol(format!("bad name {detail:?}")));
        Ok(match (outcome, detail) {
            ("refused", "held") => Err(Refusal::IdHeldElsewhere),
            ("refused", "another") => Err(Refusal::SessionHoldsAnotherId),
            ("refused", _) => Err(Refusal::TooManyStreams),
            ("ok", _) => {
                Ok(ClusterAdmission { user: User { id: id.clone(), name: bound_name()? }, new_session: None })
            }
            ("joined", _) => Ok(ClusterAdmission {
                user: User { id: id.clone(), name: bound_name()? },
                new_session: Some(Session { id: id.clone(), binding }),
            }),
            _ => return Err(ClusterError::Protocol(format!("open answered {answer:?}"))),
        })
    }

    /// Records a closed stream (or one whose open may have been carried out after its caller
    /// gave up); the leave token when it was the user's last.
    pub async fn close(&self, stream: &StreamId, id: &UserId) -> Result<Option<u64>, ClusterError> {
        let mut invocation = self.close.prepare_invoke();
        invocation
            .key(self.user_key(id.as_str()))
            .key(self.streams_key(id.as_str()))
            .key(self.instance_streams_key(&self.instance))
            .key(self.tombstone_key(stream))
            .key(self.key("tokens"))
            .key(self.key("departing"))
            .arg(&stream.name)
            .arg(TOMBSTONE_TTL.as_millis() as u64)
            .arg(id.as_str());
        let mut conn = self.conn.clone();
        let token: i64 = bounded(invocation.invoke_async(&mut conn)).await?;
        Ok(u64::try_from(token).ok())
    }

    /// Carries out a departure scheduled with `token`, unless the user came back.
    pub async fn expire(&self, id: &UserId, token: u64) -> Result<(), ClusterError> {
        let mut invocation = self.expire.prepare_invoke();
        invocation
            .key(self.user_key(id.as_str()))
            .key(self.key("log"))
            .key(self.key("room"))
            .key(self.streams_key(id.as_str()))
            .key(self.key("logno"))
            .key(self.key("departing"))
            .arg(id.as_str())
            .arg(token)
            .arg(LOG_MAXLEN);
        let mut conn = self.conn.clone();
        let _: i64 = bounded(invocation.invoke_async(&mut conn)).await?;
        Ok(())
    }

    /// Refreshes this instance's heartbeat and reaps instances silent for longer than
    /// `timeout`, both by Redis's clock; returns the departures to schedule for users they left
    /// with no stream. Carries out departures nobody carried out `backstop` after they were
    /// due to start (see [`HEARTBEAT`]).
    pub async fn heartbeat(
        &self,
        timeout: Duration,
        backstop: Duration,
    ) -> Result<Vec<(UserId, u64)>, ClusterError> {
        let mut conn = self.conn.clone();
        let instances = self.key("instances");
        let timeout_ms = timeout.as_millis() as u64;
        let mut invocation = self.heartbeat.prepare_invoke();
        invocation
            .key(&instances)
            .key(self.key("beat"))
            .key(self.key("departing"))
            .key(self.key("room"))
            .key(self.key("log"))
            .key(self.key("logno"))
            .arg(&self.instance)
            .arg(timeout_ms)
            .arg(backstop.as_millis() as u64)
            .arg(format!("{}:user:", self.prefix))
            .arg(format!("{}:streams:", self.prefix))
            .arg(LOG_MAXLEN);
        let (redis_now, dead): (u64, Vec<String>) = bounded(invocation.invoke_async(&mut conn)).await?;
        self.compare_clocks(redis_now);
        let mut orphaned = Vec::new();
        for instance in dead {
            tracing::warn!(%instance, "an instance stopped beating; removing its streams");
            let mut invocation = self.reap.prepare_invoke();
            invocation
                .key(&instances)
                .key(self.instance_streams_key(&instance))
                .key(self.key("tokens"))
                .key(self.key("departing"))
                .arg(&instance)
                .arg(timeout_ms)
                .arg(format!("{}:user:", self.prefix))
                .arg(format!("{}:streams:", self.prefix));
            let pairs: Vec<String> = bounded(invocation.invoke_async(&mut conn)).await?;
            for pair in pairs.chunks(2) {
                if let [id, token] = pair
                    && let (Ok(id), Ok(token)) = (UserId::parse(id), token.parse())
                {
                    orphaned.push((id, token));
                }
            }
        }
        Ok(orphaned)
    }

    /// Warns (once per episode) when this machine's clock is far from Redis's: presence does
    /// not care, but the timestamps this instance puts on messages are off by as much.
    fn compare_clocks(&self, redis_now: u64) {
        let own = now_ms().saturating_add_signed(self.clock_offset_ms);
        let skew = Duration::from_millis(own.abs_diff(redis_now));
        let skewed = skew > CLOCK_SKEW_WARNING;
        if skewed && !self.clock_warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                ?skew,
                ahead = own > redis_now,
                "this machine's clock is far from Redis's; message timestamps from this instance show it"
            );
        } else if !skewed {
            self.clock_warned.store(false, Ordering::Relaxed);
        }
    }

    /// A dedicated connection for blocking reads of the log.
    pub async fn log_reader(&self) -> Result<MultiplexedConnection, ClusterError> {
        bounded(self.client.get_multiplexed_async_connection()).await
    }

    /// The room as it stands, and the log position it reflects: read the position first, so
    /// that entries racing with the read are applied again (harmlessly) rather than missed.
    pub async fn snapshot(&self) -> Result<(LogPosition, Vec<LogEntry>), ClusterError> {
        let mut conn = self.conn.clone();
        let newest: Vec<RawEntry> = bounded(
            redis::cmd("XREVRANGE")
                .arg(self.key("log"))
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(1)
                .query_async(&mut conn),
        )
        .await?;
        let position = match newest.first() {
            Some((id, fields)) => {
                LogPosition { id: id.clone(), number: field(fields, "n").and_then(|n| n.parse().ok()) }
            }
            None => LogPosition { id: "0-0".to_owned(), number: None },
        };
        let ids: Vec<String> =
            bounded(redis::cmd("ZRANGE").arg(self.key("room")).arg(0).arg(-1).query_async(&mut conn)).await?;
        let mut members = Vec::with_capacity(ids.len());
        for id in ids {
            let fields: Vec<Option<String>> = bounded(
                redis::cmd("HMGET")
                    .arg(self.user_key(&id))
                    .arg("name")
                    .arg("binding")
                    .arg("no")
                    .query_async(&mut conn),
            )
            .await?;
            if let [Some(name), Some(binding), Some(no)] = fields.as_slice()
                && let Some(entry) = join_entry(&id, name, binding, no)
            {
                members.push(entry);
            }
        }
        Ok((position, members))
    }

    /// Log entries after `after`, waiting up to [`LOG_BLOCK`] for one.
    pub async fn read_log(
        &self,
        conn: &mut MultiplexedConnection,
        after: &LogPosition,
    ) -> Result<Vec<RawLogEntry>, ClusterError> {
        let reply: Option<Vec<(String, Vec<RawEntry>)>> = tokio::time::timeout(
            LOG_BLOCK + CALL_TIMEOUT,
            redis::cmd("XREAD")
                .arg("COUNT")
                .arg(1000)
                .arg("BLOCK")
                .arg(LOG_BLOCK.as_millis() as u64)
                .arg("STREAMS")
                .arg(self.key("log"))
                .arg(&after.id)
                .query_async(conn),
        )
        .await
        .map_err(|_| ClusterError::Timeout(LOG_BLOCK + CALL_TIMEOUT))??;
        let entries = reply.into_iter().flatten().flat_map(|(_, entries)| entries);
        Ok(entries
            .map(|(id, fields)| RawLogEntry {
                number: field(&fields, "n").and_then(|n| n.parse().ok()),
                entry: parse_entry(&fields),
                id,
            })
            .collect())
    }
}

fn join_entry(id: &str, name: &str, binding: &str, no: &str) -> Option<LogEntry> {
    Some(LogEntry::Join {
        user: User { id: UserId::parse(id).ok()?, name: UserName::parse(name).ok()? },
        binding: Binding::from_text(binding)?,
        join_no: no.parse().ok()?,
    })
}

/// An entry of the log; `None` for one this version does not understand (skipped, not fatal).
fn parse_entry(fields: &[(String, String)]) -> Option<LogEntry> {
    let field = |name: &str| field(fields, name);
    match field("t")? {
        "join" => join_entry(field("id")?, field("name")?, field("binding")?, field("no")?),
        "leave" => Some(LogEntry::Leave { id: UserId::parse(field("id")?).ok()? }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(id: &str, number: Option<u64>) -> RawLogEntry {
        RawLogEntry { id: id.to_owned(), number, entry: None }
    }

    #[test]
    fn a_log_position_tells_the_next_entry_from_one_after_a_loss() {
        let mut position = LogPosition { id: "5-0".to_owned(), number: Some(7) };
        assert!(position.advance(&read("6-0", Some(8))));
        assert!(!position.advance(&read("9-0", Some(11))), "9 and 10 were lost");
        assert_eq!(position, LogPosition { id: "9-0".to_owned(), number: Some(11) });
        // Entries from before numbering, and a start from an empty log, are not judged.
        assert!(position.advance(&read("10-0", None)));
        assert!(position.advance(&read("11-0", Some(40))));
    }
}
