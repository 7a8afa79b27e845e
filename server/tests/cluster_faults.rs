//! Instances on one Redis under faults: races at start, a frozen Redis, skewed clocks, a
//! membership log that outran its reader, holes in the message stream.

mod common;

use common::{redis::RedisProcess, *};
use reqwest::StatusCode;
use serde_json::json;
use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

const SECRET: &str = "a shared secret of at least thirty-two bytes!";

async fn instance(redis: &RedisProcess) -> TestServer {
    let url = redis.url();
    TestServer::start_with(move |config| {
        config.redis_url = Some(url);
        config.session_secret = Some(SECRET.into());
        // Long enough that a loaded CI machine never takes a live instance for dead.
        config.instance_timeout_ms = 2_000;
        config.rate_burst = 1_000_000;
        config.rate_per_sec = 1_000_000.0;
    })
    .await
}

fn seq_of(event: &SseEvent) -> u64 {
    event.json()["seq"].as_u64().expect("a message has a seq")
}

/// Posts as `cookie` on `server` until `stop` is set; returns the highest acknowledged seq.
async fn post_until(server: String, cookie: String, stop: Arc<AtomicBool>) -> u64 {
    let client = http();
    let mut highest = 0;
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let response = client
            .post(format!("{server}/message"))
            .header("cookie", &cookie)
            .json(&json!({ "message": format!("m{i}") }))
            .send()
            .await
            .expect("post");
        assert_eq!(response.status(), StatusCode::OK);
        let message: serde_json::Value = response.json().await.expect("JSON answer");
        highest = highest.max(message["seq"].as_u64().expect("seq"));
    }
    highest
}

/// Reads messages until `last` and asserts they are exactly `after + 1 ..= last`, in order.
async fn assert_every_seq_once_in_order(client: &mut SseClient, after: u64, last: u64) {
    let mut expected = after + 1;
    while expected <= last {
        let event = client.next_named("message").await;
        assert_eq!(seq_of(&event), expected, "every seq once, in order (replayed after {after})");
        expected += 1;
    }
}

#[tokio::test]
async fn an_instance_started_while_another_takes_posts_replays_no_message_twice() {
    let redis = RedisProcess::start();
    let a = instance(&redis).await;
    let (_ann_stream, ann) = join(&a, "ann", "Ann").await;
    say(&a, &ann, "before anyone else starts").await;

    let stop = Arc::new(AtomicBool::new(false));
    let posters: Vec<_> =
        (0..4).map(|_| tokio::spawn(post_until(a.base.clone(), ann.clone(), Arc::clone(&stop)))).collect();

    // Each new instance fixes its feed's start, then reads the recent messages: posts keep
    // landing in between.
    let mut instances = Vec::new();
    for n in 0..4 {
        let b = instance(&redis).await;
        let mut connect = Connect::new("", "");
        let id = format!("reader-{n}");
        connect.id = &id;
        connect.name = &id;
        connect.last_event_id_query = Some("1");
        let reader = SseClient::connect(&b, connect).await;
        assert_eq!(reader.status, StatusCode::OK);
        instances.push((b, reader));
    }

    stop.store(true, Ordering::Relaxed);
    let mut last = 0;
    for poster in posters {
        last = last.max(poster.await.expect("poster"));
    }
    assert!(last > 50, "the posters were busy ({last} messages)");
    for (_b, reader) in &mut instances {
        assert_every_seq_once_in_order(reader, 1, last).await;
    }
}
