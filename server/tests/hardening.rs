//! Hostile input and faults change nothing: each test here is a defect found by probing the
//! server from outside (or by reading its code), reproduced against a real listener.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::json;
use std::time::Duration;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// Sends `request` as raw bytes and reads the answer until the server closes the connection
/// or `wait` passes (whatever arrived by then).
async fn raw_exchange(server: &TestServer, request: &[u8], wait: Duration) -> Vec<u8> {
    let mut socket = TcpStream::connect(server.addr()).await.expect("connect");
    socket.write_all(request).await.expect("send");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(wait, socket.read_to_end(&mut answer)).await;
    answer
}

#[tokio::test]
async fn a_head_request_for_a_stream_binds_nothing_and_joins_nobody() {
    let server = TestServer::start().await;
    let (_observer, _) = join(&server, "obs", "Observer").await;
    let head = http().head(server.url("/sse?id=ghost&name=Ghost")).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(head.headers()["content-type"], "text/event-stream");
    assert!(!head.headers().contains_key("set-cookie"), "a HEAD binds no id");
    let users: serde_json::Value =
        http().get(server.url("/users")).send().await.unwrap().json().await.unwrap();
    let ids: Vec<&str> =
        users["users"].as_array().unwrap().iter().map(|u| u["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["obs"], "the HEAD joined nobody");
    // Had the HEAD bound the id, anyone else would get 409 for the grace period.
    let mut real = SseClient::open(&server, "ghost", "Real").await;
    assert_eq!(real.status, StatusCode::OK, "the id is still free");
    let all_users = real.next_event().await.json();
    assert!(all_users.as_array().unwrap().iter().any(|user| user["name"] == "Real"));
    let bad = http().head(server.url("/sse?id=a%20b&name=Ann")).send().await.unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST, "a HEAD is checked like a GET");
}

#[tokio::test]
async fn error_pages_carry_the_same_security_headers_as_the_page() {
    let server = TestServer::start().await;
    let missing = http().get(server.url("/no-such-page")).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert!(missing.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert_eq!(missing.headers()["x-content-type-options"], "nosniff");
    assert_eq!(missing.headers()["referrer-policy"], "same-origin");
    let csp = missing.headers().get("content-security-policy").expect("a CSP on the 404").to_str().unwrap();
    assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
}

#[tokio::test]
async fn a_stream_request_with_bare_lf_line_ends_is_answered_at_once() {
    let server = TestServer::start().await;
    let answer = raw_exchange(
        &server,
        b"GET /sse?id=lf&name=Lf HTTP/1.1\nHost: x\n\n",
        // Far less than the 30 s header timeout it used to wait out.
        Duration::from_secs(3),
    )
    .await;
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("event: all-users"), "{text}");
}

/// Reads an event stream's bytes until the server closes it; true when the body ended with
/// the last chunk (`0\r\n\r\n`) rather than being cut.
async fn ends_with_last_chunk(mut socket: TcpStream) -> bool {
    let mut bytes = Vec::new();
    match tokio::time::timeout(PATIENCE, socket.read_to_end(&mut bytes)).await {
        Ok(Ok(_)) => bytes.ends_with(b"0\r\n\r\n"),
        _ => false,
    }
}

#[tokio::test]
async fn shutdown_ends_every_stream_with_its_last_chunk() {
    let server = TestServer::start_with(|config| {
        config.max_streams_per_addr = 1_000;
        config.new_ids_per_addr_per_min = 1_000;
    })
    .await;
    let mut sockets = Vec::new();
    for i in 0..400 {
        let mut socket = TcpStream::connect(server.addr()).await.expect("connect");
        let request = format!("GET /sse?id=u{i}&name=U{i} HTTP/1.1\r\nHost: x\r\n\r\n");
        socket.write_all(request.as_bytes()).await.expect("send");
        sockets.push(socket);
    }
    // Every stream has started (its head and opening chunk are out): from here each one is
    // handed to the fan-out lane as soon as its task finds it idle, some of them just as the
    // server stops.
    for socket in &mut sockets {
        let mut first = [0u8; 12];
        tokio::time::timeout(PATIENCE, socket.read_exact(&mut first)).await.expect("in time").expect("read");
        assert_eq!(&first, b"HTTP/1.1 200");
    }
    let stopping = tokio::spawn(server.shutdown());
    let endings = futures_util::future::join_all(sockets.into_iter().map(ends_with_last_chunk)).await;
    stopping.await.expect("shutdown");
    let cut = endings.iter().filter(|ended| !**ended).count();
    assert_eq!(cut, 0, "{cut} of {} streams were cut instead of ended", endings.len());
}

#[tokio::test]
async fn connections_over_the_limit_get_503_at_once_instead_of_a_queue() {
    let server = TestServer::start_with(|config| config.max_connections = 2).await;
    let idle_a = TcpStream::connect(server.addr()).await.expect("connect");
    let _idle_b = TcpStream::connect(server.addr()).await.expect("connect");
    let answer = raw_exchange(&server, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", PATIENCE).await;
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(text.to_ascii_lowercase().contains("retry-after:"), "{text}");
    drop(idle_a);
    // The slot frees when the server sees the connection close.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let answer =
            raw_exchange(&server, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", PATIENCE)
                .await;
        if answer.starts_with(b"HTTP/1.1 200") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the freed slot is used again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn one_address_cannot_take_every_stream_slot_with_fresh_ids() {
    let server = TestServer::start_with(|config| {
        config.max_streams_per_addr = 3;
        config.new_ids_per_addr_per_min = 100;
    })
    .await;
    let (_ann, ann_cookie) = join(&server, "ann", "Ann").await;
    let (_bob, _) = join(&server, "bob", "Bob").await;
    let ann_tab = SseClient::connect(&server, Connect::new("ann", "Ann").cookie(Some(&ann_cookie))).await;
    assert_eq!(ann_tab.status, StatusCode::OK);
    let carl = SseClient::open(&server, "carl", "Carl").await;
    assert_eq!(carl.status, StatusCode::SERVICE_UNAVAILABLE, "a fourth stream from one address");
    assert!(carl.headers.contains_key("retry-after"));
}

#[tokio::test]
async fn one_address_binds_only_so_many_new_ids_a_minute() {
    let server = TestServer::start_with(|config| config.new_ids_per_addr_per_min = 2).await;
    let (_ann, ann_cookie) = join(&server, "ann", "Ann").await;
    let (_bob, _) = join(&server, "bob", "Bob").await;
    let carl = SseClient::open(&server, "carl", "Carl").await;
    assert_eq!(carl.status, StatusCode::SERVICE_UNAVAILABLE, "a third new id within the minute");
    let wait: u64 = carl.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    let ann_tab = SseClient::connect(&server, Connect::new("ann", "Ann").cookie(Some(&ann_cookie))).await;
    assert_eq!(ann_tab.status, StatusCode::OK, "another tab of a bound id is no new id");
}

#[tokio::test]
async fn forwarded_addresses_count_only_behind_a_trusted_proxy() {
    let open_from = |server: &TestServer, id: &str, forwarded: &str| {
        let request = http()
            .get(server.url("/sse"))
            .query(&[("id", id), ("name", id)])
            .header("x-forwarded-for", forwarded)
            .build()
            .expect("request");
        async move { SseClient::from_response(reqwest::Client::new().execute(request).await.expect("sent")) }
    };
    let behind_proxy = TestServer::start_with(|config| {
        config.max_streams_per_addr = 1;
        config.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    let ann = open_from(&behind_proxy, "ann", "198.51.100.1").await;
    let bob = open_from(&behind_proxy, "bob", "198.51.100.2").await;
    assert_eq!((ann.status, bob.status), (StatusCode::OK, StatusCode::OK), "two clients behind the proxy");
    let carl = open_from(&behind_proxy, "carl", "198.51.100.1").await;
    assert_eq!(carl.status, StatusCode::SERVICE_UNAVAILABLE, "ann's address is full");

    let exposed = TestServer::start_with(|config| config.max_streams_per_addr = 1).await;
    let ann = open_from(&exposed, "ann", "198.51.100.1").await;
    let bob = open_from(&exposed, "bob", "198.51.100.2").await;
    assert_eq!(ann.status, StatusCode::OK);
    assert_eq!(bob.status, StatusCode::SERVICE_UNAVAILABLE, "an untrusted peer's claim is ignored");
}

#[tokio::test]
async fn cross_site_posts_are_refused() {
    let server = TestServer::start().await;
    let (mut ann, cookie) = join(&server, "ann", "Ann").await;
    for (header, value) in [("origin", "http://evil.example"), ("sec-fetch-site", "cross-site")] {
        let response = http()
            .post(server.url("/message"))
            .header("cookie", &cookie)
            .header(header, value)
            .json(&json!({ "message": "forged" }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{header}: {value}");
        assert!(response.text().await.unwrap().contains("cross-site"));
    }
    let own_origin = format!("http://{}", server.addr());
    let response = http()
        .post(server.url("/message"))
        .header("cookie", &cookie)
        .header("origin", &own_origin)
        .header("sec-fetch-site", "same-origin")
        .json(&json!({ "message": "from the page" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        ann.next_named("message").await.json()["message"],
        "from the page",
        "nothing forged got through"
    );
}

#[tokio::test]
async fn the_cookie_is_secure_when_asked() {
    let server = TestServer::start_with(|config| config.cookie_secure = true).await;
    let stream = SseClient::open(&server, "ann", "Ann").await;
    let set_cookie = stream.headers["set-cookie"].to_str().unwrap();
    assert!(set_cookie.contains("; Secure") && set_cookie.contains("HttpOnly"), "{set_cookie}");
}

#[tokio::test]
async fn metrics_can_be_served_on_an_address_of_their_own() {
    let server =
        TestServer::start_with(|config| config.metrics_addr = Some("127.0.0.1:0".parse().unwrap())).await;
    let (_ann, _) = join(&server, "ann", "Ann").await;
    let public = http().get(server.url("/metrics")).send().await.unwrap();
    assert_eq!(public.status(), StatusCode::NOT_FOUND, "not on the public address");
    let private = http().get(server.metrics_url().expect("a metrics address")).send().await.unwrap();
    assert_eq!(private.status(), StatusCode::OK);
    assert!(private.text().await.unwrap().contains("ssechat_streams_open 1"));

    let default = TestServer::start().await;
    assert_eq!(http().get(default.url("/metrics")).send().await.unwrap().status(), StatusCode::OK);
    assert!(default.metrics_url().is_none());
}

/// Reads an HTTP/1.1 chunked body from `socket` (after its head) until `enough` bytes of body
/// arrived; returns the size of every chunk.
async fn chunk_sizes(socket: &mut TcpStream, enough: usize) -> Vec<usize> {
    let mut buffer = Vec::new();
    let mut read = [0u8; 64 * 1024];
    let mut fill = async |buffer: &mut Vec<u8>| {
        let n = tokio::time::timeout(PATIENCE, socket.read(&mut read)).await.expect("in time").expect("read");
        assert!(n > 0, "the stream ended early");
        buffer.extend_from_slice(&read[..n]);
    };
    while !buffer.windows(4).any(|w| w == b"\r\n\r\n") {
        fill(&mut buffer).await;
    }
    let head_end = buffer.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    buffer.drain(..head_end);
    let (mut sizes, mut body) = (Vec::new(), 0);
    while body < enough {
        while !buffer.windows(2).any(|w| w == b"\r\n") {
            fill(&mut buffer).await;
        }
        let line_end = buffer.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = usize::from_str_radix(std::str::from_utf8(&buffer[..line_end]).unwrap(), 16).unwrap();
        buffer.drain(..line_end + 2);
        while buffer.len() < size + 2 {
            fill(&mut buffer).await;
        }
        buffer.drain(..size + 2);
        sizes.push(size);
        body += size;
    }
    sizes
}

#[tokio::test]
async fn a_long_replay_goes_out_in_bounded_chunks() {
    let server = TestServer::start_with(|config| {
        config.rate_burst = 10_000;
        config.rate_per_sec = 10_000.0;
    })
    .await;
    let (_ann, cookie) = join(&server, "ann", "Ann").await;
    let text = "x".repeat(1_900);
    for _ in 0..400 {
        say(&server, &cookie, &text).await;
    }
    // About 800 KB of history owed at once.
    let mut socket = TcpStream::connect(server.addr()).await.expect("connect");
    socket
        .write_all(b"GET /sse?id=bob&name=Bob&last_event_id=0 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("send");
    let sizes = chunk_sizes(&mut socket, 400 * 1_900).await;
    assert!(sizes.len() >= 3, "{sizes:?}");
    assert!(sizes.iter().all(|&size| size <= 256 * 1024), "every chunk is bounded: {sizes:?}");
}

#[tokio::test]
async fn one_address_cannot_multiply_the_post_rate_with_several_ids() {
    let server = TestServer::start_with(|config| {
        config.addr_rate_burst = 3;
        config.addr_rate_per_sec = 0.01;
    })
    .await;
    let (_ann, ann) = join(&server, "ann", "Ann").await;
    let (_bob, bob) = join(&server, "bob", "Bob").await;
    say(&server, &ann, "one").await;
    say(&server, &ann, "two").await;
    say(&server, &bob, "three").await;
    let fourth = post_json(&server, Some(&bob), json!({ "message": "four" })).await;
    assert_eq!(
        fourth.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "bob's own burst is not spent, the address's is"
    );
    assert!(fourth.headers().contains_key("retry-after"));
}

#[tokio::test]
async fn a_room_address_is_a_page_and_one_with_a_bad_name_is_not_found() {
    let server = TestServer::start().await;
    for path in ["/", "/r/general", "/r/dev-ops_2"] {
        let page = http().get(server.url(path)).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::OK, "{path}");
        assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"), "{path}");
        assert!(page.headers().contains_key("content-security-policy"), "{path}");
    }
    for path in ["/r/Bad!", "/r/UPPER", "/r/a.b", "/r/this-name-is-far-longer-than-thirty-two"] {
        let page = http().get(server.url(path)).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::NOT_FOUND, "{path}");
        assert!(page.text().await.unwrap().contains("Page not found"), "{path}");
    }
}
