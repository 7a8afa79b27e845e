//! Resource use, read from the kernel: the server's resident memory (`VmRSS` in
//! `/proc/PID/status`) and CPU time (`utime + stime` in `/proc/PID/stat`), and the load
//! tester's own CPU time (`getrusage`). The last one is what says whether a run measured the
//! server or the load tester: a load tester near 100 % of its core is the limit.

use crate::error::LoadError;
use serde::{Deserialize, Serialize};
use std::{fs, time::Duration};
use tokio::time::Instant;

/// The load tester's own CPU time, user and system.
pub fn own_cpu() -> Duration {
    // SAFETY: getrusage writes into the struct it is given and nothing else.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        if libc::getrusage(libc::RUSAGE_SELF, &mut usage) != 0 {
            return Duration::ZERO;
        }
        usage
    };
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, (t.tv_usec as u32) * 1000);
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// Raises this process's open-file limit to its hard limit (ten thousand streams need ten
/// thousand descriptors). Returns the limit now in force.
pub fn raise_open_file_limit() -> u64 {
    // SAFETY: getrlimit/setrlimit read and write the struct they are given.
    unsafe {
        let mut limit = std::mem::zeroed::<libc::rlimit>();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 0;
        }
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur
    }
}

fn proc_error(pid: u32, reason: impl ToString) -> LoadError {
    LoadError::Proc { pid, reason: reason.to_string() }
}

/// Resident memory of a process, in KiB.
pub fn rss_kib(pid: u32) -> Result<u64, LoadError> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| proc_error(pid, e))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| proc_error(pid, "no VmRSS line"))
}

/// CPU time (user + system, all threads) a process has used so far.
pub fn process_cpu(pid: u32) -> Result<Duration, LoadError> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| proc_error(pid, e))?;
    // The command name may hold spaces and parentheses; the fields follow the last ')'.
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    // Fields 14 and 15 of stat(5), counted from the state (field 3) at index 0.
    let ticks = |index: usize| fields.get(index).and_then(|field| field.parse::<u64>().ok());
    let (utime, stime) = ticks(11).zip(ticks(12)).ok_or_else(|| proc_error(pid, "short stat line"))?;
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Ok(Duration::from_micros((utime + stime) * 1_000_000 / per_second))
}

/// How often, so far, a listening socket's accept queue was full when a connection arrived
/// (`TcpExt: ListenOverflows` in `/proc/net/netstat`; the whole network namespace). Each one
/// is a handshake the client must retry, a second later: when it grows while streams open,
/// the server's listen backlog, not its speed, set the connect time.
pub fn listen_overflows() -> Option<u64> {
    let netstat = fs::read_to_string("/proc/net/netstat").ok()?;
    let mut lines = netstat.lines().filter(|line| line.starts_with("TcpExt:"));
    let (names, values) = (lines.next()?, lines.next()?);
    let index = names.split_whitespace().position(|name| name == "ListenOverflows")?;
    values.split_whitespace().nth(index)?.parse().ok()
}

/// The server's processes (nginx has a master and workers): memory and CPU are summed.
#[derive(Debug, Clone, Default)]
pub struct ServerProcesses {
    pids: Vec<u32>,
}

impl ServerProcesses {
    pub fn new(pids: Vec<u32>) -> Self {
        Self { pids }
    }

    pub fn is_empty(&self) -> bool {
        self.pids.is_empty()
    }

    pub fn rss_kib(&self) -> Option<u64> {
        if self.pids.is_empty() {
            return None;
        }
        self.pids.iter().map(|pid| rss_kib(*pid).ok()).sum()
    }

    pub fn cpu(&self) -> Option<Duration> {
        if self.pids.is_empty() {
            return None;
        }
        self.pids.iter().map(|pid| process_cpu(*pid).ok()).sum()
    }
}

/// Windows shorter than this report no server CPU.
const MIN_SERVER_CPU_WINDOW_S: f64 = 0.5;

/// CPU use over a stretch of wall time, started by [`CpuWindow::start`].
pub struct CpuWindow {
    started: Instant,
    own: Duration,
    server: Option<Duration>,
}

/// CPU use over a window, in percent of one core.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct CpuUse {
    pub wall_s: f64,
    pub loadtester_cpu_pct: f64,
    pub server_cpu_pct: Option<f64>,
}

impl CpuWindow {
    pub fn start(server: &ServerProcesses) -> Self {
        Self { started: Instant::now(), own: own_cpu(), server: server.cpu() }
    }

    pub fn finish(&self, server: &ServerProcesses) -> CpuUse {
        let wall = self.started.elapsed().as_secs_f64().max(1e-9);
        let percent = |used: Duration| (used.as_secs_f64() / wall * 1000.0).round() / 10.0;
        CpuUse {
            wall_s: wall,
            loadtester_cpu_pct: percent(own_cpu().saturating_sub(self.own)),
            // The kernel counts a process's CPU time in clock ticks (10 ms): too coarse for a
            // shorter window to say anything.
            server_cpu_pct: (wall >= MIN_SERVER_CPU_WINDOW_S)
                .then(|| self.server.zip(server.cpu()))
                .flatten()
                .map(|(before, after)| percent(after.saturating_sub(before))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_memory_and_cpu_time() {
        let me = std::process::id();
        assert!(rss_kib(me).unwrap() > 0);
        let spin = std::time::Instant::now();
        while spin.elapsed() < Duration::from_millis(30) {}
        assert!(process_cpu(me).unwrap() > Duration::ZERO);
        assert!(own_cpu() > Duration::ZERO);
        assert!(rss_kib(u32::MAX).is_err());
        assert!(listen_overflows().is_some(), "Linux counts accept queue overflows");
    }
}
