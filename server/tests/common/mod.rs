//! Test harness: a real server on `127.0.0.1:0` with its own data folder, and a client that
//! reads the SSE byte stream itself, frame by frame, as any client of the protocol would.
#![allow(dead_code)]

pub mod redis;

use futures_util::StreamExt;
use reqwest::{StatusCode, header::HeaderMap};
use server::Config;
use std::{pin::Pin, time::Duration};

/// How long a test waits for something that should happen; a timeout is a failure.
pub const PATIENCE: Duration = Duration::from_secs(10);

pub struct TestServer {
    pub base: String,
    running: Option<server::RunningServer>,
    _data: tempfile::TempDir,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts a server with the test defaults (a short leave grace), adjusted by `configure`.
    pub async fn start_with(configure: impl FnOnce(&mut Config)) -> Self {
        let data = tempfile::tempdir().expect("temp dir");
        let mut config = Config::for_tests(data.path().to_path_buf());
        config.leave_grace_ms = 100;
        configure(&mut config);
        let running = server::start(config).await.expect("server starts");
        Self { base: format!("http://{}", running.local_addr()), running: Some(running), _data: data }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The address the server listens on.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.running.as_ref().expect("running").local_addr()
    }

    /// `/metrics` on its own listener, when the server has one (`--metrics-addr`).
    pub fn metrics_url(&self) -> Option<String> {
        self.running.as_ref()?.metrics_addr().map(|addr| format!("http://{addr}/metrics"))
    }

    pub async fn shutdown(mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await.expect("clean shutdown");
        }
    }
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder().timeout(PATIENCE).build().expect("client")
}

/// One dispatched SSE event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub event: String,
    pub id: Option<String>,
    pub data: String,
}

impl SseEvent {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.data).expect("event data is JSON")
    }
}

type ByteStream = Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>;

/// An open event stream, parsed by hand.
pub struct SseClient {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// The session cookie (`name=value`) this stream was given, if any.
    pub cookie: Option<String>,
    body: ByteStream,
    buffer: String,
    /// Every line received, comments and `retry:` included, for assertions on raw bytes.
    pub raw: String,
}

pub struct Connect<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub cookie: Option<&'a str>,
    pub last_event_id_header: Option<&'a str>,
    pub last_event_id_query: Option<&'a str>,
    /// Version 2: the `rooms` to follow.
    pub rooms: Option<&'a str>,
}

impl<'a> Connect<'a> {
    pub fn new(id: &'a str, name: &'a str) -> Self {
        Self { id, name, cookie: None, last_event_id_header: None, last_event_id_query: None, rooms: None }
    }
    pub fn rooms(mut self, rooms: &'a str) -> Self {
        self.rooms = Some(rooms);
        self
    }
    pub fn cookie(mut self, cookie: Option<&'a str>) -> Self {
        self.cookie = cookie;
        self
    }
}

impl SseClient {
    pub async fn open(server: &TestServer, id: &str, name: &str) -> Self {
        Self::connect(server, Connect::new(id, name)).await
    }

    pub async fn connect(server: &TestServer, connect: Connect<'_>) -> Self {
        let mut query = vec![("id", connect.id), ("name", connect.name)];
        if let Some(last) = connect.last_event_id_query {
            query.push(("last_event_id", last));
        }
        if let Some(rooms) = connect.rooms {
            query.push(("rooms", rooms));
        }
        let mut request = http().get(server.url("/sse")).query(&query);
        if let Some(cookie) = connect.cookie {
            request = request.header("cookie", cookie);
        }
        if let Some(last) = connect.last_event_id_header {
            request = request.header("last-event-id", last);
        }
        // Streams stay open far longer than one request's timeout.
        let response =
            reqwest::Client::new().execute(request.build().expect("request")).await.expect("connects");
        Self::from_response(response)
    }

    pub fn from_response(response: reqwest::Response) -> Self {
        let status = response.status();
        let headers = response.headers().clone();
        let cookie = headers
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(str::to_owned);
        Self {
            status,
            headers,
            cookie,
            body: Box::pin(response.bytes_stream()),
            buffer: String::new(),
            raw: String::new(),
        }
    }

    /// The next dispatched event; panics after [`PATIENCE`] or if the stream ends.
    pub async fn next_event(&mut self) -> SseEvent {
        self.try_next_event(PATIENCE).await.expect("an event before the timeout")
    }

    /// The next event, or `None` if the stream ended or `wait` passed.
    pub async fn try_next_event(&mut self, wait: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(event) = self.parse_buffered() {
                return Some(event);
            }
            let chunk = tokio::time::timeout_at(deadline, self.body.next()).await.ok()??.ok()?;
            let text = std::str::from_utf8(&chunk).expect("SSE is UTF-8");
            self.raw.push_str(text);
            self.buffer.push_str(text);
        }
    }

    /// Waits for the next event with this name, skipping others.
    pub async fn next_named(&mut self, name: &str) -> SseEvent {
        loop {
            let event = self.next_event().await;
            if event.event == name {
                return event;
            }
        }
    }

    /// True once the server has ended this stream (within [`PATIENCE`]).
    pub async fn ends(&mut self) -> bool {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            match tokio::time::timeout_at(deadline, self.body.next()).await {
                Err(_) => return false,
                Ok(None) | Ok(Some(Err(_))) => return true,
                Ok(Some(Ok(chunk))) => self.buffer.push_str(&String::from_utf8_lossy(&chunk)),
            }
        }
    }

    fn parse_buffered(&mut self) -> Option<SseEvent> {
        loop {
            let end = self.buffer.find("\n\n")?;
            let block: String = self.buffer.drain(..end + 2).collect();
            let (mut event, mut id, mut data) = (String::from("message"), None, Vec::new());
            let mut has_data = false;
            for line in block.lines() {
                if line.starts_with(':') || line.is_empty() {
                    continue;
                }
                let (field, value) = line.split_once(':').unwrap_or((line, ""));
                let value = value.strip_prefix(' ').unwrap_or(value);
                match field {
                    "event" => event = value.to_owned(),
                    "id" => id = Some(value.to_owned()),
                    "data" => {
                        data.push(value.to_owned());
                        has_data = true;
                    }
                    _ => {}
                }
            }
            if has_data {
                return Some(SseEvent { event, id, data: data.join("\n") });
            }
        }
    }
}

/// Posts a JSON body with a cookie.
pub async fn post_json(
    server: &TestServer,
    cookie: Option<&str>,
    body: serde_json::Value,
) -> reqwest::Response {
    let mut request = http().post(server.url("/message")).json(&body);
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    request.send().await.expect("post")
}

/// Posts a raw body with the given content type.
pub async fn post_raw(
    server: &TestServer,
    cookie: Option<&str>,
    content_type: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    let mut request = http().post(server.url("/message")).body(body);
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    request.send().await.expect("post")
}

/// Opens a stream for a user and reads its `all-users`; returns it and its cookie.
pub async fn join(server: &TestServer, id: &str, name: &str) -> (SseClient, String) {
    let mut client = SseClient::open(server, id, name).await;
    assert_eq!(client.status, StatusCode::OK, "{id} joins");
    let first = client.next_event().await;
    assert_eq!(first.event, "all-users");
    let cookie = client.cookie.clone().expect("a session cookie");
    (client, cookie)
}

/// Posts a message as a joined user and returns the acknowledged message.
pub async fn say(server: &TestServer, cookie: &str, text: &str) -> serde_json::Value {
    let response = post_json(server, Some(cookie), serde_json::json!({ "message": text })).await;
    assert_eq!(response.status(), StatusCode::OK, "posting {text:?}");
    response.json().await.expect("JSON answer")
}
