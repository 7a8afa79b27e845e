//! One room shared by every instance on one Redis.
//!
//! Who may hold an `id`, how many streams each user has on each instance, and when a user joins
//! or leaves are decided in Redis, atomically, by the Lua scripts below: the same rules as
//! [`super::room::Room`] decides alone on one instance. Each decision that changes membership
//! appends a `join` or `leave` entry to one Redis Stream, the membership log. Every instance
//! tails that log ([`run_mirror`]) and applies it, in log order, to its own [`Room`], which
//! then announces each change to that instance's streams exactly as a single server would: the
//! same log in the same order gives the same `new-user`, `user-leave`, `users` and `presence`
//! events everywhere. A tailer that loses Redis resumes from the last entry it applied, so it
//! skips nothing and applies nothing twice (applying is idempotent besides).
//!
//! An instance that dies without closing its streams (`kill -9`) stops refreshing its heartbeat;
//! any live instance then removes that instance's stream counts, and users left with none leave
//! after the usual grace period: within `instance_timeout + leave_grace` of the death.

use super::{
    Hub,
    room::{JoinNo, Refusal, Room},
};
use crate::session::{Binding, Session};
use app::protocol::{User, UserId, UserName};
use redis::{Script, aio::ConnectionManager, aio::MultiplexedConnection};
use std::{
    sync::{Arc, atomic::Ordering},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

/// Longest any single Redis call may take before the caller is told Redis is unavailable.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one read of the membership log blocks waiting for entries.
const LOG_BLOCK: Duration = Duration::from_millis(1_000);
/// Entries kept in the membership log; a mirror further behind than this re-reads the room.
const LOG_MAXLEN: usize = 100_000;

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

/// Admits a stream: `KEYS` user hash, the session's user hash, this instance's counts, the
/// log, the join counter, the room set; `ARGV` id, name, session id, session binding, new
/// binding, max streams per user.
const OPEN: &str = r#"
local held = false
if ARGV[3] ~= '' and redis.call('HGET', KEYS[2], 'binding') == ARGV[4] then held = true end
if redis.call('EXISTS', KEYS[1]) == 1 then
  if not (held and ARGV[3] == ARGV[1]) then return {'refused', 'held'} end
  if tonumber(redis.call('HGET', KEYS[1], 'conns')) >= tonumber(ARGV[6]) then return {'refused', 'full'} end
  redis.call('HINCRBY', KEYS[1], 'conns', 1)
  redis.call('HINCRBY', KEYS[1], 'token', 1)
  redis.call('HINCRBY', KEYS[3], ARGV[1], 1)
  return {'ok', redis.call('HGET', KEYS[1], 'name')}
end
if held then return {'refused', 'another'} end
if tonumber(ARGV[6]) < 1 then return {'refused', 'full'} end
local no = redis.call('INCR', KEYS[5])
redis.call('HSET', KEYS[1], 'name', ARGV[2], 'binding', ARGV[5], 'conns', 1, 'token', 0, 'no', no)
redis.call('HINCRBY', KEYS[3], ARGV[1], 1)
redis.call('ZADD', KEYS[6], no, ARGV[1])
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[7], '*', 't', 'join', 'id', ARGV[1], 'name', ARGV[2], 'binding', ARGV[5], 'no', no)
return {'joined', ARGV[2]}
"#;

/// Records a closed stream; returns the leave token when it was the user's last, else -1.
/// `KEYS` user hash, this instance's counts; `ARGV` id.
const CLOSE: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local mine = redis.call('HINCRBY', KEYS[2], ARGV[1], -1)
if mine <= 0 then redis.call('HDEL', KEYS[2], ARGV[1]) end
local left = redis.call('HINCRBY', KEYS[1], 'conns', -1)
if left > 0 then return -1 end
redis.call('HSET', KEYS[1], 'conns', 0)
return redis.call('HINCRBY', KEYS[1], 'token', 1)
"#;

/// Carries out a departure unless the user came back. `KEYS` user hash, log, room set;
/// `ARGV` id, token.
const EXPIRE: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if tonumber(redis.call('HGET', KEYS[1], 'conns')) > 0 then return 0 end
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[2] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 't', 'leave', 'id', ARGV[1])
return 1
"#;

/// Removes a dead instance's stream counts; returns `id, token` pairs of users left with no
/// stream. `KEYS` instances hash, the dead instance's counts; `ARGV` instance, deadline (ms),
/// user key prefix.
const REAP: &str = r#"
local beat = redis.call('HGET', KEYS[1], ARGV[1])
if not beat or tonumber(beat) >= tonumber(ARGV[2]) then return {} end
local counts = redis.call('HGETALL', KEYS[2])
local orphaned = {}
for i = 1, #counts, 2 do
  local key = ARGV[3] .. counts[i]
  if redis.call('EXISTS', key) == 1 then
    local left = redis.call('HINCRBY', key, 'conns', -tonumber(counts[i + 1]))
    if left <= 0 then
      redis.call('HSET', key, 'conns', 0)
      table.insert(orphaned, counts[i])
      table.insert(orphaned, tostring(redis.call('HINCRBY', key, 'token', 1)))
    end
  end
end
redis.call('DEL', KEYS[2])
redis.call('HDEL', KEYS[1], ARGV[1])
return orphaned
"#;

/// A stream entry as Redis returns it: its id and its field-value pairs.
type RawEntry = (String, Vec<(String, String)>);

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
    reap: Script,
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
            close: Script::new(CLOSE),
            expire: Script::new(EXPIRE),
            reap: Script::new(REAP),
        })
    }

    fn key(&self, name: &str) -> String {
        format!("{}:{name}", self.prefix)
    }
    fn user_key(&self, id: &str) -> String {
        format!("{}:user:{id}", self.prefix)
    }
    fn counts_key(&self, instance: &str) -> String {
        format!("{}:conns:{instance}", self.prefix)
    }

    /// Decides whether a stream may open, as [`Room::open_stream`] does for one instance.
    pub async fn open(
        &self,
        id: &UserId,
        name: &UserName,
        session: Option<&Session>,
        max_streams_per_user: usize,
    ) -> Result<Result<ClusterAdmission, Refusal>, ClusterError> {
        let binding = Binding::random();
        let (session_id, session_binding) =
            session.map_or((String::new(), String::new()), |s| (s.id.to_string(), s.binding.to_text()));
        let mut invocation = self.open.prepare_invoke();
        invocation
            .key(self.user_key(id.as_str()))
            .key(self.user_key(if session_id.is_empty() { id.as_str() } else { &session_id }))
            .key(self.counts_key(&self.instance))
            .key(self.key("log"))
            .key(self.key("joins"))
            .key(self.key("room"))
            .arg(id.as_str())
            .arg(name.as_str())
            .arg(&session_id)
            .arg(&session_binding)
            .arg(binding.to_text())
            .arg(max_streams_per_user)
            .arg(LOG_MAXLEN);
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

    /// Records a closed stream; the leave token when it was the user's last.
    pub async fn close(&self, id: &UserId) -> Result<Option<u64>, ClusterError> {
        let mut invocation = self.close.prepare_invoke();
        invocation.key(self.user_key(id.as_str())).key(self.counts_key(&self.instance)).arg(id.as_str());
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
            .arg(id.as_str())
            .arg(token)
            .arg(LOG_MAXLEN);
        let mut conn = self.conn.clone();
        let _: i64 = bounded(invocation.invoke_async(&mut conn)).await?;
        Ok(())
    }

    /// Refreshes this instance's heartbeat and reaps instances silent for longer than
    /// `timeout`; returns the departures to schedule for users they left with no stream.
    pub async fn heartbeat(&self, timeout: Duration) -> Result<Vec<(UserId, u64)>, ClusterError> {
        let mut conn = self.conn.clone();
        let instances = self.key("instances");
        let now = now_ms();
        let _: () =
            bounded(redis::cmd("HSET").arg(&instances).arg(&self.instance).arg(now).query_async(&mut conn))
                .await?;
        let beats: Vec<(String, u64)> =
            bounded(redis::cmd("HGETALL").arg(&instances).query_async(&mut conn)).await?;
        let deadline = now.saturating_sub(timeout.as_millis() as u64);
        let mut orphaned = Vec::new();
        for (instance, beat) in beats {
            if beat >= deadline || instance == self.instance {
                continue;
            }
            tracing::warn!(%instance, "an instance stopped beating; removing its streams");
            let mut invocation = self.reap.prepare_invoke();
            invocation
                .key(&instances)
                .key(self.counts_key(&instance))
                .arg(&instance)
                .arg(deadline)
                .arg(format!("{}:user:", self.prefix));
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

    /// A dedicated connection for blocking reads of the log.
    pub async fn log_reader(&self) -> Result<MultiplexedConnection, ClusterError> {
        bounded(self.client.get_multiplexed_async_connection()).await
    }

    /// The room as it stands, and the log position it reflects: read the position first, so
    /// that entries racing with the read are applied again (harmlessly) rather than missed.
    pub async fn snapshot(&self) -> Result<(String, Vec<LogEntry>), ClusterError> {
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
        let position = newest.first().map_or_else(|| "0-0".to_owned(), |(id, _)| id.clone());
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
        after: &str,
    ) -> Result<Vec<(String, Option<LogEntry>)>, ClusterError> {
        let reply: Option<Vec<(String, Vec<RawEntry>)>> = tokio::time::timeout(
            LOG_BLOCK + CALL_TIMEOUT,
            redis::cmd("XREAD")
                .arg("COUNT")
                .arg(1000)
                .arg("BLOCK")
                .arg(LOG_BLOCK.as_millis() as u64)
                .arg("STREAMS")
                .arg(self.key("log"))
                .arg(after)
                .query_async(conn),
        )
        .await
        .map_err(|_| ClusterError::Timeout(LOG_BLOCK + CALL_TIMEOUT))??;
        let entries = reply.into_iter().flatten().flat_map(|(_, entries)| entries);
        Ok(entries.map(|(id, fields)| (id, parse_entry(&fields))).collect())
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
    let field = |name: &str| fields.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str());
    match field("t")? {
        "join" => join_entry(field("id")?, field("name")?, field("binding")?, field("no")?),
        "leave" => Some(LogEntry::Leave { id: UserId::parse(field("id")?).ok()? }),
        _ => None,
    }
}

/// Applies one log entry to this instance's room; what the hub must announce.
pub(super) fn apply(room: &mut Room, entry: LogEntry) -> Option<(User, super::room::Announce, bool)> {
    match entry {
        LogEntry::Join { user, binding, join_no } => {
            let announce = room.apply_join(user.clone(), binding, join_no);
            Some((user, announce, true))
        }
        LogEntry::Leave { id } => room.apply_leave(&id).map(|(user, announce)| (user, announce, false)),
    }
}

/// Keeps this instance's room a mirror of the shared one: reads the room once, then applies
/// the membership log in order, resuming from the last applied entry after any failure.
pub(super) async fn run_mirror(hub: Hub, cluster: Arc<ClusterPresence>) {
    let shutdown = hub.inner.shutdown.clone();
    let mut position: Option<String> = None;
    let mut reader: Option<MultiplexedConnection> = None;
    let mut backoff = RETRY_FIRST;
    while !shutdown.is_cancelled() {
        let step = async {
            if reader.is_none() {
                reader = Some(cluster.log_reader().await?);
            }
            if position.is_none() {
                let (at, members) = cluster.snapshot().await?;
                hub.apply_log(members);
                position = Some(at);
            }
            if let (Some(conn), Some(after)) = (reader.as_mut(), position.as_mut()) {
                let entries = cluster.read_log(conn, after).await?;
                if let Some((last, _)) = entries.last() {
                    after.clone_from(last);
                }
                hub.apply_log(entries.into_iter().filter_map(|(_, entry)| entry).collect());
            }
            Ok::<(), ClusterError>(())
        };
        let result = tokio::select! {
            () = shutdown.cancelled() => return,
            result = step => result,
        };
        match result {
            Ok(()) => backoff = RETRY_FIRST,
            Err(error) => {
                hub.inner.metrics.redis_error();
                tracing::warn!(%error, "reading the shared room failed; retrying");
                reader = None;
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(RETRY_MAX);
            }
        }
    }
}

/// Tells the other instances this one is alive, and reaps the ones that are not.
pub(super) async fn run_heartbeat(hub: Hub, cluster: Arc<ClusterPresence>) {
    let timeout = hub.inner.config.instance_timeout;
    let mut ticks = tokio::time::interval((timeout / 3).max(Duration::from_millis(50)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let shutdown = hub.inner.shutdown.clone();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        match cluster.heartbeat(timeout).await {
            Ok(orphaned) => {
                if !hub.inner.cluster_healthy.swap(true, Ordering::Relaxed) {
                    tracing::info!("the shared room is reachable again");
                }
                for (id, token) in orphaned {
                    let (hub, cluster) = (hub.clone(), Arc::clone(&cluster));
                    tokio::spawn(async move {
                        tokio::time::sleep(hub.inner.config.leave_grace).await;
                        retry(&hub, || cluster.expire(&id, token)).await;
                    });
                }
            }
            Err(error) => {
                hub.inner.metrics.redis_error();
                if hub.inner.cluster_healthy.swap(false, Ordering::Relaxed) {
                    tracing::error!(%error, "the shared room is unreachable");
                }
            }
        }
    }
}

const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(2);
/// Attempts before a change of the shared room is given up (about a minute of outage); the
/// heartbeat reaper is the backstop for what is given up.
const RETRY_ATTEMPTS: usize = 40;

/// Runs `call` until it succeeds, with backoff, through a Redis outage of about a minute.
pub(super) async fn retry<T, F, Fut>(hub: &Hub, mut call: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ClusterError>>,
{
    let mut wait = RETRY_FIRST;
    for _ in 0..RETRY_ATTEMPTS {
        match call().await {
            Ok(value) => return Some(value),
            Err(error) => {
                hub.inner.metrics.redis_error();
                tracing::debug!(%error, "a change of the shared room failed; retrying");
            }
        }
        tokio::select! {
            () = hub.inner.shutdown.cancelled() => return None,
            () = tokio::time::sleep(wait) => {}
        }
        wait = (wait * 2).min(RETRY_MAX);
    }
    tracing::warn!("gave up recording a change of the shared room");
    None
}
