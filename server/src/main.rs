//! `server`: parses the configuration, starts ssechat, and stops it cleanly on SIGTERM or
//! Ctrl-C (exit 0). Run `server --help` for every option.

use clap::Parser;
use server::{Config, config::LogFormat};
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

/// mimalloc instead of glibc's malloc: the hot paths (a post's request, answer and frames; a
/// stream's wake-ups) allocate and free small blocks on one thread, where glibc's bins and
/// consolidation showed in the 16-publisher profile. It gives more durable posts/s and less CPU
/// per fan-out round for slightly more memory per idle stream (figures in BENCHMARKS.md's
/// notes).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    no_transparent_huge_pages();
    match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime.block_on(serve()),
        Err(error) => {
            eprintln!("cannot start the runtime: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Turns transparent huge pages off for this process, before the runtime allocates. mimalloc
/// asks the kernel for huge pages (`madvise`), and then the first touch of any 4 KiB of a
/// region makes all 2 MiB of it resident, zeroed: 10,000 idle streams, whose small blocks are
/// spread over many regions, took 8.4 KiB each with them and 7.6 KiB without, and connected
/// faster, since zeroing fresh huge pages was 18 % of the connect profile (BENCHMARKS.md's
/// notes). The hot paths reuse warm memory either way.
fn no_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: PR_SET_THP_DISABLE takes plain integers and touches no memory of ours. On a
        // kernel without it the call fails, and huge pages stay as they were.
        let _ = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    }
}

async fn serve() -> ExitCode {
    let config = Config::parse();
    init_logging(config.log_format);
    let server = match server::start(config).await {
        Ok(server) => server,
        Err(error) => {
            tracing::error!(%error, "cannot start");
            return ExitCode::FAILURE;
        }
    };
    // Signal handlers are installed before the address is announced: whoever reads that line
    // may send SIGTERM at once, and must get a clean shutdown, not the default death.
    let signal = shutdown_signal();
    // The one line on stdout: scripts and tests read the bound address from it.
    println!("ssechat listening on http://{}", server.local_addr());
    if let Some(addr) = server.metrics_addr() {
        tracing::info!("metrics on http://{addr}/metrics");
    }
    let shutdown = server.shutdown_token();
    tokio::spawn(async move {
        signal.await;
        tracing::info!("shutting down");
        shutdown.cancel();
    });
    match server.stopped().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "server failed");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Resolves on SIGTERM or Ctrl-C (SIGINT). The handlers are registered when this is called,
/// not when the future is first polled.
fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let terminate = signal(SignalKind::terminate());
        let interrupt = signal(SignalKind::interrupt());
        async move {
            match (terminate, interrupt) {
                (Ok(mut terminate), Ok(mut interrupt)) => {
                    tokio::select! {
                        _ = terminate.recv() => {}
                        _ = interrupt.recv() => {}
                    }
                }
                // Without handlers the default actions stop the process anyway.
                _ => std::future::pending::<()>().await,
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
