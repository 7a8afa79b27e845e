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

/// Every instance's Redis keys start with this.
const PREFIX: &str = "faults";

async fn instance(redis: &RedisProcess) -> TestServer {
    instance_with(redis, |_| {}).await
}

async fn instance_with(redis: &RedisProcess, configure: impl FnOnce(&mut server::Config)) -> TestServer {
    let url = redis.url();
    TestServer::start_with(move |config| {
        config.redis_url = Some(url);
        config.redis_prefix = PREFIX.into();
        config.session_secret = Some(SECRET.into());
        // Long enough that a loaded CI machine never takes a live instance for dead.
        config.instance_timeout_ms = 2_000;
        config.rate_burst = 1_000_000;
        config.rate_per_sec = 1_000_000.0;
        configure(config);
    })
    .await
}

/// A plain connection, for what the test does to Redis behind the instances' backs.
async fn redis_conn(redis: &RedisProcess) -> ::redis::aio::MultiplexedConnection {
    let client = ::redis::Client::open(redis.url()).expect("Redis URL");
    client.get_multiplexed_async_connection().await.expect("connect to Redis")
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

/// Writes messages straight into the shared message stream, as the store lays them out, and
/// sets the counter to the last: what a stream looks like after entries went missing.
async fn store_messages(conn: &mut ::redis::aio::MultiplexedConnection, seqs: &[u64]) {
    for &seq in seqs {
        let json = json!({"seq": seq, "id": "ann", "name": "Ann", "message": format!("m{seq}"),
            "ts": "2026-01-01T00:00:00.000Z"});
        let _: String = ::redis::cmd("XADD")
            .arg(format!("{PREFIX}:messages"))
            .arg(format!("{seq}-0"))
            .arg("json")
            .arg(json.to_string())
            .query_async(conn)
            .await
            .expect("XADD");
    }
    let last = seqs.last().copied().unwrap_or(0);
    let _: () =
        ::redis::cmd("SET").arg(format!("{PREFIX}:seq")).arg(last).query_async(conn).await.expect("SET");
}

async fn replay_after(server: &TestServer, id: &str, after: &str) -> SseClient {
    let mut connect = Connect::new(id, id);
    connect.last_event_id_query = Some(after);
    let mut client = SseClient::connect(server, connect).await;
    assert_eq!(client.status, StatusCode::OK);
    assert_eq!(client.next_event().await.event, "all-users");
    client
}

#[tokio::test]
async fn a_last_event_id_inside_a_hole_of_the_message_stream_is_told_of_the_gap() {
    let redis = RedisProcess::start();
    let mut conn = redis_conn(&redis).await;
    // 6, 7 and 8 are gone from the middle of what is retained.
    store_messages(&mut conn, &[1, 2, 3, 4, 5, 9, 10, 11, 12]).await;

    // Replayed from memory: the instance preloaded the whole stream.
    let from_memory = instance(&redis).await;
    // Replayed from Redis: this one keeps only the newest four in memory.
    let from_redis = instance_with(&redis, |config| config.retention = 4).await;
    for (n, server) in [&from_memory, &from_redis].into_iter().enumerate() {
        // One room for both instances: every client its own id.
        let id = |name: &str| format!("{name}-{n}");
        let mut inside = replay_after(server, &id("inside"), "6").await;
        let gap = inside.next_event().await;
        assert_eq!((gap.event.as_str(), gap.json()), ("history-gap", json!({"from": 9})));
        assert_eq!(seq_of(&inside.next_event().await), 9);

        let mut before = replay_after(server, &id("before"), "7").await;
        let gap = before.next_event().await;
        assert_eq!((gap.event.as_str(), gap.json()), ("history-gap", json!({"from": 9})));

        // Nothing asked for is missing: no gap.
        let mut right_before = replay_after(server, &id("right-before"), "8").await;
        assert_eq!(seq_of(&right_before.next_event().await), 9);
        let mut up_to_date = replay_after(server, &id("up-to-date"), "10").await;
        assert_eq!(seq_of(&up_to_date.next_event().await), 11);
        drop((inside, before, right_before, up_to_date));
    }
}
