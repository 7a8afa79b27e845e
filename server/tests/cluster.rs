//! Several instances on one Redis behave as one server: one room, cookies valid everywhere,
//! and a dead instance's users leave everywhere within the configured bound.

mod common;

use common::{redis::RedisProcess, *};
use reqwest::StatusCode;
use serde_json::json;
use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
};

const SECRET: &str = "a shared secret of at least thirty-two bytes!";

async fn instance(redis: &RedisProcess) -> TestServer {
    let url = redis.url();
    TestServer::start_with(move |config| {
        config.redis_url = Some(url);
        config.session_secret = Some(SECRET.into());
        config.instance_timeout_ms = 600;
    })
    .await
}

async fn user_ids(server: &TestServer) -> Vec<String> {
    let page: serde_json::Value =
        http().get(server.url("/users")).send().await.unwrap().json().await.unwrap();
    page["users"].as_array().unwrap().iter().map(|u| u["id"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn two_instances_share_one_room_and_honour_each_others_cookies() {
    let redis = RedisProcess::start();
    let a = instance(&redis).await;
    let b = instance(&redis).await;

    let (mut ann, ann_cookie) = join(&a, "ann", "Ann").await;
    let (bob, _) = join(&b, "bob", "Bob").await;
    let joined = ann.next_event().await;
    assert_eq!((joined.event.as_str(), joined.json()), ("new-user", json!({"id": "bob", "name": "Bob"})));
    assert_eq!(user_ids(&a).await, ["ann", "bob"]);
    assert_eq!(user_ids(&b).await, ["ann", "bob"], "the user list agrees on both");

    // Ann's cookie from A opens a second tab on B: the same user, no new-user anywhere.
    let mut ann_on_b = SseClient::connect(&b, Connect::new("ann", "Ann").cookie(Some(&ann_cookie))).await;
    assert_eq!(ann_on_b.status, StatusCode::OK);
    assert_eq!(
        ann_on_b.next_event().await.json(),
        json!([{"id": "ann", "name": "Ann"}, {"id": "bob", "name": "Bob"}])
    );
    // Without it, Ann's id is refused on B too.
    assert_eq!(SseClient::open(&b, "ann", "Mallory").await.status, StatusCode::CONFLICT);

    // Bob leaves on B: Ann hears it on A.
    drop(bob);
    let left = ann.next_named("user-leave").await;
    assert_eq!(left.json(), json!({"id": "bob", "name": "Bob"}));
    assert_eq!(user_ids(&b).await, ["ann"]);
}

#[tokio::test]
async fn a_killed_instance_has_its_users_leave_everywhere() {
    let redis = RedisProcess::start();
    let b = instance(&redis).await;
    let (mut watcher, _) = join(&b, "watcher", "Watcher").await;

    let data = tempfile::tempdir().unwrap();
    let mut a = Command::new(env!("CARGO_BIN_EXE_server"))
        .args(["--addr", "127.0.0.1:0", "--leave-grace-ms", "100", "--instance-timeout-ms", "600"])
        .args(["--redis-url", &redis.url(), "--session-secret", SECRET, "--data-dir"])
        .arg(data.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(a.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let base = line.trim().strip_prefix("ssechat listening on ").unwrap().to_owned();
    let response =
        reqwest::Client::new().get(format!("{base}/sse?id=doomed&name=Doomed")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut doomed = SseClient::from_response(response);
    assert_eq!(doomed.next_event().await.event, "all-users");
    assert_eq!(watcher.next_event().await.json(), json!({"id": "doomed", "name": "Doomed"}));

    a.kill().unwrap(); // SIGKILL: no goodbye
    a.wait().unwrap();
    let left = watcher.next_named("user-leave").await;
    assert_eq!(left.json(), json!({"id": "doomed", "name": "Doomed"}));
    assert_eq!(user_ids(&b).await, ["watcher"]);
}

#[tokio::test]
async fn redis_down_makes_new_streams_and_health_fail_and_all_recovers() {
    let mut redis = RedisProcess::start();
    let a = instance(&redis).await;
    let (mut ann, _) = join(&a, "ann", "Ann").await;

    redis.stop();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let health = http().get(a.url("/healthz")).send().await.unwrap();
        if health.status() == StatusCode::SERVICE_UNAVAILABLE {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "healthz reports the outage");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let refused = SseClient::open(&a, "bob", "Bob").await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(refused.headers.contains_key("retry-after"));

    redis.restart();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let health = http().get(a.url("/healthz")).send().await.unwrap();
        if health.status() == StatusCode::OK {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "healthz recovers");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (_bob, _) = join(&a, "bob", "Bob").await;
    assert_eq!(
        ann.next_named("new-user").await.json(),
        json!({"id": "bob", "name": "Bob"}),
        "the open stream survived"
    );
}
