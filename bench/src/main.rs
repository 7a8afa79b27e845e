//! `loadtest`: drives load against ssechat or a peer and reports what happened.
//!
//! ```sh
//! taskset -c 1 target/release/loadtest --url http://127.0.0.1:3000 --server-pid "$PID" \
//!     fanout --subscribers 1000 --rate 100 --duration 30s
//! ```
//!
//! The human summary goes to stderr, one JSON line to stdout. Exit status: 0 passed, 1 the
//! run failed (see the summary), 2 the run could not be made.

use bench::{cli::Cli, usage};
use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    usage::raise_open_file_limit();
    let threads = cli.common.threads.max(1);
    let runtime = if threads == 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build()
    };
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("loadtest: cannot start the runtime: {error}");
            return ExitCode::from(2);
        }
    };
    // Publishers run on a thread of their own, so that a post's answer and a message's send
    // time are taken when they happen, not when the thread reading thousands of streams gets
    // round to them (behind a few thousand readable streams, that was tens of milliseconds).
    let publishing = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("loadtest-publishers")
        .enable_all()
        .build()
    {
        Ok(publishing) => publishing,
        Err(error) => {
            eprintln!("loadtest: cannot start the publishers' runtime: {error}");
            return ExitCode::from(2);
        }
    };
    let outcome = runtime.block_on(cli.run(publishing.handle().clone()));
    publishing.shutdown_background();
    match outcome {
        Ok(report) => {
            eprint!("{report}");
            println!("{}", report.to_json_line());
            if report.passed { ExitCode::SUCCESS } else { ExitCode::FAILURE }
        }
        Err(error) => {
            eprintln!("loadtest: {error}");
            ExitCode::from(2)
        }
    }
}
