//! No message is lost: history on join, replay after a last event id, history gaps, slow
//! clients, and a `kill -9` of the real binary.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn seqs(events: &[SseEvent]) -> Vec<u64> {
    events.iter().map(|e| e.json()["seq"].as_u64().unwrap()).collect()
}

/// Reads events until `n` messages have arrived.
async fn messages(client: &mut SseClient, n: usize) -> Vec<SseEvent> {
    let mut out = Vec::new();
    while out.len() < n {
        out.push(client.next_named("message").await);
    }
    out
}

#[tokio::test]
async fn a_newcomer_gets_the_last_messages_as_history() {
    let server = TestServer::start_with(|config| config.history = 3).await;
    let (_ann, cookie) = join(&server, "ann", "Ann").await;
    for i in 1..=5 {
        say(&server, &cookie, &format!("m{i}")).await;
    }
    let (mut bob, _) = join(&server, "bob", "Bob").await;
    let history = messages(&mut bob, 3).await;
    assert_eq!(seqs(&history), [3, 4, 5]);
    assert_eq!(history[0].id.as_deref(), Some("3"));
}

#[tokio::test]
async fn a_reconnect_with_last_event_id_gets_exactly_what_it_missed() {
    let server = TestServer::start_with(|config| config.leave_grace_ms = 60_000).await;
    let (_ann, ann_cookie) = join(&server, "ann", "Ann").await;
    let (mut bob, bob_cookie) = join(&server, "bob", "Bob").await;
    say(&server, &ann_cookie, "one").await;
    let seen = bob.next_named("message").await;
    drop(bob);
    for text in ["two", "three"] {
        say(&server, &ann_cookie, text).await;
    }

    // First by the header, as a browser's own reconnect does; then by the query parameter, as
    // a client reconnecting by hand does (which has also missed "four" by then).
    for (by_header, owed) in [(true, vec!["two", "three"]), (false, vec!["two", "three", "four"])] {
        let mut connect = Connect::new("bob", "Bob").cookie(Some(&bob_cookie));
        let last = seen.id.clone().unwrap();
        if by_header {
            connect.last_event_id_header = Some(&last);
        } else {
            connect.last_event_id_query = Some(&last);
        }
        let mut bob = SseClient::connect(&server, connect).await;
        assert_eq!(bob.next_event().await.event, "all-users");
        let missed = messages(&mut bob, owed.len()).await;
        assert_eq!(missed.iter().map(|e| e.json()["message"].clone()).collect::<Vec<_>>(), owed);
        // Nothing else was owed: the next message is a new one.
        let fresh = say(&server, &ann_cookie, if by_header { "four" } else { "five" }).await;
        assert_eq!(bob.next_named("message").await.json(), fresh);
    }
}

#[tokio::test]
async fn the_last_event_id_header_wins_over_the_query() {
    let server = TestServer::start().await;
    let (_ann, cookie) = join(&server, "ann", "Ann").await;
    for i in 1..=3 {
        say(&server, &cookie, &format!("m{i}")).await;
    }
    let mut connect = Connect::new("bob", "Bob");
    connect.last_event_id_header = Some("2");
    connect.last_event_id_query = Some("0");
    let mut bob = SseClient::connect(&server, connect).await;
    assert_eq!(seqs(&messages(&mut bob, 1).await), [3]);
}

#[tokio::test]
async fn replay_older_than_retention_starts_with_a_history_gap() {
    let server = TestServer::start_with(|config| config.retention = 3).await;
    let (_ann, cookie) = join(&server, "ann", "Ann").await;
    for i in 1..=6 {
        say(&server, &cookie, &format!("m{i}")).await;
    }
    let mut connect = Connect::new("bob", "Bob");
    connect.last_event_id_query = Some("1");
    let mut bob = SseClient::connect(&server, connect).await;
    assert_eq!(bob.next_event().await.event, "all-users");
    let gap = bob.next_event().await;
    assert_eq!((gap.event.as_str(), gap.json(), gap.id), ("history-gap", json!({"from": 4}), None));
    assert_eq!(seqs(&messages(&mut bob, 3).await), [4, 5, 6]);

    // No gap when nothing was lost.
    let mut connect = Connect::new("cleo", "Cleo");
    connect.last_event_id_query = Some("4");
    let mut cleo = SseClient::connect(&server, connect).await;
    assert_eq!(cleo.next_event().await.event, "all-users");
    assert_eq!(cleo.next_event().await.json()["seq"], 5);
}

#[tokio::test]
async fn messages_published_during_replay_arrive_once_and_in_order() {
    let server = TestServer::start_with(|config| {
        config.rate_burst = 10_000;
        config.rate_per_sec = 10_000.0;
    })
    .await;
    let (_ann, cookie) = join(&server, "ann", "Ann").await;
    for i in 0..20 {
        say(&server, &cookie, &format!("before {i}")).await;
    }
    // Posts keep flowing while readers connect from seq 0 and replay.
    let poster = {
        let base = server.base.clone();
        let cookie = cookie.clone();
        tokio::spawn(async move {
            for i in 0..100 {
                let response = http()
                    .post(format!("{base}/message"))
                    .header("cookie", &cookie)
                    .json(&json!({"message": format!("during {i}")}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), StatusCode::OK);
            }
        })
    };
    let mut readers = Vec::new();
    for i in 0..5 {
        let mut connect = Connect::new("", "Reader");
        let id = format!("reader{i}");
        connect.id = &id;
        connect.last_event_id_query = Some("0");
        readers.push(SseClient::connect(&server, connect).await);
    }
    poster.await.unwrap();
    for reader in &mut readers {
        assert_eq!(seqs(&messages(reader, 120).await), (1..=120).collect::<Vec<_>>());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_is_dropped_while_a_fast_one_gets_everything() {
    slow_reader_is_dropped_while_a_fast_one_gets_everything(None).await;
}

/// The same with streams of several rooms, which wait on their rings' wakers rather than in a
/// room's lane (the posts go to `general`, one of the two).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_of_several_rooms_is_dropped_while_a_fast_one_gets_everything() {
    slow_reader_is_dropped_while_a_fast_one_gets_everything(Some("general,lobby")).await;
}

/// A fast and a slow reader, each following `rooms` (the version 1 stream when `None`), while
/// 4,000 large messages are posted to `general`.
async fn slow_reader_is_dropped_while_a_fast_one_gets_everything(rooms: Option<&str>) {
    let server = TestServer::start_with(|config| {
        config.stream_buffer = 16;
        config.slow_client_timeout_ms = 1_000;
        config.rate_burst = 100_000;
        config.rate_per_sec = 100_000.0;
    })
    .await;
    let (mut ann, cookie) = join(&server, "ann", "Ann").await;
    // Ann only posts; her own stream is read too, or she would be a slow client herself.
    tokio::spawn(async move { while ann.try_next_event(PATIENCE).await.is_some() {} });
    let mut fast = SseClient::connect(&server, Connect { rooms, ..Connect::new("fast", "Fast") }).await;
    assert_eq!(fast.status, StatusCode::OK);
    // The slow reader connects with a tiny receive buffer and never reads: once the socket
    // buffers are full, its cursor falls off the ring.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut slow = socket.connect(server.base.trim_start_matches("http://").parse().unwrap()).await.unwrap();
    let rooms_query = rooms.map(|rooms| format!("&rooms={rooms}")).unwrap_or_default();
    let request = format!("GET /sse?id=slow&name=Slow{rooms_query} HTTP/1.1\r\nHost: test\r\n\r\n");
    slow.write_all(request.as_bytes()).await.unwrap();
    let mut head = [0u8; 12];
    slow.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");

    let total = 4000;
    let text = "x".repeat(2000);
    let posters: Vec<_> = (0..8)
        .map(|_| {
            let (base, cookie, text) = (server.base.clone(), cookie.clone(), text.clone());
            tokio::spawn(async move {
                let client = http();
                for _ in 0..total / 8 {
                    let response = client
                        .post(format!("{base}/message"))
                        .header("cookie", &cookie)
                        .json(&json!({"message": text}))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(response.status(), StatusCode::OK);
                }
            })
        })
        .collect();
    let received = messages(&mut fast, total).await;
    for poster in posters {
        poster.await.unwrap();
    }
    assert_eq!(seqs(&received), (1..=total as u64).collect::<Vec<_>>(), "the fast reader lost nothing");

    // The slow client is dropped once its socket has accepted nothing for the timeout.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let metrics = http().get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
        if metrics.contains("ssechat_slow_clients_dropped_total 1\n")
            && metrics.contains("ssechat_streams_open 2\n")
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the slow client was not dropped:\n{metrics}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Once dropped, the server closes the connection: reading on reaches its end.
    let drained = tokio::time::timeout(PATIENCE, async {
        let mut sink = vec![0u8; 64 * 1024];
        while slow.read(&mut sink).await.is_ok_and(|n| n > 0) {}
    })
    .await;
    assert!(drained.is_ok(), "the slow stream was closed");
}

/// The real binary, started on a data folder; killed on drop.
struct ServerProcess {
    child: Child,
    base: String,
}

impl ServerProcess {
    fn start(data_dir: &std::path::Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_server"))
            .args(["--addr", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .env("SSECHAT_RATE_BURST", "1000")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("server binary starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("listening line");
        let base = line.trim().strip_prefix("ssechat listening on ").expect("address line").to_owned();
        Self { child, base }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn join_process(base: &str, id: &str) -> (reqwest::Response, String) {
    let response = reqwest::Client::new().get(format!("{base}/sse?id={id}&name={id}")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let cookie = response.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    (response, cookie)
}

#[tokio::test]
async fn acknowledged_messages_survive_kill_9_and_seq_continues() {
    let data = tempfile::tempdir().unwrap();
    let mut acknowledged = Vec::new();
    {
        let server = ServerProcess::start(data.path());
        let (_stream, cookie) = join_process(&server.base, "ann").await;
        for i in 0..50 {
            let response = http()
                .post(format!("{}/message", server.base))
                .header("cookie", &cookie)
                .json(&json!({"message": format!("durable {i}")}))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            acknowledged.push(response.json::<Value>().await.unwrap());
        }
        // Dropping the process handle sends SIGKILL: no chance to flush anything.
    }
    let server = ServerProcess::start(data.path());
    let response = reqwest::Client::new()
        .get(format!("{}/sse?id=bob&name=Bob&last_event_id=0", server.base))
        .send()
        .await
        .unwrap();
    let mut bob = SseClient::from_response(response);
    assert_eq!(bob.next_event().await.event, "all-users");
    let replayed: Vec<Value> = messages(&mut bob, 50).await.iter().map(SseEvent::json).collect();
    assert_eq!(replayed, acknowledged, "every acknowledged message, in order, with its seq");

    let cookie = bob.cookie.clone().unwrap();
    let response = http()
        .post(format!("{}/message", server.base))
        .header("cookie", &cookie)
        .json(&json!({"message": "after the crash"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.json::<Value>().await.unwrap()["seq"], 51);
}

#[tokio::test]
async fn sigterm_ends_streams_and_exits_zero() {
    let data = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(data.path());
    let (stream, _) = join_process(&server.base, "ann").await;
    let mut client = SseClient::from_response(stream);
    assert_eq!(client.next_event().await.event, "all-users");
    let status = Command::new("kill").args(["-TERM", &server.child.id().to_string()]).status().unwrap();
    assert!(status.success());
    assert!(client.ends().await, "streams end on shutdown");
    let exit = server.child.wait().unwrap();
    assert!(exit.success(), "exit code 0, got {exit:?}");
}
