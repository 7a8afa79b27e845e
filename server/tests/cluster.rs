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
        // Long enough that a loaded CI machine never takes a live instance for dead.
        config.instance_timeout_ms = 2_000;
        config.rate_burst = 1_000;
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
        .args(["--addr", "127.0.0.1:0", "--leave-grace-ms", "100", "--instance-timeout-ms", "2000"])
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

    let cookie = doomed.cookie.clone().unwrap();
    let mut acknowledged = Vec::new();
    for i in 0..5 {
        let response = http()
            .post(format!("{base}/message"))
            .header("cookie", &cookie)
            .json(&json!({"message": format!("last words {i}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        acknowledged.push(response.json::<serde_json::Value>().await.unwrap());
    }

    a.kill().unwrap(); // SIGKILL: no goodbye
    a.wait().unwrap();
    let left = watcher.next_named("user-leave").await;
    assert_eq!(left.json(), json!({"id": "doomed", "name": "Doomed"}));
    assert_eq!(user_ids(&b).await, ["watcher"]);

    // Everything A acknowledged before it died is readable through B.
    let mut connect = Connect::new("late", "Late");
    connect.last_event_id_query = Some("0");
    let mut late = SseClient::connect(&b, connect).await;
    let replayed: Vec<_> = messages(&mut late, 5).await.iter().map(SseEvent::json).collect();
    assert_eq!(replayed, acknowledged);
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

fn seqs(events: &[SseEvent]) -> Vec<u64> {
    events.iter().map(|e| e.json()["seq"].as_u64().unwrap()).collect()
}

async fn messages(client: &mut SseClient, n: usize) -> Vec<SseEvent> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        out.push(client.next_named("message").await);
    }
    out
}

#[tokio::test]
async fn messages_posted_on_any_instance_reach_every_stream_once_in_seq_order() {
    let redis = RedisProcess::start();
    let a = instance(&redis).await;
    let b = instance(&redis).await;
    let (mut reader_a, _) = join(&a, "reader-a", "Reader A").await;
    let (mut reader_b, _) = join(&b, "reader-b", "Reader B").await;
    let (_ann, ann) = join(&a, "ann", "Ann").await;
    let (_bob, bob) = join(&b, "bob", "Bob").await;

    // Several publishers on both instances, interleaved.
    let mut posts = Vec::new();
    for (server, cookie) in [(&a, &ann), (&b, &bob)] {
        for i in 0..20 {
            let (url, cookie) = (server.url("/message"), cookie.clone());
            posts.push(tokio::spawn(async move {
                let body = json!({ "message": format!("m{i}") });
                let response = http().post(url).header("cookie", cookie).json(&body).send().await.unwrap();
                assert_eq!(response.status(), StatusCode::OK);
                response.json::<serde_json::Value>().await.unwrap()["seq"].as_u64().unwrap()
            }));
        }
    }
    let mut acknowledged = Vec::new();
    for post in posts {
        acknowledged.push(post.await.unwrap());
    }
    acknowledged.sort_unstable();
    assert_eq!(acknowledged, (1..=40).collect::<Vec<_>>(), "one seq sequence across instances");
    for reader in [&mut reader_a, &mut reader_b] {
        assert_eq!(seqs(&messages(reader, 40).await), (1..=40).collect::<Vec<_>>());
    }

    // A cookie from A posts on B, as the same author.
    let on_b = say(&b, &ann, "from A's cookie, on B").await;
    assert_eq!((on_b["id"].as_str(), on_b["seq"].as_u64()), (Some("ann"), Some(41)));
    assert_eq!(reader_a.next_named("message").await.json(), on_b);
}

#[tokio::test]
async fn a_client_moving_to_another_instance_gets_exactly_what_it_missed() {
    let redis = RedisProcess::start();
    let a = instance(&redis).await;
    let b = instance(&redis).await;
    let (_ann, ann) = join(&a, "ann", "Ann").await;
    let (mut bob, bob_cookie) = join(&a, "bob", "Bob").await;
    say(&a, &ann, "one").await;
    let seen = bob.next_named("message").await;
    drop(bob);
    for text in ["two", "three"] {
        say(&b, &ann, text).await;
    }
    let mut connect = Connect::new("bob", "Bob").cookie(Some(&bob_cookie));
    let last = seen.id.clone().unwrap();
    connect.last_event_id_header = Some(&last);
    let mut bob = SseClient::connect(&b, connect).await;
    assert_eq!(bob.status, StatusCode::OK);
    let missed: Vec<_> = messages(&mut bob, 2).await.iter().map(|e| e.json()["message"].clone()).collect();
    assert_eq!(missed, [json!("two"), json!("three")]);
    let fresh = say(&a, &ann, "four").await;
    assert_eq!(bob.next_named("message").await.json(), fresh, "nothing twice");
}

#[tokio::test]
async fn redis_outage_refuses_posts_with_503_and_loses_nothing_acknowledged() {
    let mut redis = RedisProcess::start();
    let a = instance(&redis).await;
    let b = instance(&redis).await;
    let (mut reader, _) = join(&b, "reader", "Reader").await;
    let (_ann, ann) = join(&a, "ann", "Ann").await;
    say(&a, &ann, "before").await;

    redis.stop();
    let refused = post_json(&a, Some(&ann), json!({"message": "during"})).await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(refused.headers().contains_key("retry-after"));
    assert!(!refused.text().await.unwrap().is_empty(), "a plain reason");

    redis.restart();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let after = loop {
        let response = post_json(&a, Some(&ann), json!({"message": "after"})).await;
        if response.status() == StatusCode::OK {
            break response.json::<serde_json::Value>().await.unwrap();
        }
        assert!(tokio::time::Instant::now() < deadline, "posting recovers");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    // The stream on B stayed open and gets both acknowledged messages, once each, in order.
    let got = messages(&mut reader, 2).await;
    assert_eq!(got[0].json()["message"], "before");
    assert_eq!(got[1].json(), after);
    assert_eq!(seqs(&got), [1, 2]);
}
