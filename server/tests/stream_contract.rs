//! The event stream as a client sees it on the wire: headers, event order and shapes,
//! presence, and messages reaching everyone.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn a_stream_starts_with_retry_then_all_users_including_the_newcomer() {
    let server = TestServer::start().await;
    let mut ann = SseClient::open(&server, "ann-1", "Ann").await;
    assert_eq!(ann.status, StatusCode::OK);
    assert_eq!(ann.headers["content-type"], "text/event-stream");
    assert_eq!(ann.headers["cache-control"], "no-cache");
    assert_eq!(ann.headers["x-accel-buffering"], "no");
    assert!(ann.headers.get("content-encoding").is_none());
    let set_cookie = ann.headers["set-cookie"].to_str().unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }

    let first = ann.next_event().await;
    assert!(ann.raw.starts_with("retry: "), "the stream opens with a retry hint: {:?}", ann.raw);
    assert_eq!(first.event, "all-users");
    assert_eq!(first.id, None, "only messages carry an id");
    assert_eq!(first.json(), json!([{"id": "ann-1", "name": "Ann"}]));
}

#[tokio::test]
async fn a_newcomer_is_announced_to_others_and_sees_everyone_in_join_order() {
    let server = TestServer::start().await;
    let (mut ann, _) = join(&server, "ann", "Ann").await;
    let (mut bob, _) = join(&server, "bob", "Bob").await;
    assert_eq!(ann.next_event().await.json(), json!({"id": "bob", "name": "Bob"}));

    let mut cleo = SseClient::open(&server, "cleo", "  Cleo ").await;
    let all = cleo.next_event().await;
    assert_eq!(
        all.json(),
        json!([{"id": "ann", "name": "Ann"}, {"id": "bob", "name": "Bob"}, {"id": "cleo", "name": "Cleo"}])
    );
    for stream in [&mut ann, &mut bob] {
        let event = stream.next_event().await;
        assert_eq!((event.event.as_str(), event.json()), ("new-user", json!({"id": "cleo", "name": "Cleo"})));
    }
    // Cleo's own stream never hears about Cleo joining: the next thing it gets is a message.
    let (_, cookie) = (0, cleo.cookie.clone().unwrap());
    say(&server, &cookie, "hi").await;
    assert_eq!(cleo.next_event().await.event, "message");
}

#[tokio::test]
async fn a_second_tab_is_one_user_and_no_new_user_event() {
    let server = TestServer::start().await;
    let (mut ann, ann_cookie) = join(&server, "ann", "Ann").await;
    let (_bob, bob_cookie) = join(&server, "bob", "Bob").await;
    assert_eq!(ann.next_event().await.event, "new-user");

    let mut bob_tab =
        SseClient::connect(&server, Connect::new("bob", "Robert").cookie(Some(&bob_cookie))).await;
    assert_eq!(bob_tab.status, StatusCode::OK);
    let all = bob_tab.next_event().await;
    assert_eq!(
        all.json(),
        json!([{"id": "ann", "name": "Ann"}, {"id": "bob", "name": "Bob"}]),
        "bound name stands"
    );

    // Ann's next event is the message, not a second new-user for Bob.
    say(&server, &ann_cookie, "after the second tab").await;
    let next = ann.next_event().await;
    assert_eq!(next.event, "message");
    let users: serde_json::Value =
        http().get(server.url("/users")).send().await.unwrap().json().await.unwrap();
    assert_eq!(users["users"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_message_reaches_every_stream_once_with_seq_ts_and_its_sse_id() {
    let server = TestServer::start().await;
    let (mut ann, ann_cookie) = join(&server, "ann", "Ann").await;
    let (mut bob, _) = join(&server, "bob", "Bob").await;
    assert_eq!(ann.next_event().await.event, "new-user");

    let acknowledged = say(&server, &ann_cookie, "  hello\nworld <b>  ").await;
    assert_eq!(acknowledged["message"], "hello\nworld <b>", "trimmed, otherwise unchanged");
    assert_eq!(acknowledged["seq"], 1);
    assert_eq!(acknowledged["id"], "ann");
    assert_eq!(acknowledged["name"], "Ann");
    let ts = acknowledged["ts"].as_str().unwrap();
    assert!(ts.ends_with('Z') && humantime::parse_rfc3339(ts).is_ok(), "RFC 3339 UTC: {ts}");

    for stream in [&mut ann, &mut bob] {
        let event = stream.next_named("message").await;
        assert_eq!(event.json(), acknowledged, "broadcast exactly as acknowledged");
        assert_eq!(event.id.as_deref(), Some("1"));
    }
    let second = say(&server, &ann_cookie, "again").await;
    assert_eq!(second["seq"], 2);
    assert_eq!(bob.next_event().await.json(), second);
}

#[tokio::test]
async fn form_and_multipart_bodies_are_accepted_like_json() {
    let server = TestServer::start().await;
    let (mut ann, cookie) = join(&server, "ann", "Ann").await;
    let form = post_raw(
        &server,
        Some(&cookie),
        Some("application/x-www-form-urlencoded"),
        "message=a+form%21&id=ann",
    )
    .await;
    assert_eq!(form.status(), StatusCode::OK);
    assert_eq!(ann.next_event().await.json()["message"], "a form!");

    let multipart = reqwest::multipart::Form::new().text("message", "a multipart").text("name", "Ann");
    let response = http()
        .post(server.url("/message"))
        .header("cookie", &cookie)
        .multipart(multipart)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(ann.next_event().await.json()["message"], "a multipart");
}

#[tokio::test]
async fn closing_the_last_stream_makes_the_user_leave_after_the_grace_period() {
    let server = TestServer::start().await;
    let (mut ann, _) = join(&server, "ann", "Ann").await;
    let (bob, bob_cookie) = join(&server, "bob", "Bob").await;
    assert_eq!(ann.next_event().await.event, "new-user");
    let bob_tab = SseClient::connect(&server, Connect::new("bob", "Bob").cookie(Some(&bob_cookie))).await;

    drop(bob);
    drop(bob_tab);
    let leave = ann.next_event().await;
    assert_eq!((leave.event.as_str(), leave.json()), ("user-leave", json!({"id": "bob", "name": "Bob"})));
    let page: serde_json::Value =
        http().get(server.url("/users")).send().await.unwrap().json().await.unwrap();
    assert_eq!(page, json!({"users": [{"id": "ann", "name": "Ann"}], "next": null}));
}

#[tokio::test]
async fn a_reconnect_within_the_grace_period_is_no_leave_and_no_join() {
    let server = TestServer::start_with(|config| config.leave_grace_ms = 60_000).await;
    let (mut ann, ann_cookie) = join(&server, "ann", "Ann").await;
    let (bob, bob_cookie) = join(&server, "bob", "Bob").await;
    assert_eq!(ann.next_event().await.event, "new-user");
    drop(bob);
    let mut bob = SseClient::connect(&server, Connect::new("bob", "Bob").cookie(Some(&bob_cookie))).await;
    assert_eq!(bob.next_event().await.json().as_array().unwrap().len(), 2);
    say(&server, &ann_cookie, "still here?").await;
    assert_eq!(ann.next_event().await.event, "message", "no user-leave or new-user in between");
}

#[tokio::test]
async fn users_pages_through_the_room_with_cursors_the_server_issued() {
    let server = TestServer::start().await;
    let mut streams = Vec::new();
    for i in 0..5 {
        streams.push(join(&server, &format!("u{i}"), &format!("User {i}")).await);
    }
    let mut seen = Vec::new();
    let mut url = server.url("/users?limit=2");
    loop {
        let page: serde_json::Value = http().get(&url).send().await.unwrap().json().await.unwrap();
        seen.extend(page["users"].as_array().unwrap().iter().map(|u| u["id"].as_str().unwrap().to_owned()));
        match page["next"].as_str() {
            Some(cursor) => url = server.url(&format!("/users?limit=2&after={cursor}")),
            None => break,
        }
    }
    assert_eq!(seen, ["u0", "u1", "u2", "u3", "u4"]);
    for bad in ["/users?limit=0", "/users?limit=501", "/users?limit=x", "/users?after=3.forged"] {
        let response = http().get(server.url(bad)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
}

/// Parses Prometheus/OpenMetrics text: every sample line is `name value`, every name is
/// declared by a `# TYPE` line first.
fn parse_metrics(text: &str) -> std::collections::HashMap<String, f64> {
    let mut declared = Vec::new();
    let mut samples = std::collections::HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            declared.push(rest.split(' ').next().unwrap().to_owned());
        } else if !line.starts_with('#') && !line.is_empty() {
            let (name, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("sample line {line:?}"));
            let base = name.split('{').next().unwrap();
            assert!(declared.iter().any(|d| base.starts_with(d.as_str())), "{base} has no # TYPE");
            samples.insert(
                name.to_owned(),
                value.parse::<f64>().unwrap_or_else(|_| panic!("value in {line:?}")),
            );
        }
    }
    samples
}

#[tokio::test]
async fn health_and_metrics_report_the_room_and_move_with_messages() {
    let server = TestServer::start().await;
    let (mut ann, cookie) = join(&server, "ann", "Ann").await;
    let health = http().get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(health.text().await.unwrap(), "ok");

    let scrape = || async {
        parse_metrics(&http().get(server.url("/metrics")).send().await.unwrap().text().await.unwrap())
    };
    let before = scrape().await;
    assert_eq!(before["ssechat_streams_open"], 1.0);
    assert_eq!(before["ssechat_users_online"], 1.0);
    assert_eq!(before["ssechat_messages_total"], 0.0);
    assert_eq!(before["ssechat_slow_clients_dropped_total"], 0.0);
    say(&server, &cookie, "counted").await;
    // Counted once written: the answer to a post may come before the streams are woken.
    ann.next_named("message").await;
    let after = scrape().await;
    assert_eq!(after["ssechat_messages_total"], 1.0);
    assert_eq!(after["ssechat_messages_accepted_total"], 1.0);
    assert!(after["ssechat_events_sent_total"] > before["ssechat_events_sent_total"]);
    assert_eq!(after["ssechat_store_append_seconds_count"], 1.0);
    // Ann's stream was idle when the message came: the fan-out lane wrote it, not her task.
    assert!(after["ssechat_lane_writes_total"] > before["ssechat_lane_writes_total"]);
}

#[tokio::test]
async fn an_idle_stream_hears_keep_alive_comments_as_whole_chunks() {
    let server = TestServer::start_with(|config| config.keepalive_ms = 50).await;
    // The comment is 14 bytes: one chunk of size E, then its CRLF; here two in a row.
    let keep_alive = "\r\nE\r\n: keep-alive\n\n\r\n";
    let answer = raw_exchange(
        &server,
        "GET /sse?id=quiet&name=Quiet HTTP/1.1\r\nHost: x\r\n\r\n",
        &format!("{keep_alive}E\r\n: keep-alive\n\n\r\n"),
    )
    .await;
    assert!(answer.contains("event: all-users"), "{answer}");
}

#[tokio::test]
async fn shutdown_ends_every_stream_cleanly() {
    let server = TestServer::start().await;
    let (mut ann, _) = join(&server, "ann", "Ann").await;
    let base = server.base.clone();
    server.shutdown().await;
    assert!(ann.ends().await, "the stream ends when the server stops");
    assert!(http().get(format!("{base}/healthz")).send().await.is_err(), "no longer accepting");
}

#[tokio::test]
async fn a_large_room_switches_to_presence_summaries_and_back_to_snapshots() {
    let server = TestServer::start_with(|config| {
        config.large_room_threshold = 2;
        config.users_interval_ms = 100;
    })
    .await;
    let (mut ann, _) = join(&server, "ann", "Ann").await;
    let (_bob, _) = join(&server, "bob", "Bob").await;
    assert_eq!(ann.next_event().await.event, "new-user");

    // The third user makes the room large: no new-user, a presence summary instead.
    let mut cleo = SseClient::open(&server, "cleo", "Cleo").await;
    assert_eq!(cleo.next_event().await.json().as_array().unwrap().len(), 3);
    let at_once = cleo.next_event().await;
    assert_eq!((at_once.event.as_str(), at_once.json()["count"].as_u64()), ("presence", Some(3)));
    let summary = ann.next_event().await;
    assert_eq!(summary.event, "presence");
    assert_eq!(summary.json(), json!({"count": 3, "joined": [{"id": "cleo", "name": "Cleo"}], "left": []}));

    // Back to the threshold: everyone gets a full snapshot, and per-user events resume.
    drop(cleo);
    let snapshot = ann.next_event().await;
    assert_eq!(snapshot.event, "users");
    assert_eq!(snapshot.json(), json!([{"id": "ann", "name": "Ann"}, {"id": "bob", "name": "Bob"}]));
    let (_dan, _) = join(&server, "dan", "Dan").await;
    let summary = ann.next_event().await;
    assert_eq!(
        (summary.event.as_str(), summary.json()["joined"][0]["id"].as_str()),
        ("presence", Some("dan"))
    );
}

/// Sends `request` on a fresh socket and reads until the answer contains `until`.
async fn raw_exchange(server: &TestServer, request: &str, until: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = server.base.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(addr).await.expect("connect");
    socket.write_all(request.as_bytes()).await.expect("send the request");
    let mut answer = Vec::new();
    let read = async {
        while !String::from_utf8_lossy(&answer).contains(until) {
            let mut buf = [0u8; 4096];
            let n = socket.read(&mut buf).await.expect("read");
            assert!(n > 0, "closed before {until:?}: {:?}", String::from_utf8_lossy(&answer));
            answer.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(PATIENCE, read).await.expect("the answer comes");
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn on_the_wire_a_stream_is_chunked_http_1_1_and_http_1_0_clients_get_it_too() {
    let server = TestServer::start().await;
    let answer =
        raw_exchange(&server, "GET /sse?id=raw-11&name=Raw HTTP/1.1\r\nHost: x\r\n\r\n", "event: all-users")
            .await;
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    let head = head.to_ascii_lowercase();
    let expected = [
        "transfer-encoding: chunked",
        "connection: close",
        "content-type: text/event-stream",
        "date: ",
        "set-cookie: ",
    ];
    for line in expected {
        assert!(head.contains(line), "{line:?} missing from {head}");
    }
    // The first chunk: its size in hex, then the opening of the stream.
    let (size, rest) = body.split_once("\r\n").expect("a chunk size line");
    assert!(usize::from_str_radix(size, 16).is_ok_and(|size| size > 0), "{size:?}");
    assert!(rest.starts_with("retry: "), "{rest:?}");

    // HTTP/1.0 has no chunks: the body runs until the connection closes.
    let answer =
        raw_exchange(&server, "GET /sse?id=raw-10&name=Raw HTTP/1.0\r\n\r\n", "event: all-users").await;
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head");
    assert!(head.starts_with("HTTP/1.0 200 OK\r\n"), "{head}");
    assert!(!head.to_ascii_lowercase().contains("transfer-encoding"), "{head}");
    assert!(body.starts_with("retry: "), "{body:?}");
    assert!(body.contains(r#""id":"raw-10""#), "{body:?}");
}

#[tokio::test]
async fn a_refused_stream_is_a_whole_answer_then_the_connection_closes() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start().await;
    let addr = server.base.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(addr).await.expect("connect");
    socket.write_all(b"GET /sse?id=&name=Nobody HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("send");
    let mut answer = Vec::new();
    tokio::time::timeout(PATIENCE, socket.read_to_end(&mut answer))
        .await
        .expect("the server closes the connection")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer);
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head");
    assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{head}");
    let length = format!("content-length: {}", body.len());
    assert!(head.to_ascii_lowercase().contains(&length), "{length:?} missing from {head}");
    assert!(!body.is_empty());
}

#[tokio::test]
async fn a_stream_whose_client_keeps_sending_is_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start().await;
    let addr = server.base.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut request = b"GET /sse?id=chatty&name=Chatty HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
    request.extend(std::iter::repeat_n(b'x', 4096));
    socket.write_all(&request).await.expect("send");
    // The server closes on it: end of input, or a reset (it did not read all that was sent).
    let mut answer = Vec::new();
    let ended = tokio::time::timeout(PATIENCE, socket.read_to_end(&mut answer))
        .await
        .expect("the server closes the connection");
    assert!(
        ended.is_ok() || ended.as_ref().is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "{ended:?}"
    );
}
