//! Instances on one Redis under faults: races at start, a frozen Redis, skewed clocks, a
//! membership log that outran its reader, holes in the message stream.

mod common;

use common::{redis::RedisProcess, *};
use reqwest::StatusCode;
use serde_json::json;
use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
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
        let id = format!("reader-{n}");
        let mut connect = Connect::new(&id, &id);
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

/// Writes messages of `general` straight into Redis as the store lays them out: into the
/// room's history always, into the feed only when `fed`, and moves the counter to the last.
/// A message in the history but not in the feed is one an instance's tailer never read (the
/// feed was trimmed before it got there).
async fn store_messages(conn: &mut ::redis::aio::MultiplexedConnection, seqs: &[u64], fed: bool) {
    for &seq in seqs {
        let json = json!({"seq": seq, "id": "ann", "name": "Ann", "message": format!("m{seq}"),
            "ts": "2026-01-01T00:00:00.000Z", "room": "general"});
        let keys = if fed { vec!["room:general", "messages"] } else { vec!["room:general"] };
        for key in keys {
            let _: String = ::redis::cmd("XADD")
                .arg(format!("{PREFIX}:{key}"))
                .arg(format!("{seq}-0"))
                .arg("json")
                .arg(json.to_string())
                .query_async(conn)
                .await
                .expect("XADD");
        }
    }
    let last = seqs.last().copied().unwrap_or(0);
    let _: () =
        ::redis::cmd("SET").arg(format!("{PREFIX}:seq")).arg(last).query_async(conn).await.expect("SET");
    let _: () = ::redis::cmd("HSET")
        .arg(format!("{PREFIX}:rooms"))
        .arg("general")
        .arg(last)
        .query_async(conn)
        .await
        .expect("HSET");
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
async fn messages_the_feed_skipped_are_replayed_from_redis_not_lost() {
    let redis = RedisProcess::start();
    let mut conn = redis_conn(&redis).await;
    let _: () =
        ::redis::cmd("SET").arg(format!("{PREFIX}:layout")).arg("2").query_async(&mut conn).await.unwrap();
    let server = instance(&redis).await;
    let (mut watcher, cookie) = join(&server, "watcher", "Watcher").await;
    // 1-5 reach the instance through the feed; 6-8 are in the room's history only.
    store_messages(&mut conn, &[1, 2, 3, 4, 5], true).await;
    for seq in 1..=5 {
        assert_eq!(seq_of(&watcher.next_named("message").await), seq);
    }
    store_messages(&mut conn, &[6, 7, 8], false).await;
    let nine = say(&server, &cookie, "after the hole").await;
    assert_eq!(nine["seq"], 9);
    assert_eq!(seq_of(&watcher.next_named("message").await), 9);

    // Memory lacks 6-8: the replay reads them from Redis, and nothing is missing, so no gap.
    let mut replay = replay_after(&server, "replay", "5").await;
    let mut got = Vec::with_capacity(4);
    for _ in 0..4 {
        let event = replay.next_event().await;
        assert_eq!(event.event, "message", "no history-gap: nothing asked for is gone");
        got.push(seq_of(&event));
    }
    assert_eq!(got, [6, 7, 8, 9]);
    // A replay after the hole is served as before.
    let mut recent = replay_after(&server, "recent", "8").await;
    assert_eq!(seq_of(&recent.next_event().await), 9);
    drop((watcher, replay, recent));
}

/// Reads `client`'s events for `window` and returns the ids of the users it heard leave.
async fn leaves_during(client: &mut SseClient, window: Duration) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + window;
    let mut left = Vec::new();
    loop {
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return left;
        }
        match client.try_next_event(deadline - now).await {
            Some(event) if event.event == "user-leave" => {
                left.push(event.json()["id"].as_str().expect("an id").to_owned());
            }
            Some(_) => {}
            None => return left,
        }
    }
}

async fn user_ids(server: &TestServer) -> Vec<String> {
    let page: serde_json::Value =
        http().get(server.url("/users")).send().await.unwrap().json().await.unwrap();
    page["users"].as_array().unwrap().iter().map(|u| u["id"].as_str().unwrap().to_owned()).collect()
}

/// Waits until `server` lists exactly `expected` (in join order).
async fn wait_for_users(server: &TestServer, expected: &[&str]) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut ticks = tokio::time::interval(Duration::from_millis(50));
    loop {
        ticks.tick().await;
        let now = user_ids(server).await;
        if now == expected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} lists {now:?}, expected {expected:?}",
            server.base
        );
    }
}

/// Posts until the post is taken (Redis may still be recovering), within [`PATIENCE`].
async fn say_once_redis_answers(server: &TestServer, cookie: &str, text: &str) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut ticks = tokio::time::interval(Duration::from_millis(100));
    loop {
        ticks.tick().await;
        let response = post_json(server, Some(cookie), json!({ "message": text })).await;
        if response.status() == StatusCode::OK {
            return response.json().await.expect("JSON answer");
        }
        assert!(tokio::time::Instant::now() < deadline, "posting {text:?} recovers: {}", response.status());
    }
}

#[tokio::test]
async fn a_frozen_redis_neither_loses_nor_invents_streams_when_its_scripts_are_retried() {
    let redis = RedisProcess::start();
    // Closed streams are noticed at the next keepalive: soon, while Redis is frozen.
    let a = instance_with(&redis, |config| config.keepalive_ms = 200).await;
    let b = instance_with(&redis, |config| config.keepalive_ms = 200).await;
    let (mut watcher, _) = join(&b, "watcher", "Watcher").await;
    let (mut frank, frank_cookie) = join(&a, "frank", "Frank").await;
    let (_carol, carol_cookie) = join(&a, "carol", "Carol").await;
    let mut carol_tab =
        SseClient::connect(&a, Connect::new("carol", "Carol").cookie(Some(&carol_cookie))).await;
    assert_eq!(carol_tab.status, StatusCode::OK);
    assert_eq!(carol_tab.next_event().await.event, "all-users");
    let (erin, _) = join(&a, "erin", "Erin").await;
    wait_for_users(&b, &["watcher", "frank", "carol", "erin"]).await;

    // Redis freezes: every call times out, and is retried, while streams close and open.
    redis.signal("STOP");
    let frozen_at = tokio::time::Instant::now();
    drop(carol_tab); // carol keeps her first tab
    drop(erin); // erin's last stream
    let dave = tokio::spawn({
        let url = a.url("/sse?id=dave&name=Dave");
        async move { reqwest::Client::new().get(url).send().await.expect("answered").status() }
    });
    assert_eq!(dave.await.unwrap(), StatusCode::SERVICE_UNAVAILABLE, "the room cannot be reached");
    // The fault lasts four seconds, whatever the test did meanwhile.
    tokio::time::sleep_until(frozen_at + Duration::from_secs(4)).await;
    redis.signal("CONT");

    // Erin, and only erin, leaves everywhere; dave's open that timed out holds nothing.
    let window = Duration::from_secs(8);
    let (on_b, on_a) = tokio::join!(leaves_during(&mut watcher, window), leaves_during(&mut frank, window));
    for (instance, left) in [("B", on_b), ("A", on_a)] {
        let unexpected: Vec<_> = left.iter().filter(|id| !["erin", "dave"].contains(&id.as_str())).collect();
        assert!(unexpected.is_empty(), "on {instance}, users who stayed left: {unexpected:?}");
        assert!(left.iter().any(|id| id == "erin"), "on {instance}, erin left: {left:?}");
    }
    for server in [&a, &b] {
        wait_for_users(server, &["watcher", "frank", "carol"]).await;
    }
    say_once_redis_answers(&a, &carol_cookie, "still here").await;
    say_once_redis_answers(&b, &frank_cookie, "me too").await;
}

#[tokio::test]
async fn an_instance_whose_clock_is_ten_seconds_off_is_not_taken_for_dead() {
    use app::protocol::{RoomName, UserId, UserName};
    use server::hub::ClusterPresence;

    let general = [RoomName::general()];
    let redis = RedisProcess::start();
    let b = instance(&redis).await;
    let (mut watcher, _) = join(&b, "watcher", "Watcher").await;

    // Two more instances, run by the test: one whose clock is 10 s slow, one 10 s fast. Each
    // holds a stream and beats as an instance does, carrying out what its reaping decides.
    let timeout = Duration::from_millis(2_000);
    let mut beating = Vec::new();
    for (id, offset_ms) in [("slow", -10_000), ("fast", 10_000)] {
        let skewed = ClusterPresence::connect(&redis.url(), PREFIX)
            .await
            .expect("connect to Redis")
            .with_clock_offset(offset_ms);
        let (user, name) = (UserId::parse(id).unwrap(), UserName::parse(id).unwrap());
        let admitted =
            skewed.open(&skewed.stream_id(), &user, &name, None, 5, &general).await.expect("Redis answers");
        assert!(admitted.is_ok(), "{id} joins");
        beating.push(tokio::spawn(async move {
            let mut ticks = tokio::time::interval(timeout / 3);
            loop {
                ticks.tick().await;
                if let Ok(orphaned) = skewed.heartbeat(timeout, timeout).await {
                    for (user, token) in orphaned {
                        let _ = skewed.expire(&user, token).await;
                    }
                }
            }
        }));
    }
    wait_for_users(&b, &["watcher", "slow", "fast"]).await;

    // Several timeouts pass: nobody is reaped, whoever judges.
    let left = leaves_during(&mut watcher, timeout * 4).await;
    assert!(left.is_empty(), "live instances' users left: {left:?}");
    assert_eq!(user_ids(&b).await, ["watcher", "slow", "fast"]);
    for beat in beating {
        beat.abort();
    }
}

/// Runs `call` while Redis is frozen: it must time out, having reached Redis (where it waits).
async fn times_out_while_frozen<T>(
    redis: &RedisProcess,
    call: impl std::future::Future<Output = Result<T, server::hub::ClusterError>>,
) {
    redis.signal("STOP");
    let outcome = call.await;
    redis.signal("CONT");
    assert!(outcome.is_err(), "an answer from a frozen Redis");
}

#[tokio::test]
async fn presence_scripts_retried_after_a_timeout_change_nothing_the_second_time() {
    use app::protocol::{RoomName, UserId, UserName};
    use server::hub::ClusterPresence;

    let redis = RedisProcess::start();
    let b = instance(&redis).await;
    let (_watcher, _) = join(&b, "watcher", "Watcher").await;
    let general = [RoomName::general()];
    let presence = ClusterPresence::connect(&redis.url(), PREFIX).await.expect("connect to Redis");
    let user = |id: &str| (UserId::parse(id).unwrap(), UserName::parse(id).unwrap());

    // Carol, two tabs. The first tab's close times out; its retry must not count it twice.
    let (carol, carol_name) = user("carol");
    let (first_tab, second_tab) = (presence.stream_id(), presence.stream_id());
    let joined = presence.open(&first_tab, &carol, &carol_name, None, 5, &general).await.unwrap().unwrap();
    let session = joined.new_session.expect("carol's first stream binds her id");
    let again = presence.open(&second_tab, &carol, &carol_name, Some(&session), 5, &general).await.unwrap();
    assert!(again.is_ok(), "carol's second tab opens");
    times_out_while_frozen(&redis, presence.close(&first_tab)).await;
    assert_eq!(presence.close(&first_tab).await.unwrap(), None, "carol has a tab left");

    // Erin's open times out; its retry answers as the first run did: she joined.
    let (erin, erin_name) = user("erin");
    let erins = presence.stream_id();
    times_out_while_frozen(&redis, presence.open(&erins, &erin, &erin_name, None, 5, &general)).await;
    let retried = presence.open(&erins, &erin, &erin_name, None, 5, &general).await.unwrap();
    assert!(retried.is_ok_and(|admitted| admitted.new_session.is_some()), "the retry reports the join");

    // Dave's open times out and is given up: closing it leaves nothing behind, and his
    // departure goes through.
    let (dave, dave_name) = user("dave");
    let daves = presence.stream_id();
    times_out_while_frozen(&redis, presence.open(&daves, &dave, &dave_name, None, 5, &general)).await;
    let token = presence.close(&daves).await.unwrap().expect("it was dave's only stream");
    assert_eq!(presence.close(&daves).await.unwrap(), Some(token), "a retried close answers the same");
    presence.expire(&dave, token).await.unwrap();
    wait_for_users(&b, &["watcher", "carol", "erin"]).await;

    // An open that reaches Redis only after its stream was closed changes nothing.
    let late = presence.stream_id();
    assert_eq!(presence.close(&late).await.unwrap(), None);
    let refused = presence.open(&late, &dave, &dave_name, None, 5, &general).await.unwrap();
    assert!(refused.is_err(), "a closed stream does not open");
    assert_eq!(user_ids(&b).await, ["watcher", "carol", "erin"]);
}

/// Binds `ARGV[2]` and joins it to `general` behind the instances' backs, as another instance
/// would: the identity, the room, and the log entries. `ARGV[1]` is the presence prefix,
/// `ARGV[3]` the binding.
const GHOST_JOIN: &str = r#"
local function join(P, id, binding)
  local token = redis.call('INCR', P .. ':tokens')
  local no = redis.call('INCR', P .. ':joins')
  redis.call('HSET', P .. ':id:' .. id, 'name', id, 'binding', binding, 'token', token, 'no', no, 'r:general', token)
  redis.call('ZADD', P .. ':ids', no, id)
  redis.call('XADD', P .. ':log', '*', 'n', redis.call('INCR', P .. ':logno'), 't', 'bind', 'id', id, 'name', id, 'binding', binding, 'no', no)
  no = redis.call('INCR', P .. ':joins')
  redis.call('ZADD', P .. ':members:general', no, id)
  redis.call('SADD', P .. ':rooms', 'general')
  redis.call('XADD', P .. ':log', '*', 'n', redis.call('INCR', P .. ':logno'), 't', 'join', 'room', 'general', 'id', id, 'name', id, 'binding', binding, 'no', no)
end
"#;

/// In one step, so that no reader of the log sees between: `ARGV[2]` leaves `general` and is
/// unbound, `ARGV[3]` joins, and the log is trimmed to its last entry, as when a reader falls
/// behind the log's length.
const LEAVE_JOIN_AND_TRIM: &str = r#"
local P = ARGV[1]
redis.call('DEL', P .. ':id:' .. ARGV[2])
redis.call('ZREM', P .. ':ids', ARGV[2])
redis.call('ZREM', P .. ':members:general', ARGV[2])
redis.call('XADD', P .. ':log', '*', 'n', redis.call('INCR', P .. ':logno'), 't', 'leave', 'room', 'general', 'id', ARGV[2])
redis.call('XADD', P .. ':log', '*', 'n', redis.call('INCR', P .. ':logno'), 't', 'unbind', 'id', ARGV[2])
join(P, ARGV[3], ARGV[4])
redis.call('XTRIM', P .. ':log', 'MAXLEN', 1)
"#;

#[tokio::test]
async fn a_mirror_that_lost_log_entries_reads_the_room_again_and_misses_no_leave() {
    use server::session::Binding;

    let redis = RedisProcess::start();
    let b = instance(&redis).await;
    let (mut watcher, _) = join(&b, "watcher", "Watcher").await;
    let mut conn = redis_conn(&redis).await;
    let presence_prefix = format!("{PREFIX}:presence");

    let _: () = ::redis::Script::new(&format!("{GHOST_JOIN}join(ARGV[1], ARGV[2], ARGV[3])"))
        .arg(&presence_prefix)
        .arg("ghost")
        .arg(Binding::random().to_text())
        .invoke_async(&mut conn)
        .await
        .expect("ghost joins");
    assert_eq!(watcher.next_named("new-user").await.json()["id"], "ghost");

    let _: () = ::redis::Script::new(&format!("{GHOST_JOIN}{LEAVE_JOIN_AND_TRIM}"))
        .arg(&presence_prefix)
        .arg("ghost")
        .arg("spectre")
        .arg(Binding::random().to_text())
        .invoke_async(&mut conn)
        .await
        .expect("ghost leaves, spectre joins, the log is trimmed");

    wait_for_users(&b, &["watcher", "spectre"]).await;
    let left = watcher.next_named("user-leave").await;
    assert_eq!(left.json()["id"], "ghost", "the lost leave is announced");
}

#[tokio::test]
async fn a_departure_nobody_carried_out_is_carried_out_by_the_heartbeats() {
    use app::protocol::{RoomName, UserId, UserName};
    use server::hub::ClusterPresence;

    let redis = RedisProcess::start();
    let b = instance(&redis).await;
    let (mut watcher, _) = join(&b, "watcher", "Watcher").await;
    // An instance closes the user's last stream, and is gone before it expires the user (or
    // its retries gave up, or the answer that named the departure was lost).
    let general = [RoomName::general()];
    let presence = ClusterPresence::connect(&redis.url(), PREFIX).await.expect("connect to Redis");
    let (lost, name) = (UserId::parse("lost").unwrap(), UserName::parse("Lost").unwrap());
    let stream = presence.stream_id();
    assert!(presence.open(&stream, &lost, &name, None, 5, &general).await.unwrap().is_ok());
    assert!(presence.close(&stream).await.unwrap().is_some(), "it was the last stream");
    drop(presence);

    let left = watcher.next_named("user-leave").await;
    assert_eq!(left.json()["id"], "lost");
    assert_eq!(user_ids(&b).await, ["watcher"]);
}

#[tokio::test]
async fn a_room_departure_nobody_carried_out_is_carried_out_by_the_heartbeats_room_by_room() {
    use app::protocol::{RoomName, UserId, UserName};
    use server::hub::ClusterPresence;

    let redis = RedisProcess::start();
    let b = instance(&redis).await;
    let (mut watcher, _) = join(&b, "watcher", "Watcher").await;
    let mut side = SseClient::connect(&b, Connect::new("side", "Side").rooms("side")).await;
    assert_eq!(side.status, StatusCode::OK);
    // A user follows general and side, then closes their last stream in side, and the
    // instance that closed it is gone before it carries out the departure. Its other stream,
    // in general, stays open (and its instance is never taken for dead: it never beat).
    let presence = ClusterPresence::connect(&redis.url(), PREFIX).await.expect("connect to Redis");
    let (roamer, name) = (UserId::parse("roamer").unwrap(), UserName::parse("Roamer").unwrap());
    let (general, both) = (RoomName::general(), [RoomName::general(), RoomName::parse("side").unwrap()]);
    let (in_both, in_general) = (presence.stream_id(), presence.stream_id());
    let joined = presence.open(&in_both, &roamer, &name, None, 5, &both).await.unwrap().unwrap();
    let session = joined.new_session.expect("the first stream binds the id");
    let again = presence.open(&in_general, &roamer, &name, Some(&session), 5, &[general]).await.unwrap();
    assert!(again.is_ok());
    assert_eq!(side.next_named("new-user").await.json()["id"], "roamer");
    assert!(presence.close(&in_both).await.unwrap().is_some(), "the last stream in side");
    drop(presence);

    let left = side.next_named("user-leave").await;
    assert_eq!(left.json(), json!({"room": "side", "id": "roamer", "name": "Roamer"}));
    assert!(
        leaves_during(&mut watcher, Duration::from_millis(300)).await.is_empty(),
        "roamer stays in general"
    );
    assert_eq!(user_ids(&b).await, ["watcher", "roamer"]);
}
