//! A real `redis-server` for tests: its own loopback port and folder, AOF with fsync on every
//! write (the durability the README promises), killed by its PID (SIGKILL, like a crash) when
//! stopped or dropped.
//!
//! `redis-server` must be installed (the test command installs it); without it the tests that
//! need it fail, saying so, rather than skip silently.

use std::{
    io::ErrorKind,
    net::TcpListener,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// How long a start may take before the test fails.
const START_PATIENCE: Duration = Duration::from_secs(15);

pub struct RedisProcess {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl RedisProcess {
    /// Starts a server on a free port; another one is tried when the port is taken between
    /// the probe and Redis's bind.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut redis = Self { child: None, port: 0, dir };
        for _ in 0..10 {
            redis.port = free_port();
            if redis.spawn() {
                return redis;
            }
        }
        panic!("redis-server did not start on any of 10 free ports; see {}", redis.log_path());
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn log_path(&self) -> String {
        self.dir.path().join("redis.log").display().to_string()
    }

    /// Runs redis-server on `self.port` until it answers PING; false when it exited (the port
    /// was taken).
    fn spawn(&mut self) -> bool {
        let spawned = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "yes", "--appendfsync", "always"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(["--logfile", &self.log_path()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(error) if error.kind() == ErrorKind::NotFound => panic!(
                "redis-server is not installed (not found on PATH): these tests need a real Redis 7 \
                 (scripts/ensure-tools.sh installs Debian's redis-server)"
            ),
            Err(error) => panic!("cannot run redis-server: {error}"),
        };
        // Ready when this very process answers PING (not merely when something listens on the
        // port: another test's server could).
        let deadline = Instant::now() + START_PATIENCE;
        while !answers_ping(self.port) {
            if child.try_wait().ok().flatten().is_some() {
                return false;
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
                let _ = child.kill();
                let _ = child.wait();
                panic!("redis-server on port {} does not answer PING; its log:\n{log}", self.port);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child = Some(child);
        true
    }

    /// Kills the server (SIGKILL), as a crash or an outage would.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and folder: the AOF brings back what was written.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + START_PATIENCE;
        // The port may linger for a moment after the kill.
        while !self.spawn() {
            assert!(Instant::now() < deadline, "redis-server did not restart on port {}", self.port);
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sends a signal by PID (`STOP` freezes Redis: connections stay open, nothing answers).
    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("redis-server is running").id().to_string();
        let status = Command::new("kill").arg(format!("-{signal}")).arg(&pid).status().expect("run kill");
        assert!(status.success(), "kill -{signal} {pid} failed");
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port that was free a moment ago (bound to 127.0.0.1:0, then released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|listener| listener.local_addr()).expect("free port").port()
}

/// True when a Redis on `port` answers `PING` with `PONG` (not `LOADING`, not nothing).
fn answers_ping(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let mut reply = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok() && stream.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
}
