//! `bench-tool`: the small jobs `scripts/bench.sh` needs done reliably, kept out of bash.
//!
//! - `free-port`: prints a loopback port nothing listens on, below the kernel's ephemeral
//!   range (a peer that binds a port in that range can collide with the load tester's own
//!   outgoing connections).
//! - `wait-ready --addr 127.0.0.1:PORT`: returns once the port accepts connections.
//! - `render --results FILE ...`: writes BENCHMARKS.md from the load tester's JSON lines.

use bench::render::{self, RunInfo};
use clap::{Parser, Subcommand};
use std::{
    fs,
    net::{SocketAddr, TcpListener, TcpStream},
    path::PathBuf,
    process::ExitCode,
    time::{Duration, Instant},
};

#[derive(Debug, Parser)]
#[command(name = "bench-tool", about = "Helpers for scripts/bench.sh")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Prints a free loopback port below the ephemeral range.
    FreePort,
    /// Waits until a TCP port accepts connections.
    WaitReady {
        #[arg(long)]
        addr: SocketAddr,
        #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
    /// Renders BENCHMARKS.md from a results file (one JSON line per run).
    Render {
        #[arg(long)]
        results: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        date: String,
        /// A line about the machine; repeat.
        #[arg(long)]
        machine: Vec<String>,
        /// A line about a server's or tool's version; repeat.
        #[arg(long)]
        version: Vec<String>,
        /// A file with the commands that were run, one per line.
        #[arg(long)]
        commands: Option<PathBuf>,
        /// A file whose text goes between the notes markers.
        #[arg(long)]
        notes: Option<PathBuf>,
        /// A file naming the runs that started while other work was running, one per line
        /// (`label/target (processes)`).
        #[arg(long)]
        disturbed: Option<PathBuf>,
        #[arg(long)]
        quick: bool,
    },
}

/// The first port of the kernel's ephemeral range (where it picks outgoing ports).
fn ephemeral_start() -> u16 {
    fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768)
}

fn free_port() -> Option<u16> {
    let end = ephemeral_start().max(10_001);
    // Spread the starting point so concurrent runs rarely race for the same port.
    let start = 10_000 + (std::process::id() as u16 % (end - 10_000));
    (start..end).chain(10_000..start).find(|port| TcpListener::bind(("127.0.0.1", *port)).is_ok())
}

fn wait_ready(addr: SocketAddr, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::FreePort => match free_port() {
            Some(port) => {
                println!("{port}");
                ExitCode::SUCCESS
            }
            None => {
                eprintln!("bench-tool: no free loopback port below the ephemeral range");
                ExitCode::FAILURE
            }
        },
        Command::WaitReady { addr, timeout } => {
            if wait_ready(addr, timeout) {
                ExitCode::SUCCESS
            } else {
                eprintln!("bench-tool: nothing accepted connections on {addr} within {timeout:?}");
                ExitCode::FAILURE
            }
        }
        Command::Render { results, out, date, machine, version, commands, notes, disturbed, quick } => {
            let read = |path: &PathBuf| {
                fs::read_to_string(path).map_err(|error| format!("{}: {error}", path.display()))
            };
            let rendered = (|| -> Result<String, String> {
                let results = render::parse_results(&read(&results)?).map_err(|error| error.to_string())?;
                let info = RunInfo {
                    date,
                    machine,
                    versions: version,
                    commands: match &commands {
                        Some(path) => read(path)?.lines().map(str::to_owned).collect(),
                        None => Vec::new(),
                    },
                    quick,
                    notes: notes.as_ref().map(read).transpose()?,
                    disturbed: match &disturbed {
                        Some(path) => read(path)?.lines().map(str::to_owned).collect(),
                        None => Vec::new(),
                    },
                };
                Ok(render::render(&results, &info))
            })();
            match rendered
                .and_then(|page| fs::write(&out, page).map_err(|error| format!("{}: {error}", out.display())))
            {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("bench-tool: {error}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
