//! The rooms shared by every instance on one Redis.
//!
//! Who may hold an `id`, how many streams each user has open, who is in which room, and when a
//! user joins or leaves a room are decided in Redis, atomically, by the Lua scripts below: the
//! same rules as [`super::room::Room`] decides alone on one instance, kept apart the same way
//! as [`super::LocalPresence`] keeps them. The *identities* (one binding per `id`, the streams
//! of each user across rooms, the `id` held until the grace period after its last stream) are
//! one more room that nobody sees; each room counts the streams that follow it, and a user
//! leaves a room the grace period after the last of those closed. Each decision that changes
//! either appends an entry to one Redis Stream, the membership log: `bind` and `unbind` for
//! the identities, `join` and `leave` naming their room. Every instance tails that log
//! ([`super::SharedPresence`]'s mirror) and applies it, in log order, to its own copy of the
//! identities (to authorize sessions) and of each room ([`Room`](super::room::Room)), which
//! then announces each change to that instance's streams exactly as a single server would: the
//! same log in the same order gives the same `new-user`, `user-leave`, `users` and `presence`
//! events, room by room, everywhere. A tailer that loses Redis resumes from the last entry it
//! applied, so it skips nothing and applies nothing twice (applying is idempotent besides).
//!
//! **Layout.** Every key starts with `<prefix>:presence:` (written `P:` here):
//! - `P:id:<id>` a hash, the identity: `name`, `binding`, `no` (its place in join order),
//!   `token` (its departure's), and `r:<room>` for each room the user is in (grace included),
//!   holding that stay's departure token;
//! - `P:streams:<id>` a set: the user's open streams, whatever they follow;
//! - `P:follow:<room>:<id>` a set: those of them that follow the room;
//! - `P:ids` a sorted set: every held `id`, by join order; `P:members:<room>` one per room:
//!   its users, by join order; `P:rooms` a set: the rooms that have users;
//! - `P:conns:<instance>` a hash: each open stream of the instance → `<id> <room>,<room>...`,
//!   what reaping a dead instance releases;
//! - `P:closed:<stream>` a closed stream's tombstone; `P:departing` a sorted set: users with a
//!   departure due, by the time of their last close (the backstop below);
//! - `P:log` the membership log, `P:logno` its entry counter; `P:joins` and `P:tokens` the
//!   counters of join order and of departure tokens; `P:instances` and `P:beat` the heartbeats.
//!
//! **Too many rooms.** A room exists while it has users on any instance (`P:rooms`) or
//! retained messages (the store's `<prefix>:rooms` hash, see [`crate::store`]: it never
//! forgets a room, as a room keeps at least its newest message); `general` always does.
//! [`OPEN`] counts both, after the identity's refusals and before it writes anything, and
//! refuses a stream whose list would create more than `--max-rooms`: a refused stream binds
//! nothing. Each instance's mirror then creates the rooms as joins arrive, without checking
//! the limit again.
//!
//! Each open stream is one member of its user's set of stream ids, so that every script can be
//! retried after a timeout without counting anything twice (see [`OPEN`]). This layout (rooms
//! shared across instances) replaced the one-room layout under `<prefix>:user:`,
//! `<prefix>:room`, `<prefix>:log` ..., which itself replaced per-user counters: instances of
//! different layouts must not share one Redis (restart them all together, or use a new key
//! prefix); under new key names, they would not see each other's users at all.
//!
//! An instance that dies without closing its streams (`kill -9`) stops refreshing its heartbeat;
//! any live instance then removes that instance's streams from every room they followed, and
//! users left with none in a room leave it after the usual grace period (their identity too,
//! when they have no stream left): within `instance_timeout + leave_grace` of the death.
//! Heartbeats are written and judged by Redis's clock, never an instance's own, so an instance
//! whose clock is wrong is not taken for dead, nor takes others for dead.
//!
//! This module is the Redis client: the scripts and the calls that run them. What drives it
//! (the mirror, the heartbeat, retries) is [`super::shared`].

use super::room::{JoinNo, Refusal};
use crate::{
    hub::OpenError,
    session::{Binding, Session},
};
use app::protocol::{RoomName, User, UserId, UserName};
use redis::{Script, aio::ConnectionManager, aio::MultiplexedConnection};
use std::{
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

/// Longest any single Redis call may take before the caller is told Redis is unavailable.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one read of the membership log blocks waiting for entries.
const LOG_BLOCK: Duration = Duration::from_millis(1_000);
/// Entries kept in the membership log; a mirror further behind than this re-reads the rooms.
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

/// What the shared rooms decided for a new stream.
pub struct ClusterAdmission {
    pub user: User,
    pub new_session: Option<Session>,
}

/// What a log entry changes: who holds which `id`, or who is in one room.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    Identities,
    Room(RoomName),
}

/// One entry of the membership log: `user` joins `scope` (is bound, for the identities), or
/// `id` leaves it (is free again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogEntry {
    Join { scope: Scope, user: User, binding: Binding, join_no: JoinNo },
    Leave { scope: Scope, id: UserId },
}

/// What the scripts that change membership share: appending to the log, a user leaving a room,
/// an `id` becoming free. Keys are built from `P` (the presence prefix), as a user's rooms are
/// known only inside the script.
const MEMBERSHIP: &str = r#"
local function log_entry(P, maxlen, ...)
  redis.call('XADD', P .. ':log', 'MAXLEN', '~', maxlen, '*', 'n', redis.call('INCR', P .. ':logno'), ...)
end
-- `id` leaves `room`, unless a stream of theirs follows it.
local function leave_room(P, maxlen, id, room)
  if redis.call('SCARD', P .. ':follow:' .. room .. ':' .. id) > 0 then return end
  redis.call('HDEL', P .. ':id:' .. id, 'r:' .. room)
  local members = P .. ':members:' .. room
  if redis.call('ZREM', members, id) == 0 then return end
  if redis.call('ZCARD', members) == 0 then redis.call('SREM', P .. ':rooms', room) end
  log_entry(P, maxlen, 't', 'leave', 'room', room, 'id', id)
end
-- `id`, with no stream left, is free again: it leaves every room it is still in, then is unbound.
local function unbind(P, maxlen, id)
  local user = P .. ':id:' .. id
  for _, field in ipairs(redis.call('HKEYS', user)) do
    local room = string.match(field, '^r:(.+)$')
    if room then
      redis.call('DEL', P .. ':follow:' .. room .. ':' .. id)
      leave_room(P, maxlen, id, room)
    end
  end
  redis.call('DEL', user, P .. ':streams:' .. id)
  redis.call('ZREM', P .. ':ids', id)
  redis.call('ZREM', P .. ':departing', id)
  log_entry(P, maxlen, 't', 'unbind', 'id', id)
end
-- Takes `stream` (of `id`, following the rooms of `rooms_csv`) out of every count. Each room it
-- was the user's last stream in, and the identity when it was their last stream at all, gets
-- one new departure token, which is returned (-1 when nothing is left to depart), and the user
-- is listed among the departures due.
local function release(P, stream, id, rooms_csv, now)
  local streams = P .. ':streams:' .. id
  if redis.call('SREM', streams, stream) == 0 then return -1 end
  local user = P .. ':id:' .. id
  local token = nil
  for room in string.gmatch(rooms_csv, '[^,]+') do
    local follow = P .. ':follow:' .. room .. ':' .. id
    if redis.call('SREM', follow, stream) == 1 and redis.call('SCARD', follow) == 0
      and redis.call('HEXISTS', user, 'r:' .. room) == 1 then
      token = token or redis.call('INCR', P .. ':tokens')
      redis.call('HSET', user, 'r:' .. room, token)
    end
  end
  if redis.call('SCARD', streams) == 0 and redis.call('EXISTS', user) == 1 then
    token = token or redis.call('INCR', P .. ':tokens')
    redis.call('HSET', user, 'token', token)
  end
  if not token then return -1 end
  redis.call('ZADD', P .. ':departing', now, id)
  return token
end
"#;

/// Every script below may run twice: a call whose answer timed out is retried, yet Redis may
/// have carried out the first one (it was queued behind a stall, or its answer was lost). So
/// each is idempotent: a stream is one member of its user's set of stream ids and of a set per
/// room it follows (`SADD` on open, `SREM` on close, the counts are `SCARD`), a closed stream
/// leaves a tombstone holding its outcome for [`TOMBSTONE_TTL`] (a retried close answers the
/// same, and an open that runs after its close, because its caller gave up on it, changes
/// nothing), and departure tokens are drawn from one counter, so a late expiry can never match
/// a later departure of the same user.
///
/// Admits a stream: `KEYS` the identity, the session's identity, this instance's streams, the
/// user's streams, the stream's tombstone, the held ids, the rooms with users, the store's
/// rooms with messages; `ARGV` id, name, session id, session binding, new binding, max streams
/// per user, log length, stream id, max rooms, the presence prefix, then the rooms followed.
/// Identity first (held elsewhere, another id, too many streams), then the room limit, and
/// only then any write.
const OPEN: &str = r#"
if redis.call('EXISTS', KEYS[5]) == 1 then return {'refused', 'closed'} end
if redis.call('SISMEMBER', KEYS[4], ARGV[8]) == 1 then
  -- Ran before: answer as then. A bind bound the id to this call's new binding.
  local bound = redis.call('HMGET', KEYS[1], 'name', 'binding')
  if bound[2] == ARGV[5] then return {'joined', bound[1]} end
  return {'ok', bound[1]}
end
local P, id, maxlen = ARGV[10], ARGV[1], ARGV[7]
local held = ARGV[3] ~= '' and redis.call('HGET', KEYS[2], 'binding') == ARGV[4]
local bound = redis.call('EXISTS', KEYS[1]) == 1
if bound then
  if not (held and ARGV[3] == id) then return {'refused', 'held'} end
  if redis.call('SCARD', KEYS[4]) >= tonumber(ARGV[6]) then return {'refused', 'full'} end
else
  if held then return {'refused', 'another'} end
  if tonumber(ARGV[6]) < 1 then return {'refused', 'full'} end
end
local rooms = {}
for i = 11, #ARGV do table.insert(rooms, ARGV[i]) end
local exists = function(room)
  return room == 'general' or redis.call('SISMEMBER', KEYS[7], room) == 1
    or redis.call('HEXISTS', KEYS[8], room) == 1
end
local missing = 0
for _, room in ipairs(rooms) do
  if not exists(room) then missing = missing + 1 end
end
if missing > 0 then
  local count = redis.call('HLEN', KEYS[8])
  if redis.call('HEXISTS', KEYS[8], 'general') == 0 then count = count + 1 end
  for _, room in ipairs(redis.call('SMEMBERS', KEYS[7])) do
    if room ~= 'general' and redis.call('HEXISTS', KEYS[8], room) == 0 then count = count + 1 end
  end
  if count + missing > tonumber(ARGV[9]) then return {'refused', 'rooms'} end
end
-- Admitted. Any departure pending for the identity, or for a room the stream follows, is off.
local token = redis.call('INCR', P .. ':tokens')
local answer = 'ok'
if bound then
  redis.call('HSET', KEYS[1], 'token', token)
else
  local no = redis.call('INCR', P .. ':joins')
  redis.call('HSET', KEYS[1], 'name', ARGV[2], 'binding', ARGV[5], 'token', token, 'no', no)
  redis.call('ZADD', KEYS[6], no, id)
  log_entry(P, maxlen, 't', 'bind', 'id', id, 'name', ARGV[2], 'binding', ARGV[5], 'no', no)
  answer = 'joined'
end
local user = redis.call('HMGET', KEYS[1], 'name', 'binding')
redis.call('SADD', KEYS[4], ARGV[8])
redis.call('HSET', KEYS[3], ARGV[8], id .. ' ' .. table.concat(rooms, ','))
for _, room in ipairs(rooms) do
  redis.call('SADD', P .. ':follow:' .. room .. ':' .. id, ARGV[8])
  local members = P .. ':members:' .. room
  if not redis.call('ZSCORE', members, id) then
    local no = redis.call('INCR', P .. ':joins')
    redis.call('ZADD', members, no, id)
    redis.call('SADD', KEYS[7], room)
    log_entry(P, maxlen, 't', 'join', 'room', room, 'id', id, 'name', user[1], 'binding', user[2], 'no', no)
  end
  redis.call('HSET', KEYS[1], 'r:' .. room, token)
end
return {answer, user[1]}
"#;

/// Records a closed stream; returns the departure token when it was the user's last stream in
/// any of its rooms (or at all), else -1 (see `release`). `KEYS` this instance's streams, the
/// stream's tombstone; `ARGV` stream id, tombstone lifetime (ms), the presence prefix.
const CLOSE: &str = r#"
local done = redis.call('GET', KEYS[2])
if done then return tonumber(done) end
local token = -1
local stream = redis.call('HGET', KEYS[1], ARGV[1])
if stream then
  local id, rooms = string.match(stream, '^(%S+) (%S*)$')
  redis.call('HDEL', KEYS[1], ARGV[1])
  token = release(ARGV[3], ARGV[1], id, rooms, redis_now())
end
redis.call('SET', KEYS[2], token, 'PX', ARGV[2])
return token
"#;

/// Carries out the departures scheduled with `token` (from each room the stream that drew it
/// was the user's last in, and from the identity when it was their last stream), unless the
/// user came back. `KEYS` the identity, the user's streams; `ARGV` id, token, log length, the
/// presence prefix.
const EXPIRE: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local P, id, token, maxlen = ARGV[4], ARGV[1], ARGV[2], ARGV[3]
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
  local room = string.match(fields[i], '^r:(.+)$')
  if room and fields[i + 1] == token then leave_room(P, maxlen, id, room) end
end
if redis.call('HGET', KEYS[1], 'token') == token and redis.call('SCARD', KEYS[2]) == 0 then
  unbind(P, maxlen, id)
end
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
/// timeout. `KEYS` instances hash, the time of the last beat of any instance, the departures;
/// `ARGV` instance, timeout (ms), backstop delay (ms), the presence prefix, log length.
///
/// Every instance beats three times per timeout, so when nobody has beaten for half a timeout
/// it was Redis that could not be reached (down, frozen, restarting), not every instance that
/// died: then every instance's silence is counted again from now, instead of the first one back
/// reaping all the others.
///
/// It is also the backstop for departures: a user whose last stream in a room (or at all)
/// closed is listed, with the time, among the departures, and the instance that closed the
/// stream carries the departures out after the grace period. Should that never happen (the
/// instance died first, its retries gave up, or the answer naming the departure was lost), the
/// first heartbeat after the backstop delay carries out every departure of that user still
/// due: the user leaves each room no stream of theirs follows, and, with no stream left at all,
/// is unbound. The time listed is the user's last close, so every such departure is overdue.
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
local P, maxlen = ARGV[4], ARGV[5]
local due = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now - tonumber(ARGV[3]), 'LIMIT', 0, 100)
for _, id in ipairs(due) do
  redis.call('ZREM', KEYS[3], id)
  local user = P .. ':id:' .. id
  if redis.call('EXISTS', user) == 1 then
    if redis.call('SCARD', P .. ':streams:' .. id) == 0 then
      unbind(P, maxlen, id)
    else
      for _, field in ipairs(redis.call('HKEYS', user)) do
        local room = string.match(field, '^r:(.+)$')
        if room then leave_room(P, maxlen, id, room) end
      end
    end
  end
end
return {now, dead}
"#;

/// Removes a dead instance's streams from every room they followed; returns `id, token` pairs
/// of the departures to carry out after the grace period (see `release`). `KEYS` instances
/// hash, the dead instance's streams; `ARGV` instance, timeout (ms), the presence prefix.
const REAP: &str = r#"
local beat = redis.call('HGET', KEYS[1], ARGV[1])
if not beat or tonumber(beat) >= redis_now() - tonumber(ARGV[2]) then return {} end
local streams = redis.call('HGETALL', KEYS[2])
local orphaned = {}
for i = 1, #streams, 2 do
  local id, rooms = string.match(streams[i + 1], '^(%S+) (%S*)$')
  if id then
    local token = release(ARGV[3], streams[i], id, rooms, redis_now())
    if token ~= -1 then
      table.insert(orphaned, id)
      table.insert(orphaned, tostring(token))
    end
  end
end
redis.call('DEL', KEYS[2])
redis.call('HDEL', KEYS[1], ARGV[1])
return orphaned
"#;

/// Reads the identities and every room with users in one step, with the log position they
/// reflect: `KEYS` the log, the held ids, the rooms with users; `ARGV` the presence prefix.
/// Returns the newest log entry's id and number (empty when none), then six fields per member:
/// kind (`bind`, or `join` of the room that follows), room, id, name, binding, join order.
const SNAPSHOT: &str = r#"
local out = {'0-0', ''}
local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #newest > 0 then
  out[1] = newest[1][1]
  local fields = newest[1][2]
  for i = 1, #fields, 2 do
    if fields[i] == 'n' then out[2] = fields[i + 1] end
  end
end
local P = ARGV[1]
local function add(kind, room, ids)
  for i = 1, #ids, 2 do
    local user = redis.call('HMGET', P .. ':id:' .. ids[i], 'name', 'binding')
    if user[1] and user[2] then
      for _, value in ipairs({kind, room, ids[i], user[1], user[2], ids[i + 1]}) do
        table.insert(out, value)
      end
    end
  end
end
add('bind', '', redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES'))
for _, room in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  add('join', room, redis.call('ZRANGE', P .. ':members:' .. room, 0, -1, 'WITHSCORES'))
end
return out
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

/// The shared rooms' client. Cheap to share behind an `Arc`.
pub struct ClusterPresence {
    client: redis::Client,
    conn: ConnectionManager,
    /// The store's prefix: the store's keys start with it (the rooms with messages).
    prefix: String,
    /// This process's name among instances: random per start, so a restarted instance never
    /// inherits a dead one's counts.
    instance: String,
    /// Most rooms that may exist at once, `general` included (`--max-rooms`).
    max_rooms: usize,
    open: Script,
    close: Script,
    expire: Script,
    heartbeat: Script,
    reap: Script,
    snapshot: Script,
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
    /// Connects with no limit on rooms; see [`ClusterPresence::with_max_rooms`].
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, ClusterError> {
        let client = redis::Client::open(url)?;
        let conn = bounded(ConnectionManager::new(client.clone())).await?;
        let script = |parts: &[&str]| Script::new(&parts.concat());
        Ok(Self {
            client,
            conn,
            prefix: prefix.to_owned(),
            instance: uuid::Uuid::new_v4().simple().to_string(),
            max_rooms: usize::MAX,
            open: script(&[MEMBERSHIP, OPEN]),
            close: script(&[REDIS_NOW, MEMBERSHIP, CLOSE]),
            expire: script(&[MEMBERSHIP, EXPIRE]),
            heartbeat: script(&[REDIS_NOW, MEMBERSHIP, HEARTBEAT]),
            reap: script(&[REDIS_NOW, MEMBERSHIP, REAP]),
            snapshot: script(&[SNAPSHOT]),
            streams_opened: AtomicU64::new(0),
            clock_offset_ms: 0,
            clock_warned: AtomicBool::new(false),
        })
    }

    /// The same, refusing streams that would make more than `max_rooms` rooms exist.
    pub fn with_max_rooms(mut self, max_rooms: usize) -> Self {
        self.max_rooms = max_rooms.max(1);
        self
    }

    /// The same, with this instance's clock `offset_ms` off (for tests of clock skew).
    pub fn with_clock_offset(mut self, offset_ms: i64) -> Self {
        self.clock_offset_ms = offset_ms;
        self
    }

    /// The prefix of every presence key (`P` in the module comment).
    fn presence_prefix(&self) -> String {
        format!("{}:presence", self.prefix)
    }
    fn key(&self, name: &str) -> String {
        format!("{}:presence:{name}", self.prefix)
    }
    fn user_key(&self, id: &str) -> String {
        self.key(&format!("id:{id}"))
    }
    fn streams_key(&self, id: &str) -> String {
        self.key(&format!("streams:{id}"))
    }
    fn instance_streams_key(&self, instance: &str) -> String {
        self.key(&format!("conns:{instance}"))
    }
    fn tombstone_key(&self, stream: &StreamId) -> String {
        self.key(&format!("closed:{}", stream.name))
    }

    /// A new stream's id: this instance's, and a number it never gave before.
    pub fn stream_id(&self) -> StreamId {
        let number = self.streams_opened.fetch_add(1, Ordering::Relaxed);
        StreamId { name: format!("{}-{number}", self.instance), binding: Binding::random() }
    }

    /// Decides whether a stream that follows `rooms` may open, as [`super::LocalPresence`]
    /// does for one instance: the identity's refusals, then `--max-rooms`.
    pub async fn open(
        &self,
        stream: &StreamId,
        id: &UserId,
        name: &UserName,
        session: Option<&Session>,
        max_streams_per_user: usize,
        rooms: &[RoomName],
    ) -> Result<Result<ClusterAdmission, OpenError>, ClusterError> {
        let binding = stream.binding;
        let (session_id, session_binding) =
            session.map_or((String::new(), String::new()), |s| (s.id.to_string(), s.binding.to_text()));
        let mut invocation = self.open.prepare_invoke();
        invocation
            .key(self.user_key(id.as_str()))
            .key(self.user_key(if session_id.is_empty() { id.as_str() } else { &session_id }))
            .key(self.instance_streams_key(&self.instance))
            .key(self.streams_key(id.as_str()))
            .key(self.tombstone_key(stream))
            .key(self.key("ids"))
            .key(self.key("rooms"))
            .key(format!("{}:rooms", self.prefix))
            .arg(id.as_str())
            .arg(name.as_str())
            .arg(&session_id)
            .arg(&session_binding)
            .arg(binding.to_text())
            .arg(max_streams_per_user)
            .arg(LOG_MAXLEN)
            .arg(&stream.name)
            .arg(self.max_rooms)
            .arg(self.presence_prefix());
        for room in rooms {
            invocation.arg(room.as_str());
        }
        let mut conn = self.conn.clone();
        let answer: Vec<String> = bounded(invocation.invoke_async(&mut conn)).await?;
        let (outcome, detail) = match answer.as_slice() {
            [outcome, detail] => (outcome.as_str(), detail.as_str()),
            _ => return Err(ClusterError::Protocol(format!("open answered {answer:?}"))),
        };
        let bound_name =
            || UserName::parse(detail).map_err(|_| ClusterError::Protocol(format!("bad name {detail:?}")));
        Ok(match (outcome, detail) {
            ("refused", "held") => Err(OpenError::Refused(Refusal::IdHeldElsewhere)),
            ("refused", "another") => Err(OpenError::Refused(Refusal::SessionHoldsAnotherId)),
            ("refused", "rooms") => Err(OpenError::TooManyRooms),
            ("refused", _) => Err(OpenError::Refused(Refusal::TooManyStreams)),
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
    /// gave up); the departure token when it was the user's last stream in one of its rooms,
    /// or at all. Its user and rooms are those its open recorded.
    pub async fn close(&self, stream: &StreamId) -> Result<Option<u64>, ClusterError> {
        let mut invocation = self.close.prepare_invoke();
        invocation
            .key(self.instance_streams_key(&self.instance))
            .key(self.tombstone_key(stream))
            .arg(&stream.name)
            .arg(TOMBSTONE_TTL.as_millis() as u64)
            .arg(self.presence_prefix());
        let mut conn = self.conn.clone();
        let token: i64 = bounded(invocation.invoke_async(&mut conn)).await?;
        Ok(u64::try_from(token).ok())
    }

    /// Carries out the departures scheduled with `token`, unless the user came back.
    pub async fn expire(&self, id: &UserId, token: u64) -> Result<(), ClusterError> {
        let mut invocation = self.expire.prepare_invoke();
        invocation
            .key(self.user_key(id.as_str()))
            .key(self.streams_key(id.as_str()))
            .arg(id.as_str())
            .arg(token)
            .arg(LOG_MAXLEN)
            .arg(self.presence_prefix());
        let mut conn = self.conn.clone();
        let _: i64 = bounded(invocation.invoke_async(&mut conn)).await?;
        Ok(())
    }

    /// Refreshes this instance's heartbeat and reaps instances silent for longer than
    /// `timeout`, both by Redis's clock; returns the departures to schedule for users they left
    /// with no stream in a room. Carries out departures nobody carried out `backstop` after
    /// they were due to start (see [`HEARTBEAT`]).
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
            .arg(&self.instance)
            .arg(timeout_ms)
            .arg(backstop.as_millis() as u64)
            .arg(self.presence_prefix())
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
                .arg(&instance)
                .arg(timeout_ms)
                .arg(self.presence_prefix());
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

    /// The identities and every room as they stand, as `Join` entries, and the log position
    /// they reflect, read in one step ([`SNAPSHOT`]): the log after that position is exactly
    /// what changed since.
    pub async fn snapshot(&self) -> Result<(LogPosition, Vec<LogEntry>), ClusterError> {
        let mut conn = self.conn.clone();
        let mut invocation = self.snapshot.prepare_invoke();
        invocation
            .key(self.key("log"))
            .key(self.key("ids"))
            .key(self.key("rooms"))
            .arg(self.presence_prefix());
        let reply: Vec<String> = bounded(invocation.invoke_async(&mut conn)).await?;
        let [id, number, members @ ..] = reply.as_slice() else {
            return Err(ClusterError::Protocol(format!("snapshot answered {} fields", reply.len())));
        };
        let position = LogPosition { id: id.clone(), number: number.parse().ok() };
        let entries = members
            .chunks(6)
            .filter_map(|member| match member {
                [kind, room, id, name, binding, no] => {
                    let scope = if kind == "bind" { Some(Scope::Identities) } else { room_scope(room) }?;
                    join_entry(scope, id, name, binding, no)
                }
                _ => None,
            })
            .collect();
        Ok((position, entries))
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

fn room_scope(room: &str) -> Option<Scope> {
    RoomName::parse(room).ok().map(Scope::Room)
}

fn join_entry(scope: Scope, id: &str, name: &str, binding: &str, no: &str) -> Option<LogEntry> {
    Some(LogEntry::Join {
        scope,
        user: User { id: UserId::parse(id).ok()?, name: UserName::parse(name).ok()? },
        binding: Binding::from_text(binding)?,
        join_no: no.parse().ok()?,
    })
}

/// An entry of the log; `None` for one this version does not understand (skipped, not fatal).
fn parse_entry(fields: &[(String, String)]) -> Option<LogEntry> {
    let field = |name: &str| field(fields, name);
    let join = |scope| join_entry(scope, field("id")?, field("name")?, field("binding")?, field("no")?);
    let id = || UserId::parse(field("id")?).ok();
    match field("t")? {
        "bind" => join(Scope::Identities),
        "unbind" => Some(LogEntry::Leave { scope: Scope::Identities, id: id()? }),
        "join" => join(room_scope(field("room")?)?),
        "leave" => Some(LogEntry::Leave { scope: room_scope(field("room")?)?, id: id()? }),
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
