//! The hand-written `GET /sse` request reader against arbitrary bytes: whatever a client sends
//! after `GET /sse`, the server neither panics nor hangs. It answers, or closes the
//! connection, as soon as the client has finished sending (long before the header timeout),
//! and keeps serving everyone else.

mod common;

use common::*;
use proptest::{
    prelude::*,
    test_runner::{Config as ProptestConfig, TestRunner},
};
use std::time::Duration;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// Far below the 30 s header timeout: an answer that waited for it would fail the property.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

/// Bytes after `GET /sse`: mostly request-like text (so the reader gets far into its
/// parsing), sometimes anything at all.
fn after_request_line() -> impl Strategy<Value = Vec<u8>> {
    let line = prop_oneof![
        Just(b" HTTP/1.1".to_vec()),
        Just(b"?id=a&name=b HTTP/1.1".to_vec()),
        Just(b"?id=%FF&name= HTTP/1.0".to_vec()),
        Just(b"Host: x".to_vec()),
        Just(b"Content-Length: 5".to_vec()),
        Just(b"Transfer-Encoding: chunked".to_vec()),
        Just(b"Last-Event-ID: 18446744073709551616".to_vec()),
        Just(b"Cookie: ssechat_session=a.b.c".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..64),
    ];
    let end =
        prop_oneof![Just(b"\r\n".to_vec()), Just(b"\n".to_vec()), Just(b"".to_vec()), Just(b"\r".to_vec())];
    proptest::collection::vec((line, end), 0..8)
        .prop_map(|parts| parts.into_iter().flat_map(|(line, end)| line.into_iter().chain(end)).collect())
}

/// Sends `GET /sse` + `rest`, closes the sending side, and reads until the server closes.
/// `Ok(answer)` when the server answered or closed in time.
async fn exchange(server: &TestServer, rest: &[u8]) -> Result<Vec<u8>, String> {
    let mut socket = TcpStream::connect(server.addr()).await.map_err(|e| e.to_string())?;
    socket.write_all(b"GET /sse").await.map_err(|e| e.to_string())?;
    // The server may answer and close before reading all of it: a failed write is fine.
    let _ = socket.write_all(rest).await;
    let _ = socket.shutdown().await;
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + ANSWER_WITHIN;
    loop {
        match tokio::time::timeout_at(deadline, socket.read(&mut chunk)).await {
            Err(_) => {
                // A stream that was opened stays open: that is an answer too.
                if answer.starts_with(b"HTTP/1.1 200") {
                    return Ok(answer);
                }
                return Err(format!(
                    "no answer and no close within {ANSWER_WITHIN:?}: {:?}",
                    String::from_utf8_lossy(&answer)
                ));
            }
            Ok(Ok(0)) | Ok(Err(_)) => return Ok(answer),
            Ok(Ok(n)) => answer.extend_from_slice(&chunk[..n]),
        }
    }
}

#[test]
fn any_bytes_after_get_sse_are_answered_or_closed_at_once() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let server = runtime.block_on(TestServer::start_with(|config| {
        config.max_streams_per_addr = 10_000;
        config.new_ids_per_addr_per_min = 100_000;
    }));
    let mut runner =
        TestRunner::new(ProptestConfig { cases: 96, failure_persistence: None, ..ProptestConfig::default() });
    let outcome = runner.run(&after_request_line(), |rest| {
        let answer = runtime.block_on(exchange(&server, &rest)).map_err(TestCaseError::fail)?;
        prop_assert!(
            answer.is_empty() || answer.starts_with(b"HTTP/1."),
            "not an HTTP answer: {:?}",
            String::from_utf8_lossy(&answer)
        );
        Ok(())
    });
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
    // Still serving.
    let healthz =
        runtime.block_on(async { http().get(server.url("/healthz")).send().await.map(|r| r.status()) });
    assert_eq!(healthz.expect("answers"), reqwest::StatusCode::OK);
    runtime.block_on(server.shutdown());
}
