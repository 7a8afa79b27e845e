//! The load tester's CI smoke run: small sizes against a real server on 127.0.0.1 (started
//! in-process with `server::start`), as a correctness test. Any acknowledged message lost,
//! delivered twice or out of order fails it; so does a join burst whose users do not all end
//! up seeing the full room. A deliberately faulty server checks that the load tester notices.
//! Each test is bounded to a few seconds; nothing waits by sleeping.

use bench::{
    context::RunContext,
    http::Endpoint,
    rooms::RoomLayout,
    scenario::{self, FanoutSettings, Setup},
    target::Target,
    usage::ServerProcesses,
};
use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
    sync::mpsc,
};

/// Long enough for anything these sizes should take; a timeout is a failure.
const PATIENCE: Duration = Duration::from_secs(10);

struct TestServer {
    running: server::RunningServer,
    _data: tempfile::TempDir,
}

/// ssechat with the rate limit out of the way and a room that turns large above 100 users.
async fn start_ssechat() -> TestServer {
    let data = tempfile::tempdir().expect("temp dir");
    let mut config = server::Config::for_tests(data.path().to_path_buf());
    config.rate_burst = 1_000_000;
    config.rate_per_sec = 1_000_000.0;
    // Every simulated user connects from 127.0.0.1: the per-address limits are out of the way,
    // as in scripts/bench.sh.
    config.max_streams_per_addr = 100_000;
    config.new_ids_per_addr_per_min = 1_000_000;
    config.addr_rate_burst = 1_000_000;
    config.addr_rate_per_sec = 1_000_000.0;
    config.large_room_threshold = 100;
    config.users_interval_ms = 100;
    let running = server::start(config).await.expect("server starts");
    TestServer { running, _data: data }
}

fn setup(addr: SocketAddr, target: Target) -> Setup {
    setup_in(addr, target, RoomLayout::new("room".into(), 1, 1))
}

fn setup_in(addr: SocketAddr, target: Target, rooms: RoomLayout) -> Setup {
    let endpoint = Endpoint::parse(&format!("http://{addr}")).expect("a loopback URL");
    Setup {
        context: Arc::new(RunContext::new(vec![endpoint], target, rooms, 100).expect("one server")),
        server: ServerProcesses::new(vec![std::process::id()]),
        connect_timeout: PATIENCE,
        drain_timeout: PATIENCE,
        label: Some("smoke".into()),
        threads: 2,
        // The tests' own runtime: no thread of their own for so few publishers.
        publishing: tokio::runtime::Handle::current(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_of_several_rooms_get_exactly_their_rooms_messages_in_seq_order() {
    let server = start_ssechat().await;
    let rooms = RoomLayout::new("room".into(), 6, 3);
    let setup = setup_in(server.running.local_addr(), Target::Ssechat, rooms);
    let settings = FanoutSettings {
        subscribers: 60,
        publishers: 6,
        rate: None,
        duration: PATIENCE,
        messages: Some(300),
    };
    let report = scenario::fanout(&setup, settings).await;
    assert!(report.passed, "{report}");
    let step = &report.steps[0];
    assert_eq!(step.posts.acknowledged, 300, "{report}");
    // Each publisher posts 50 in its own room; each stream follows 3 of the 6 rooms.
    assert_eq!(step.delivered_events, 60 * 3 * 50, "{report}");
    assert_eq!((step.lost, step.duplicated, step.out_of_order), (0, 0, 0), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_subscribers_get_two_hundred_messages_once_each_and_in_order() {
    let server = start_ssechat().await;
    let setup = setup(server.running.local_addr(), Target::Ssechat);
    let settings = FanoutSettings {
        subscribers: 50,
        publishers: 4,
        rate: None,
        duration: PATIENCE,
        messages: Some(200),
    };
    let report = scenario::fanout(&setup, settings).await;
    assert!(report.passed, "{report}");
    let step = &report.steps[0];
    assert_eq!(step.posts.acknowledged, 200, "{report}");
    assert_eq!(step.delivered_events, 200 * 50, "{report}");
    assert_eq!((step.lost, step.duplicated, step.out_of_order, step.disconnected), (0, 0, 0, 0));
    assert_eq!(step.latency.samples, 200 * 50);
    server.running.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_users_joining_at_once_all_end_up_seeing_everyone() {
    let server = start_ssechat().await;
    let setup = setup(server.running.local_addr(), Target::Ssechat);
    let report = scenario::join_burst(&setup, 300, PATIENCE).await.expect("ssechat has presence");
    assert!(report.passed, "{report}");
    let join = report.join.as_ref().expect("a join report");
    assert_eq!((join.joined, join.converged), (300, 300), "{report}");
    // Above the threshold joins are summarised: far fewer new-user events than 300²/2.
    assert!(join.new_user_events <= 100 * 100, "{report}");
    server.running.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loadtest_binary_passes_and_prints_one_json_line() {
    let server = start_ssechat().await;
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .args(["--url", &format!("http://{}", server.running.local_addr()), "--label", "smoke"])
        .args(["fanout", "--subscribers", "10", "--publishers", "2", "--rate", "400", "--messages", "40"])
        .args(["--duration", "10s"])
        .kill_on_drop(true)
        .output();
    let output =
        tokio::time::timeout(PATIENCE * 2, output).await.expect("loadtest ends").expect("loadtest runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    assert_eq!(report["passed"], true);
    assert_eq!(report["steps"][0]["delivered_events"], 40 * 10, "{stderr}");
    server.running.shutdown().await.expect("clean shutdown");
}

/// A pub/sub server speaking nchan's protocol that mishandles messages on purpose: the 2nd
/// is delivered twice, the 4th after the 5th, the 7th never.
async fn start_faulty_pubsub() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let subscribers: Arc<Mutex<Vec<mpsc::UnboundedSender<Vec<u8>>>>> = Arc::default();
    let published = Arc::new(Mutex::new((0u64, None::<Vec<u8>>)));
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(serve_faulty(socket, Arc::clone(&subscribers), Arc::clone(&published)));
        }
    });
    addr
}

async fn serve_faulty(
    socket: TcpStream,
    subscribers: Arc<Mutex<Vec<mpsc::UnboundedSender<Vec<u8>>>>>,
    published: Arc<Mutex<(u64, Option<Vec<u8>>)>>,
) {
    let mut reader = BufReader::new(socket);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).await.unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).await.unwrap_or(0) == 0 {
                return;
            }
            if header.trim().is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        if request_line.starts_with("GET /sub") {
            let (sender, mut messages) = mpsc::unbounded_channel();
            subscribers.lock().unwrap().push(sender);
            let mut socket = reader.into_inner();
            let head =
                "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
            if socket.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            while let Some(body) = messages.recv().await {
                let event = [b"data: ".as_slice(), &body, b"\n\n"].concat();
                let chunk = [format!("{:x}\r\n", event.len()).as_bytes(), &event, b"\r\n"].concat();
                if socket.write_all(&chunk).await.is_err() {
                    return;
                }
            }
            return;
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).await.is_err() {
            return;
        }
        let deliveries = {
            let mut published = published.lock().unwrap();
            published.0 += 1;
            match published.0 {
                2 => vec![body.clone(), body],
                4 => {
                    published.1 = Some(body);
                    Vec::new()
                }
                5 => vec![body, published.1.take().unwrap_or_default()],
                7 => Vec::new(),
                _ => vec![body],
            }
        };
        for delivery in deliveries {
            for subscriber in subscribers.lock().unwrap().iter() {
                let _ = subscriber.send(delivery.clone());
            }
        }
        let answer = b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n";
        if reader.get_mut().write_all(answer).await.is_err() {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_loses_duplicates_and_reorders_fails_the_run() {
    let addr = start_faulty_pubsub().await;
    let mut setup = setup(addr, Target::Nchan);
    setup.server = ServerProcesses::default();
    // Message 7 never comes: waiting for it is what the drain timeout is for.
    setup.drain_timeout = Duration::from_millis(500);
    let settings =
        FanoutSettings { subscribers: 3, publishers: 1, rate: None, duration: PATIENCE, messages: Some(10) };
    let report = scenario::fanout(&setup, settings).await;
    assert!(!report.passed, "{report}");
    let step = &report.steps[0];
    assert_eq!((step.lost, step.duplicated, step.out_of_order), (3, 3, 3), "{report}");
    for what in ["lost", "duplicated", "out of order"] {
        assert!(report.failures.iter().any(|failure| failure.contains(what)), "{what}: {report}");
    }
}
