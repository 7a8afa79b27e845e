//! Bad input, impersonation and limits: each refusal has its status and plain reason, the
//! server stays up, and nothing reaches other users.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::json;

/// Proves nothing was broadcast: the observer's next message is the marker posted afterwards.
async fn assert_nothing_broadcast(server: &TestServer, observer: &mut SseClient, cookie: &str) {
    let marker = say(server, cookie, "marker").await;
    let next = observer.next_named("message").await;
    assert_eq!(next.json(), marker, "a refused request must not reach anyone");
}

#[tokio::test]
async fn bad_stream_requests_get_400_with_a_reason() {
    let server = TestServer::start().await;
    let long_name = "n".repeat(33);
    let long_id = "i".repeat(65);
    let cases: &[(&str, &str)] = &[
        ("/sse", "id and name are required"),
        ("/sse?id=a", "id and name are required"),
        ("/sse?name=Ann", "id and name are required"),
        ("/sse?id=%20&name=Ann", "id and name are required"),
        ("/sse?id=a&name=%20%20", "id and name are required"),
        ("/sse?id=a%20b&name=Ann", "id must be"),
        ("/sse?id=a&name=A%07nn", "control characters"),
        ("/sse?id=a&name=%FF", "not valid UTF-8"),
        ("/sse?id=a&name=Ann&last_event_id=abc", "Last-Event-ID"),
    ];
    for (path, reason) in cases {
        let response = http().get(server.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{path}");
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
        let body = response.text().await.unwrap();
        assert!(body.contains(reason), "{path}: {body}");
    }
    for path in [format!("/sse?id=a&name={long_name}"), format!("/sse?id={long_id}&name=Ann")] {
        let response = http().get(server.url(&path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{path}");
    }
    let response =
        http().get(server.url("/sse?id=a&name=Ann")).header("last-event-id", "-1").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(http().get(server.url("/healthz")).send().await.unwrap().status(), StatusCode::OK, "still up");
}

/// (what, cookie, content type, body, expected status, words the reason must contain)
type BadPost<'a> = (&'a str, Option<&'a str>, Option<&'a str>, Vec<u8>, StatusCode, &'a str);

#[tokio::test]
async fn bad_posts_get_their_status_and_reach_nobody() {
    let server = TestServer::start_with(|config| config.max_body_bytes = 4096).await;
    let (mut observer, observer_cookie) = join(&server, "obs", "Observer").await;
    let (_ann, ann) = join(&server, "ann", "Ann").await;
    assert_eq!(observer.next_event().await.event, "new-user");
    let ann = Some(ann.as_str());
    let json = Some("application/json");
    let form = Some("application/x-www-form-urlencoded");
    let too_long = json!({ "message": "x".repeat(2001) }).to_string();
    let oversized = json!({ "message": "x".repeat(5000) }).to_string();

    let cases: Vec<BadPost> = vec![
        ("oversized body", ann, json, oversized.into_bytes(), StatusCode::PAYLOAD_TOO_LARGE, "larger than"),
        (
            "no content type",
            ann,
            None,
            b"message=hi".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "content type",
        ),
        (
            "text/plain",
            ann,
            Some("text/plain"),
            b"hi".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "content type",
        ),
        ("no session", None, json, br#"{"message":"hi"}"#.to_vec(), StatusCode::FORBIDDEN, "session"),
        (
            "forged session",
            Some("ssechat_session=ann.AAAAAAAAAAAAAAAAAAAAAA.forged"),
            json,
            br#"{"message":"hi"}"#.to_vec(),
            StatusCode::FORBIDDEN,
            "session",
        ),
        ("missing message", ann, json, br#"{}"#.to_vec(), StatusCode::BAD_REQUEST, "message"),
        (
            "missing form message",
            ann,
            form,
            b"id=ann".to_vec(),
            StatusCode::BAD_REQUEST,
            "message is required",
        ),
        ("blank message", ann, json, br#"{"message":"  \n "}"#.to_vec(), StatusCode::BAD_REQUEST, "blank"),
        ("too long message", ann, json, too_long.into_bytes(), StatusCode::BAD_REQUEST, "2000"),
        ("wrong JSON type", ann, json, br#"{"message":42}"#.to_vec(), StatusCode::BAD_REQUEST, "malformed"),
        ("JSON array", ann, json, br#"["hi"]"#.to_vec(), StatusCode::BAD_REQUEST, "malformed"),
        ("not JSON", ann, json, b"message=hi".to_vec(), StatusCode::BAD_REQUEST, "malformed"),
        (
            "unknown JSON field",
            ann,
            json,
            br#"{"message":"hi","admin":true}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "unknown field",
        ),
        (
            "unknown form field",
            ann,
            form,
            b"message=hi&x=1".to_vec(),
            StatusCode::BAD_REQUEST,
            "unknown field",
        ),
        ("invalid UTF-8 in form", ann, form, b"message=%FF%FE".to_vec(), StatusCode::BAD_REQUEST, "UTF-8"),
        (
            "invalid UTF-8 in JSON",
            ann,
            json,
            b"{\"message\":\"\xff\"}".to_vec(),
            StatusCode::BAD_REQUEST,
            "malformed",
        ),
        (
            "someone else's id",
            ann,
            json,
            br#"{"message":"hi","id":"obs"}"#.to_vec(),
            StatusCode::FORBIDDEN,
            "session",
        ),
        (
            "someone else's name",
            ann,
            json,
            br#"{"message":"hi","name":"Observer"}"#.to_vec(),
            StatusCode::FORBIDDEN,
            "session",
        ),
    ];
    for (what, cookie, content_type, body, status, reason) in cases {
        let response = post_raw(&server, cookie, content_type, body).await;
        assert_eq!(response.status(), status, "{what}");
        let text = response.text().await.unwrap();
        assert!(text.contains(reason), "{what}: {text:?} should mention {reason:?}");
    }
    assert_nothing_broadcast(&server, &mut observer, &observer_cookie).await;
}

#[tokio::test]
async fn nobody_can_take_over_or_speak_for_a_connected_user() {
    let server = TestServer::start().await;
    let (mut ann, ann_cookie) = join(&server, "ann", "Ann").await;

    let thief = SseClient::open(&server, "ann", "Mallory").await;
    assert_eq!(thief.status, StatusCode::CONFLICT, "a held id without its cookie");
    let (_mallory, mallory_cookie) = join(&server, "mal", "Mallory").await;
    assert_eq!(ann.next_event().await.event, "new-user");
    let with_own_cookie =
        SseClient::connect(&server, Connect::new("ann", "Ann").cookie(Some(&mallory_cookie))).await;
    assert_eq!(with_own_cookie.status, StatusCode::CONFLICT, "a session holds one id at a time");
    let other_free_id =
        SseClient::connect(&server, Connect::new("free", "X").cookie(Some(&mallory_cookie))).await;
    assert_eq!(other_free_id.status, StatusCode::CONFLICT);

    let (name, value) = ann_cookie.split_once('=').unwrap();
    let mut tampered = value.to_owned();
    tampered.replace_range(0..3, "mal");
    let tampered = format!("{name}={tampered}");
    let forged = SseClient::connect(&server, Connect::new("ann", "Ann").cookie(Some(&tampered))).await;
    assert_eq!(forged.status, StatusCode::CONFLICT, "a tampered cookie is no cookie");

    let impersonation =
        post_json(&server, Some(&mallory_cookie), json!({"message": "I am Ann", "id": "ann", "name": "Ann"}))
            .await;
    assert_eq!(impersonation.status(), StatusCode::FORBIDDEN);
    let posted = say(&server, &mallory_cookie, "hello").await;
    assert_eq!(
        (posted["id"].as_str(), posted["name"].as_str()),
        (Some("mal"), Some("Mallory")),
        "author from session"
    );
    assert_eq!(ann.next_named("message").await.json(), posted);
}

#[tokio::test]
async fn an_id_freed_by_leaving_can_be_bound_again_and_old_cookies_stop_matching() {
    let server = TestServer::start().await;
    let (mut observer, _) = join(&server, "obs", "Observer").await;
    let (ann, old_cookie) = join(&server, "ann", "Ann").await;
    assert_eq!(observer.next_event().await.event, "new-user");
    drop(ann);
    assert_eq!(observer.next_event().await.event, "user-leave");

    let (_new_ann, _) = join(&server, "ann", "Another Ann").await;
    let old = post_json(&server, Some(&old_cookie), json!({"message": "I'm back"})).await;
    assert_eq!(old.status(), StatusCode::FORBIDDEN);
    let reuse = SseClient::connect(&server, Connect::new("ann", "Ann").cookie(Some(&old_cookie))).await;
    assert_eq!(reuse.status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn the_rate_limit_answers_429_with_retry_after_and_recovers() {
    let server = TestServer::start_with(|config| {
        config.rate_burst = 3;
        // Slow enough that no token comes back while the burst is sent, however busy the
        // machine running the tests.
        config.rate_per_sec = 1.0;
    })
    .await;
    let (_ann, cookie) = join(&server, "ann", "Ann").await;
    for i in 0..3 {
        say(&server, &cookie, &format!("burst {i}")).await;
    }
    let limited = post_json(&server, Some(&cookie), json!({"message": "one too many"})).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = limited.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry_after >= 1);
    // A client honouring Retry-After gets through.
    tokio::time::sleep(std::time::Duration::from_secs(retry_after)).await;
    say(&server, &cookie, "after waiting").await;
}

#[tokio::test]
async fn stream_limits_answer_503_with_retry_after_and_recover() {
    let server = TestServer::start_with(|config| {
        config.max_streams = 3;
        config.max_streams_per_user = 2;
    })
    .await;
    let (ann, cookie) = join(&server, "ann", "Ann").await;
    let ann_tab = SseClient::connect(&server, Connect::new("ann", "Ann").cookie(Some(&cookie))).await;
    assert_eq!(ann_tab.status, StatusCode::OK);
    let third = SseClient::connect(&server, Connect::new("ann", "Ann").cookie(Some(&cookie))).await;
    assert_eq!(third.status, StatusCode::SERVICE_UNAVAILABLE, "per-user limit");
    assert!(third.headers.contains_key("retry-after"));

    let (_bob, _) = join(&server, "bob", "Bob").await;
    let carl = SseClient::open(&server, "carl", "Carl").await;
    assert_eq!(carl.status, StatusCode::SERVICE_UNAVAILABLE, "total limit");
    assert!(carl.headers.contains_key("retry-after"));

    drop(ann_tab);
    drop(ann);
    // Slots free as soon as the server sees the streams close.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let carl = SseClient::open(&server, "carl", "Carl").await;
        if carl.status == StatusCode::OK {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "slots are freed");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_page_carries_security_headers() {
    let server = TestServer::start().await;
    let page = http().get(server.url("/")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");
    assert_eq!(page.headers()["referrer-policy"], "same-origin");
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("'wasm-unsafe-eval'") && !csp.contains("unsafe-inline"), "{csp}");
    let nonce = csp.split("'nonce-").nth(1).and_then(|rest| rest.split('\'').next()).unwrap().to_owned();
    let html = page.text().await.unwrap();
    assert!(html.contains(&format!("nonce=\"{nonce}\"")), "the inline hydration script carries the nonce");
}
