//! Rooms (protocol version 2) on several instances sharing one Redis: every room is shared,
//! each with its own joins, leaves and messages, the room limit is counted across instances,
//! and scroll-back reads the same history from any of them.

mod common;

use common::{Connect, PATIENCE, SseClient, SseEvent, TestServer, http, post_json, redis::RedisProcess};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::{collections::BTreeMap, time::Duration};

const SECRET: &str = "a shared secret of at least thirty-two bytes!";

async fn instance(redis: &RedisProcess, configure: impl FnOnce(&mut server::Config)) -> TestServer {
    let url = redis.url();
    TestServer::start_with(move |config| {
        config.redis_url = Some(url);
        config.session_secret = Some(SECRET.into());
        // Long enough that a loaded CI machine never takes a live instance for dead.
        config.instance_timeout_ms = 2_000;
        config.rate_burst = 1_000;
        configure(config);
    })
    .await
}

/// Opens a version 2 stream following `rooms` and reads one `all-users` per room; returns it,
/// its cookie, and each room's users as its `all-users` listed them.
async fn join_rooms(
    server: &TestServer,
    id: &str,
    cookie: Option<&str>,
    rooms: &str,
) -> (SseClient, String, Vec<Vec<String>>) {
    let mut client = SseClient::connect(server, Connect::new(id, id).cookie(cookie).rooms(rooms)).await;
    assert_eq!(client.status, StatusCode::OK, "{id} follows {rooms} on {}", server.base);
    let mut listed = Vec::new();
    for room in rooms.split(',') {
        let all_users = client.next_event().await;
        assert_eq!(all_users.event, "all-users");
        assert_eq!(all_users.json()["room"], room, "one all-users per room, in the order asked");
        listed.push(ids(&all_users.json()["users"]));
    }
    let cookie = client.cookie.clone().or(cookie.map(str::to_owned)).expect("a session");
    (client, cookie, listed)
}

fn ids(users: &Value) -> Vec<String> {
    users.as_array().expect("a list").iter().map(|u| u["id"].as_str().expect("an id").to_owned()).collect()
}

/// Posts `text` to `room` and returns the acknowledged message.
async fn say_in(server: &TestServer, cookie: &str, room: &str, text: &str) -> Value {
    let response = post_json(server, Some(cookie), json!({"message": text, "room": room})).await;
    assert_eq!(response.status(), StatusCode::OK, "posting {text:?} to {room}");
    response.json().await.expect("JSON")
}

async fn get_json(server: &TestServer, path: &str) -> Value {
    let response = http().get(server.url(path)).send().await.expect("GET");
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    response.json().await.expect("JSON")
}

/// Every room `GET /rooms` lists, with its users.
async fn rooms(server: &TestServer) -> BTreeMap<String, u64> {
    let list = get_json(server, "/rooms").await;
    list["rooms"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|room| (room["room"].as_str().unwrap().to_owned(), room["users"].as_u64().unwrap()))
        .collect()
}

fn room_map(expected: &[(&str, u64)]) -> BTreeMap<String, u64> {
    expected.iter().map(|(room, users)| ((*room).to_owned(), *users)).collect()
}

/// Waits until `server` lists exactly `expected` rooms with these many users.
async fn wait_for_rooms(server: &TestServer, expected: &[(&str, u64)]) {
    let expected = room_map(expected);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let now = rooms(server).await;
        if now == expected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} lists {now:?}, expected {expected:?}",
            server.base
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn room_users(server: &TestServer, room: &str) -> Vec<String> {
    ids(&get_json(server, &format!("/users?room={room}")).await["users"])
}

/// The next event that is not about presence.
async fn next_not_presence(client: &mut SseClient) -> SseEvent {
    loop {
        let event = client.next_event().await;
        if !["new-user", "user-leave", "users", "presence"].contains(&event.event.as_str()) {
            return event;
        }
    }
}

/// Reads `client`'s events for `window`; the presence events among them.
async fn presence_during(client: &mut SseClient, window: Duration) -> Vec<(String, Value)> {
    let deadline = tokio::time::Instant::now() + window;
    let mut seen = Vec::new();
    while let Some(event) = client.try_next_event(deadline - tokio::time::Instant::now()).await {
        if ["new-user", "user-leave", "users", "presence"].contains(&event.event.as_str()) {
            seen.push((event.event.clone(), event.json()));
        }
        if tokio::time::Instant::now() >= deadline {
            break;
        }
    }
    seen
}

#[tokio::test]
async fn instances_share_every_room_each_with_its_own_joins_messages_and_members() {
    let redis = RedisProcess::start();
    let a = instance(&redis, |_| {}).await;
    let b = instance(&redis, |_| {}).await;

    let (mut ann, ann_cookie, _) = join_rooms(&a, "ann", None, "a,b").await;
    let (mut bob, bob_cookie, listed) = join_rooms(&b, "bob", None, "b,c").await;
    assert_eq!(listed, [vec!["ann", "bob"], vec!["bob"]], "bob's view of b shows ann, joined on A");
    let joined = ann.next_event().await;
    assert_eq!(
        (joined.event.as_str(), joined.json()),
        ("new-user", json!({"room": "b", "id": "bob", "name": "bob"})),
        "ann hears bob join b, the one room they share"
    );

    // A message posted on B to b reaches A's stream, and B's.
    let hello = say_in(&b, &bob_cookie, "b", "hello from B").await;
    assert_eq!(hello["room"], "b");
    assert_eq!(next_not_presence(&mut ann).await.json(), hello);
    assert_eq!(next_not_presence(&mut bob).await.json(), hello);
    let in_a = say_in(&a, &ann_cookie, "a", "only in a").await;
    assert_eq!(next_not_presence(&mut ann).await.json(), in_a);

    // Posting to a room the author is not in is refused on either instance.
    for server in [&a, &b] {
        for (cookie, room) in [(&bob_cookie, "a"), (&ann_cookie, "c"), (&ann_cookie, "general")] {
            let response = post_json(server, Some(cookie), json!({"message": "hi", "room": room})).await;
            assert_eq!(response.status(), StatusCode::FORBIDDEN, "to {room} on {}", server.base);
            assert_eq!(response.text().await.unwrap(), "not in room");
        }
    }

    // Both instances list every room with its users, and page each room's users alike.
    let expected = [("general", 0), ("a", 1), ("b", 2), ("c", 1)];
    for server in [&a, &b] {
        wait_for_rooms(server, &expected).await;
        assert_eq!(room_users(server, "b").await, ["ann", "bob"]);
        assert_eq!(room_users(server, "c").await, ["bob"]);
    }

    // Scroll-back reads the same history from either instance.
    let again = say_in(&a, &ann_cookie, "b", "answer from A").await;
    assert_eq!(next_not_presence(&mut bob).await.json(), again, "bob never saw a's message");
    for server in [&a, &b] {
        let page = get_json(server, "/messages?room=b").await;
        assert_eq!(page, json!({"messages": [hello, again], "more": false}));
        let page = get_json(server, "/messages?room=a").await;
        assert_eq!(page, json!({"messages": [in_a], "more": false}));
        let page = get_json(server, &format!("/messages?room=b&before={}", again["seq"])).await;
        assert_eq!(page, json!({"messages": [hello], "more": false}));
    }

    // An instance that starts now reads every room as it stands.
    let c = instance(&redis, |_| {}).await;
    wait_for_rooms(&c, &expected).await;
    assert_eq!(room_users(&c, "b").await, ["ann", "bob"]);
    let (_cy, _, listed) = join_rooms(&c, "cy", None, "a,c").await;
    assert_eq!(listed, [vec!["ann", "cy"], vec!["bob", "cy"]]);
    for (client, room) in [(&mut ann, "a"), (&mut bob, "c")] {
        let joined = client.next_named("new-user").await;
        assert_eq!(joined.json(), json!({"room": room, "id": "cy", "name": "cy"}));
    }

    // Nobody heard of a join in a room they do not follow.
    for (client, expected_joins) in [(&mut ann, 2), (&mut bob, 1)] {
        assert!(presence_during(client, Duration::from_millis(300)).await.is_empty());
        assert_eq!(client.raw.matches("event: new-user").count(), expected_joins, "{}", client.raw);
        assert!(!client.raw.contains("\"room\":\"general\""), "{}", client.raw);
    }
}

#[tokio::test]
async fn a_leave_on_one_instance_is_heard_on_the_other_after_the_grace_period_room_by_room() {
    const GRACE: Duration = Duration::from_millis(1_000);
    let redis = RedisProcess::start();
    let grace = |config: &mut server::Config| config.leave_grace_ms = GRACE.as_millis() as u64;
    let a = instance(&redis, grace).await;
    let b = instance(&redis, grace).await;

    let (ann_ab, ann_cookie, _) = join_rooms(&a, "ann", None, "a,b").await;
    let (mut bob, _, listed) = join_rooms(&b, "bob", None, "b").await;
    assert_eq!(listed, [vec!["ann", "bob"]]);
    let (mut carol, _, listed) = join_rooms(&b, "carol", None, "a").await;
    assert_eq!(listed, [vec!["ann", "carol"]]);
    // Ann moves to b alone, on B: open the new stream, then close the old one.
    let (ann_b, _, _) = join_rooms(&b, "ann", Some(&ann_cookie), "b").await;
    let held = SseClient::connect(&a, Connect::new("ann", "Mallory").rooms("c")).await;
    assert_eq!(held.status, StatusCode::CONFLICT, "ann's id is held across instances");

    drop(ann_ab);
    let closed_at = tokio::time::Instant::now();
    tokio::time::sleep(GRACE / 4).await;
    for server in [&a, &b] {
        assert_eq!(room_users(server, "a").await, ["ann", "carol"], "within the grace period");
    }
    let left = carol.next_named("user-leave").await;
    assert_eq!(left.json(), json!({"room": "a", "id": "ann", "name": "ann"}));
    assert!(closed_at.elapsed() >= GRACE, "after the grace period: {:?}", closed_at.elapsed());
    for server in [&a, &b] {
        wait_for_rooms(server, &[("general", 0), ("a", 1), ("b", 2)]).await;
    }
    assert!(presence_during(&mut bob, Duration::from_millis(300)).await.is_empty(), "ann is still in b");

    drop(ann_b);
    let closed_at = tokio::time::Instant::now();
    let left = bob.next_named("user-leave").await;
    assert_eq!(left.json(), json!({"room": "b", "id": "ann", "name": "ann"}));
    assert!(closed_at.elapsed() >= GRACE, "after the grace period: {:?}", closed_at.elapsed());
    for server in [&a, &b] {
        wait_for_rooms(server, &[("general", 0), ("a", 1), ("b", 1)]).await;
    }
    // Her last stream anywhere is gone: the id is free again, on every instance.
    let (_new_ann, _, _) = join_rooms(&a, "ann", None, "c").await;
}

#[tokio::test]
async fn the_room_limit_counts_rooms_created_on_every_instance() {
    let redis = RedisProcess::start();
    let limited = |config: &mut server::Config| {
        config.max_rooms = 3;
        config.leave_grace_ms = 200;
    };
    let a = instance(&redis, limited).await;
    let b = instance(&redis, limited).await;

    let (x, x_cookie, _) = join_rooms(&a, "x", None, "r1").await;
    let (y, _, _) = join_rooms(&b, "y", None, "r2").await;
    for server in [&a, &b] {
        wait_for_rooms(server, &[("general", 0), ("r1", 1), ("r2", 1)]).await;
        let refused = SseClient::connect(server, Connect::new("z", "z").rooms("general,r3")).await;
        assert_eq!(refused.status, StatusCode::CONFLICT, "a fourth room, on {}", server.base);
        assert!(refused.cookie.is_none(), "a refused stream binds nothing");
        let reason = http().get(server.url("/sse?id=z&name=z&rooms=r3")).send().await.unwrap();
        assert_eq!(reason.text().await.unwrap(), "too many rooms");
    }
    // The identity's 409 comes first.
    let taken = http().get(b.url("/sse?id=x&name=x&rooms=r3")).send().await.unwrap();
    assert_eq!(taken.status(), StatusCode::CONFLICT);
    assert_ne!(taken.text().await.unwrap(), "too many rooms");
    // Rooms that exist are not counted again, and z bound nothing when refused.
    let (z, _, _) = join_rooms(&b, "z", None, "r1,r2").await;

    // r1 has a message, so it outlives its users; r2 goes with its last user, on both.
    say_in(&a, &x_cookie, "r1", "kept").await;
    drop((x, y));
    for server in [&a, &b] {
        wait_for_rooms(server, &[("general", 0), ("r1", 1), ("r2", 1)]).await;
    }
    drop(z);
    for server in [&a, &b] {
        wait_for_rooms(server, &[("general", 0), ("r1", 0)]).await;
    }
    let (_w, _, _) = join_rooms(&a, "w", None, "r3").await;
    let refused = SseClient::connect(&b, Connect::new("v", "v").rooms("r4")).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "general, r1 (its message) and r3 exist");
}

#[tokio::test]
async fn a_killed_instance_has_its_users_leave_every_room_they_followed() {
    use std::{
        io::{BufRead, BufReader},
        process::{Command, Stdio},
    };
    let redis = RedisProcess::start();
    let b = instance(&redis, |_| {}).await;
    let (mut in_a, _, _) = join_rooms(&b, "in-a", None, "a").await;
    let (mut in_b, _, _) = join_rooms(&b, "in-b", None, "b").await;

    let data = tempfile::tempdir().unwrap();
    let mut killed = Command::new(env!("CARGO_BIN_EXE_server"))
        .args(["--addr", "127.0.0.1:0", "--leave-grace-ms", "100", "--instance-timeout-ms", "2000"])
        .args(["--redis-url", &redis.url(), "--session-secret", SECRET, "--data-dir"])
        .arg(data.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(killed.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let base = line.trim().strip_prefix("ssechat listening on ").unwrap().to_owned();
    let response = reqwest::Client::new()
        .get(format!("{base}/sse?id=doomed&name=Doomed&rooms=a,b,c"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut doomed = SseClient::from_response(response);
    assert_eq!(doomed.next_event().await.event, "all-users");
    for (watcher, room) in [(&mut in_a, "a"), (&mut in_b, "b")] {
        let joined = watcher.next_named("new-user").await;
        assert_eq!(joined.json(), json!({"room": room, "id": "doomed", "name": "Doomed"}));
    }
    wait_for_rooms(&b, &[("general", 0), ("a", 2), ("b", 2), ("c", 1)]).await;

    killed.kill().unwrap(); // SIGKILL: no goodbye
    killed.wait().unwrap();
    for (watcher, room) in [(&mut in_a, "a"), (&mut in_b, "b")] {
        let left = watcher.next_named("user-leave").await;
        assert_eq!(left.json(), json!({"room": room, "id": "doomed", "name": "Doomed"}));
    }
    wait_for_rooms(&b, &[("general", 0), ("a", 1), ("b", 1)]).await;
    // The id is free again.
    let (_doomed_again, _, _) = join_rooms(&b, "doomed", None, "general").await;
}
