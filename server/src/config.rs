//! The server's configuration: one clap struct, the single source of truth. Every option is a
//! flag and an environment variable, with defaults that run the chat on one machine with
//! nothing else installed.

use clap::{Parser, ValueEnum};
use std::{
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    time::Duration,
};

#[derive(Debug, Clone, Parser)]
#[command(name = "server", version, about = "ssechat: a group chat over Server-Sent Events")]
pub struct Config {
    /// Address to listen on. Port 0 picks a free port (the bound address is printed).
    #[arg(long, env = "SSECHAT_ADDR", default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,

    /// Folder with the built site (cargo-leptos output: pkg/, favicon, static files).
    #[arg(long, env = "LEPTOS_SITE_ROOT", default_value = "target/site")]
    pub site_root: PathBuf,

    /// Folder for the message database and the generated session key; created if missing.
    #[arg(long, env = "SSECHAT_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,

    /// Secret that signs session cookies (at least 32 bytes). Instances that share it accept
    /// each other's cookies. Default: a random key kept in DATA_DIR/session.key.
    /// Prefer --session-secret-file on a shared machine: a command line is visible in `ps`.
    #[arg(
        long,
        env = "SSECHAT_SESSION_SECRET",
        hide_env_values = true,
        conflicts_with = "session_secret_file"
    )]
    pub session_secret: Option<String>,

    /// File holding the secret that signs session cookies (its whole content, at least 32
    /// bytes; one trailing newline is ignored). Kept out of the process list, unlike
    /// --session-secret.
    #[arg(long, env = "SSECHAT_SESSION_SECRET_FILE")]
    pub session_secret_file: Option<PathBuf>,

    /// Mark the session cookie `Secure` (browsers then send it over HTTPS only): set it when
    /// the chat is served to browsers through TLS (a proxy in front that terminates it).
    #[arg(long, env = "SSECHAT_COOKIE_SECURE")]
    pub cookie_secure: bool,

    /// Serve `GET /metrics` on this address instead of the public one (which then answers it
    /// 404), so an operator need not expose it to the internet.
    #[arg(long, env = "SSECHAT_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,

    /// Peers whose `X-Forwarded-For` is believed (a reverse proxy in front), comma-separated.
    /// A request from any other peer is counted against its own address, whatever it claims.
    #[arg(long, env = "SSECHAT_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<IpAddr>,

    /// Connections accepted at once; past it a new connection gets 503 at once instead of
    /// waiting in a queue.
    #[arg(long, env = "SSECHAT_MAX_CONNECTIONS", default_value_t = 60_000, value_parser = at_least_one)]
    pub max_connections: usize,

    /// Open event streams per client address (a whole office behind one NAT shares one).
    #[arg(long, env = "SSECHAT_MAX_STREAMS_PER_ADDR", default_value_t = 512, value_parser = at_least_one)]
    pub max_streams_per_addr: usize,

    /// New ids a client address may bind per minute (a burst of this many, then refilled
    /// evenly over the minute): ids are picked by clients, so without it one client could
    /// take every stream slot, or renew its post rate, with fresh ids.
    #[arg(long, env = "SSECHAT_NEW_IDS_PER_ADDR_PER_MIN", default_value_t = 120, value_parser = clap::value_parser!(u32).range(1..))]
    pub new_ids_per_addr_per_min: u32,

    /// Messages sent to a newcomer that has no last event id.
    #[arg(long, env = "SSECHAT_HISTORY", default_value_t = 50)]
    pub history: usize,

    /// Messages kept in the store; older ones are deleted (replay past them is a history-gap).
    #[arg(long, env = "SSECHAT_RETENTION", default_value_t = 10_000)]
    pub retention: u64,

    /// How long a user whose last stream closed stays in the room (a reload is no leave).
    #[arg(long, env = "SSECHAT_LEAVE_GRACE_MS", default_value_t = 3_000)]
    pub leave_grace_ms: u64,

    /// At most one `users` repair snapshot per stream per interval.
    #[arg(long, env = "SSECHAT_USERS_INTERVAL_MS", default_value_t = 2_000)]
    pub users_interval_ms: u64,

    /// A `: keep-alive` comment after this much silence on a stream.
    #[arg(long, env = "SSECHAT_KEEPALIVE_MS", default_value_t = 15_000)]
    pub keepalive_ms: u64,

    /// The `retry:` hint sent at the start of every stream.
    #[arg(long, env = "SSECHAT_RETRY_MS", default_value_t = 1_000)]
    pub retry_ms: u64,

    /// Open streams in total; past it, 503 with Retry-After.
    #[arg(long, env = "SSECHAT_MAX_STREAMS", default_value_t = 50_000)]
    pub max_streams: usize,

    /// Open streams per user; past it, 503 with Retry-After.
    #[arg(long, env = "SSECHAT_MAX_STREAMS_PER_USER", default_value_t = 8)]
    pub max_streams_per_user: usize,

    /// Rooms that may exist at once, `general` included; a stream whose rooms would make one
    /// more is refused (409 `too many rooms`).
    #[arg(long, env = "SSECHAT_MAX_ROOMS", default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_rooms: u64,

    /// Messages an author may send at once before the rate applies.
    #[arg(long, env = "SSECHAT_RATE_BURST", default_value_t = 10)]
    pub rate_burst: u32,

    /// Messages per second an author may send in the long run.
    #[arg(long, env = "SSECHAT_RATE_PER_SEC", default_value_t = 5.0, value_parser = positive_rate)]
    pub rate_per_sec: f64,

    /// Messages one client address may send at once, all its users together, before
    /// --addr-rate-per-sec applies: with fresh ids a client could otherwise multiply the
    /// per-author rate.
    #[arg(long, env = "SSECHAT_ADDR_RATE_BURST", default_value_t = 300)]
    pub addr_rate_burst: u32,

    /// Messages per second one client address may send in the long run (an office behind one
    /// NAT shares it).
    #[arg(long, env = "SSECHAT_ADDR_RATE_PER_SEC", default_value_t = 100.0, value_parser = positive_rate)]
    pub addr_rate_per_sec: f64,

    /// Largest accepted `POST /message` body, in bytes.
    #[arg(long, env = "SSECHAT_MAX_BODY_BYTES", default_value_t = 16 * 1024)]
    pub max_body_bytes: usize,

    /// Events a stream may fall behind before it is dropped as a slow client.
    #[arg(long, env = "SSECHAT_STREAM_BUFFER", default_value_t = 4_096)]
    pub stream_buffer: usize,

    /// Above this many users the room is large: joins and leaves are summarised in one
    /// `presence` event per interval instead of one event per change to everyone.
    #[arg(long, env = "SSECHAT_LARGE_ROOM_THRESHOLD", default_value_t = 1_000)]
    pub large_room_threshold: usize,

    /// A client whose socket accepts no bytes for this long is disconnected (it stopped
    /// reading); it catches up by replay when it reconnects.
    #[arg(long, env = "SSECHAT_SLOW_CLIENT_TIMEOUT_MS", default_value_t = 5_000)]
    pub slow_client_timeout_ms: u64,

    /// Redis to share one room, one message sequence and replay with every instance that uses
    /// the same URL and session secret (e.g. redis://127.0.0.1:6379). Without it, messages
    /// stay in SQLite under DATA_DIR and the room in this process.
    #[arg(long, env = "SSECHAT_REDIS_URL")]
    pub redis_url: Option<String>,

    /// Prefix of every Redis key, so several chats can share one Redis.
    #[arg(long, env = "SSECHAT_REDIS_PREFIX", default_value = "ssechat")]
    pub redis_prefix: String,

    /// With Redis: an instance that has not beaten its heartbeat for this long is taken for
    /// dead, and its users leave (after the grace period) everywhere.
    #[arg(long, env = "SSECHAT_INSTANCE_TIMEOUT_MS", default_value_t = 5_000)]
    pub instance_timeout_ms: u64,

    /// Log format on stderr.
    #[arg(long, env = "SSECHAT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
}

/// A limit of 0 would refuse everyone: not a limit but an outage.
fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(value) => Ok(value),
        Err(_) => Err(format!("{text:?} is not a whole number")),
    }
}

/// A rate must refill: with 0 (or less, or not a number) a client over its burst could never
/// be told when to retry.
fn positive_rate(text: &str) -> Result<f64, String> {
    let rate: f64 = text.parse().map_err(|_| format!("{text:?} is not a number"))?;
    if rate.is_finite() && rate >= MIN_RATE_PER_SEC {
        Ok(rate)
    } else {
        Err(format!("must be at least {MIN_RATE_PER_SEC} messages per second (a finite number)"))
    }
}

/// The slowest rate accepted: one message a day.
const MIN_RATE_PER_SEC: f64 = 1.0 / 86_400.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

impl Config {
    pub fn leave_grace(&self) -> Duration {
        Duration::from_millis(self.leave_grace_ms)
    }
    pub fn users_interval(&self) -> Duration {
        Duration::from_millis(self.users_interval_ms.max(1))
    }
    pub fn keepalive(&self) -> Duration {
        Duration::from_millis(self.keepalive_ms.max(1))
    }

    /// The defaults, with the given data folder: what tests start from.
    pub fn for_tests(data_dir: PathBuf) -> Self {
        let mut config = Self::parse_from(["server"]);
        config.addr = SocketAddr::from(([127, 0, 0, 1], 0));
        config.data_dir = data_dir;
        // Every test client is 127.0.0.1: the message rate per address would otherwise be
        // shared by every user of a test. Tests of that limit set it themselves.
        config.addr_rate_burst = 1_000_000;
        config.addr_rate_per_sec = 1_000_000.0;
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_cli_definition_is_consistent() {
        Config::command().debug_assert();
    }

    #[test]
    fn defaults_follow_the_protocol() {
        let config = Config::parse_from(["server"]);
        assert_eq!(config.history, 50);
        assert_eq!(config.leave_grace(), Duration::from_secs(3));
        assert_eq!(config.users_interval(), Duration::from_secs(2));
        assert_eq!(config.keepalive(), Duration::from_secs(15));
        assert_eq!((config.max_streams, config.max_streams_per_user), (50_000, 8));
        assert_eq!((config.rate_burst, config.rate_per_sec), (10, 5.0));
        assert_eq!(config.max_body_bytes, 16 * 1024);
    }

    #[test]
    fn a_rate_that_never_refills_is_refused_at_start_with_a_reason() {
        for bad in ["0", "-1", "NaN", "inf", "0.000001", "fast"] {
            let error =
                Config::try_parse_from(["server".into(), format!("--rate-per-sec={bad}")]).expect_err(bad);
            assert!(error.to_string().contains("--rate-per-sec"), "{bad}: {error}");
        }
        let config =
            Config::try_parse_from(["server", "--rate-per-sec", "0.5"]).expect("a slow rate is fine");
        assert_eq!(config.rate_per_sec, 0.5);
    }

    #[test]
    fn the_secret_comes_from_the_command_line_or_a_file_not_both() {
        let both = ["server", "--session-secret", &"s".repeat(32), "--session-secret-file", "/k"];
        assert!(Config::try_parse_from(both).is_err());
    }
}
