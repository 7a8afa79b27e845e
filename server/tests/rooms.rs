//! Protocol version 2 against a real listener: rooms, a stream that follows several, one
//! `Last-Event-ID` for all of them, scroll-back, the room list, the limits, and a version 1
//! stream beside version 2 ones that sees exactly version 1.

mod common;

use common::{Connect, SseClient, SseEvent, TestServer, http, post_json};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

/// Opens a version 2 stream following `rooms` and reads one `all-users` per room.
async fn join_rooms(server: &TestServer, id: &str, cookie: Option<&str>, rooms: &str) -> (SseClient, String) {
    let mut client = SseClient::connect(server, Connect::new(id, id).cookie(cookie).rooms(rooms)).await;
    assert_eq!(client.status, StatusCode::OK, "{id} follows {rooms}");
    for room in rooms.split(',') {
        let all_users = client.next_event().await;
        assert_eq!(all_users.event, "all-users");
        assert_eq!(all_users.json()["room"], room, "one all-users per room, in the order asked");
    }
    let cookie = client.cookie.clone().or(cookie.map(str::to_owned)).expect("a session");
    (client, cookie)
}

/// Posts `text` to `room` and returns the acknowledged message.
async fn say_in(server: &TestServer, cookie: &str, room: &str, text: &str) -> Value {
    let response = post_json(server, Some(cookie), json!({"message": text, "room": room})).await;
    assert_eq!(response.status(), StatusCode::OK, "posting {text:?} to {room}");
    response.json().await.expect("JSON")
}

fn seq(message: &Value) -> u64 {
    message["seq"].as_u64().expect("a seq")
}

/// Reads `message` events (skipping presence) until `count` have come.
async fn messages(client: &mut SseClient, count: usize) -> Vec<Value> {
    let mut seen = Vec::new();
    while seen.len() < count {
        let event = client.next_event().await;
        if event.event == "message" {
            assert_eq!(event.id.as_deref().map(str::parse::<u64>), Some(Ok(seq(&event.json()))));
            seen.push(event.json());
        }
    }
    seen
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

async fn get_json(server: &TestServer, path: &str) -> (StatusCode, Value) {
    let response = http().get(server.url(path)).send().await.expect("GET");
    let status = response.status();
    let body = if status == StatusCode::OK { response.json().await.expect("JSON") } else { Value::Null };
    (status, body)
}

#[tokio::test]
async fn every_event_of_a_version_2_stream_names_its_room() {
    let server = TestServer::start().await;
    let (mut ann, ann_cookie) = join_rooms(&server, "ann", None, "general,dev").await;
    let (_bob, bob_cookie) = join_rooms(&server, "bob", None, "dev").await;
    let joined = ann.next_named("new-user").await;
    assert_eq!(joined.json(), json!({"room": "dev", "id": "bob", "name": "bob"}));

    let answer = say_in(&server, &bob_cookie, "dev", "hello dev").await;
    assert_eq!(answer["room"], "dev", "a post that names its room is answered with it");
    let message = next_not_presence(&mut ann).await;
    assert_eq!((message.event.as_str(), message.json()), ("message", answer.clone()));

    // A post without `room` is in general and answered in version 1's shape.
    let plain = post_json(&server, Some(&ann_cookie), json!({"message": "hi all"})).await;
    let plain: Value = plain.json().await.expect("JSON");
    assert!(plain.get("room").is_none(), "{plain}");
    let message = next_not_presence(&mut ann).await;
    assert_eq!(message.json()["room"], "general", "on a version 2 stream a message always has its room");
    assert_eq!(message.json()["seq"], plain["seq"]);
    server.shutdown().await;
}

#[tokio::test]
async fn one_last_event_id_resumes_every_followed_room_in_seq_order() {
    let server = TestServer::start().await;
    let (ann, cookie) = join_rooms(&server, "ann", None, "a,b,c").await;
    let (_dee, dee_cookie) = join_rooms(&server, "dee", None, "d").await;
    let mut seen = Vec::new();
    for (i, room) in ["a", "b", "d", "c", "a"].iter().enumerate() {
        let poster = if *room == "d" { &dee_cookie } else { &cookie };
        seen.push((room.to_string(), seq(&say_in(&server, poster, room, &format!("before {i}")).await)));
    }
    let last_seen = seen.iter().filter(|(room, _)| room != "d").map(|(_, seq)| *seq).max().unwrap();
    drop(ann);
    // Missed while away, in every room.
    let mut missed = Vec::new();
    for (i, room) in ["c", "d", "b", "a", "d", "c"].iter().enumerate() {
        let poster = if *room == "d" { &dee_cookie } else { &cookie };
        let message = say_in(&server, poster, room, &format!("after {i}")).await;
        if *room != "d" {
            missed.push(seq(&message));
        }
    }
    let last = last_seen.to_string();
    let mut back = SseClient::connect(
        &server,
        Connect {
            last_event_id_header: Some(&last),
            ..Connect::new("ann", "ann").cookie(Some(&cookie)).rooms("a,b,c")
        },
    )
    .await;
    assert_eq!(back.status, StatusCode::OK);
    for room in ["a", "b", "c"] {
        assert_eq!(back.next_named("all-users").await.json()["room"], room);
    }
    let replayed: Vec<u64> = messages(&mut back, missed.len()).await.iter().map(seq).collect();
    assert_eq!(replayed, missed, "every missed message of a, b and c once, in seq order, none of d");
    assert!(
        back.try_next_event(Duration::from_millis(300)).await.is_none_or(|event| event.event != "message")
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_stream_of_several_rooms_gets_their_live_messages_in_seq_order() {
    let server = TestServer::start_with(|config| {
        config.rate_burst = 1_000;
        config.rate_per_sec = 1_000.0;
    })
    .await;
    let (mut reader, _) = join_rooms(&server, "reader", None, "r0,r1,r2,r3").await;
    let mut posters = Vec::new();
    for n in 0..4 {
        let room = format!("r{n}");
        let (client, cookie) = join_rooms(&server, &format!("poster{n}"), None, &room).await;
        posters.push((client, cookie, room));
    }
    // Four posters at once, each in its own room: batches hold several rooms.
    let tasks: Vec<_> = posters
        .iter()
        .map(|(_, cookie, room)| {
            let (cookie, room, base) = (cookie.clone(), room.clone(), server.base.clone());
            tokio::spawn(async move {
                for i in 0..25 {
                    let response = http()
                        .post(format!("{base}/message"))
                        .header("cookie", &cookie)
                        .json(&json!({"message": format!("m{i}"), "room": room}))
                        .send()
                        .await
                        .expect("post");
                    assert_eq!(response.status(), StatusCode::OK);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("poster");
    }
    let seqs: Vec<u64> = messages(&mut reader, 100).await.iter().map(seq).collect();
    let mut sorted = seqs.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(seqs, sorted, "in seq order, none twice");
    assert_eq!(seqs.len(), 100);
    server.shutdown().await;
}

#[tokio::test]
async fn a_post_to_a_room_the_author_is_not_in_is_refused() {
    let server = TestServer::start().await;
    let (_ann, cookie) = join_rooms(&server, "ann", None, "a").await;
    let response = post_json(&server, Some(&cookie), json!({"message": "hi", "room": "b"})).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(response.text().await.unwrap(), "not in room");
    let response = post_json(&server, Some(&cookie), json!({"message": "hi"})).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN, "not in general either");
    // Shape and values come first.
    let response = post_json(&server, Some(&cookie), json!({"message": "hi", "room": "Bad Room"})).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let response = post_json(&server, Some(&cookie), json!({"message": "", "room": "b"})).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    server.shutdown().await;
}

#[tokio::test]
async fn scroll_back_pages_cover_a_room_exactly() {
    let server = TestServer::start_with(|config| {
        config.rate_burst = 1_000;
        config.rate_per_sec = 1_000.0;
    })
    .await;
    let (_ann, cookie) = join_rooms(&server, "ann", None, "talk,other").await;
    let mut talk = Vec::new();
    for i in 0..23 {
        let room = if i % 4 == 0 { "other" } else { "talk" };
        let message = say_in(&server, &cookie, room, &format!("m{i}")).await;
        if room == "talk" {
            talk.push(seq(&message));
        }
    }
    let mut pages = Vec::new();
    let mut path = "/messages?room=talk&limit=5".to_owned();
    loop {
        let (status, page) = get_json(&server, &path).await;
        assert_eq!(status, StatusCode::OK);
        let seqs: Vec<u64> = page["messages"].as_array().unwrap().iter().map(seq).collect();
        assert!(page["messages"].as_array().unwrap().iter().all(|m| m["room"] == "talk"));
        assert!(seqs.windows(2).all(|pair| pair[0] < pair[1]), "oldest first");
        let more = page["more"].as_bool().unwrap();
        pages.push(seqs.clone());
        if !more {
            break;
        }
        path = format!("/messages?room=talk&limit=5&before={}", seqs[0]);
    }
    let covered: Vec<u64> = pages.iter().rev().flatten().copied().collect();
    assert_eq!(covered, talk, "every message of the room once, none of the other");
    assert_eq!(pages[0].len(), 5);
    assert_eq!(pages.len(), talk.len().div_ceil(5), "`more` is false exactly at the oldest page");
    // A page that ends exactly at the oldest says so.
    let oldest_five = &talk[..5];
    let (_, exact) = get_json(&server, &format!("/messages?room=talk&limit=5&before={}", talk[5])).await;
    assert_eq!(exact["messages"].as_array().unwrap().iter().map(seq).collect::<Vec<_>>(), oldest_five);
    assert_eq!(exact["more"], false);
    let (_, none) = get_json(&server, "/messages?room=nowhere").await;
    assert_eq!(none, json!({"messages": [], "more": false}));
    for bad in ["/messages?limit=0", "/messages?limit=201", "/messages?before=x", "/messages?room=A"] {
        assert_eq!(get_json(&server, bad).await.0, StatusCode::BAD_REQUEST, "{bad}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn room_lists_are_checked_and_rooms_are_limited() {
    let server = TestServer::start_with(|config| config.max_rooms = 3).await;
    for bad in ["", "a,a", "a,B", "a,,b", &(0..51).map(|n| format!("r{n}")).collect::<Vec<_>>().join(",")] {
        let client = SseClient::connect(&server, Connect::new("ann", "ann").rooms(bad)).await;
        assert_eq!(client.status, StatusCode::BAD_REQUEST, "rooms={bad}");
    }
    let (_ann, cookie) = join_rooms(&server, "ann", None, "x,y").await;
    let refused = SseClient::connect(&server, Connect::new("bob", "bob").rooms("x,z")).await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert!(refused.cookie.is_none(), "a refused stream binds nothing");
    // The identity's 409 comes first.
    let taken = SseClient::connect(&server, Connect::new("ann", "ann").rooms("z")).await;
    assert_eq!(taken.status, StatusCode::CONFLICT);
    let (_bob, _) = join_rooms(&server, "bob", None, "x,general").await;
    let (_, list) = get_json(&server, "/rooms").await;
    let names: Vec<&str> =
        list["rooms"].as_array().unwrap().iter().map(|r| r["room"].as_str().unwrap()).collect();
    assert_eq!(names, ["general", "x", "y"], "no messages yet: by name");
    say_in(&server, &cookie, "y", "first").await;
    let (_, list) = get_json(&server, "/rooms").await;
    assert_eq!(list["rooms"][0], json!({"room": "y", "users": 1, "last_seq": 1}));
    assert_eq!(list["rooms"][1], json!({"room": "general", "users": 1, "last_seq": null}));
    assert_eq!(list["rooms"][2], json!({"room": "x", "users": 2, "last_seq": null}));
    let metrics = http().get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.lines().any(|line| line == "ssechat_rooms 3"), "{metrics}");
    assert!(metrics.lines().any(|line| line == "ssechat_users_online 2"), "{metrics}");
    let (_, users) = get_json(&server, "/users?room=x").await;
    assert_eq!(users["users"].as_array().unwrap().len(), 2);
    let (_, users) = get_json(&server, "/users?room=y").await;
    assert_eq!(users["users"], json!([{"id": "ann", "name": "ann"}]));
    server.shutdown().await;
}

#[tokio::test]
async fn a_version_1_stream_beside_version_2_streams_sees_exactly_version_1() {
    let server = TestServer::start().await;
    let (mut old, old_cookie) = common::join(&server, "old", "Old").await;
    let (mut new, new_cookie) = join_rooms(&server, "new", None, "general,side").await;
    let joined = old.next_event().await;
    assert_eq!((joined.event.as_str(), joined.json()), ("new-user", json!({"id": "new", "name": "new"})));
    say_in(&server, &new_cookie, "side", "elsewhere").await;
    let in_general = say_in(&server, &new_cookie, "general", "here").await;
    let mine = common::say(&server, &old_cookie, "from v1").await;
    assert!(mine.get("room").is_none());
    let first = old.next_event().await;
    assert_eq!(first.event, "message");
    let mut expected = in_general.clone();
    expected.as_object_mut().unwrap().remove("room");
    assert_eq!(first.json(), expected, "general's message, without its room; never side's");
    assert_eq!(old.next_event().await.json(), mine);
    // The version 2 stream saw all three, each with its room.
    let rooms: Vec<Value> = messages(&mut new, 3).await.iter().map(|m| m["room"].clone()).collect();
    assert_eq!(rooms, [json!("side"), json!("general"), json!("general")]);
    assert!(!old.raw.contains("\"room\""), "{}", old.raw);
    server.shutdown().await;
}

#[tokio::test]
async fn each_room_owes_its_own_history_gap() {
    let server = TestServer::start_with(|config| {
        config.retention = 3;
        config.rate_burst = 1_000;
        config.rate_per_sec = 1_000.0;
    })
    .await;
    let (_ann, cookie) = join_rooms(&server, "ann", None, "a,b").await;
    let first_b = seq(&say_in(&server, &cookie, "b", "b0").await);
    let mut a = Vec::new();
    for i in 0..5 {
        a.push(seq(&say_in(&server, &cookie, "a", &format!("a{i}")).await));
    }
    let after = (first_b - 1).to_string();
    let mut back = SseClient::connect(
        &server,
        Connect {
            last_event_id_query: Some(&after),
            ..Connect::new("ann", "ann").cookie(Some(&cookie)).rooms("a,b")
        },
    )
    .await;
    back.next_named("all-users").await;
    back.next_named("all-users").await;
    let gap = next_not_presence(&mut back).await;
    assert_eq!((gap.event.as_str(), gap.json()), ("history-gap", json!({"room": "a", "from": a[2]})));
    let replayed: Vec<u64> = messages(&mut back, 4).await.iter().map(seq).collect();
    assert_eq!(replayed, [first_b, a[2], a[3], a[4]], "b lost nothing: no gap for it");
    server.shutdown().await;
}

#[tokio::test]
async fn switching_lists_is_no_leave_and_no_join_in_the_rooms_on_both() {
    let server = TestServer::start_with(|config| config.leave_grace_ms = 500).await;
    let (mut bob, _) = join_rooms(&server, "bob", None, "b,a").await;
    let (old, cookie) = join_rooms(&server, "ann", None, "a,b").await;
    assert_eq!(bob.next_named("new-user").await.json()["room"], "b");
    assert_eq!(bob.next_named("new-user").await.json()["room"], "a");
    // The new list first, then the old stream goes: b and c stay, a is left.
    let (_new, _) = join_rooms(&server, "ann", Some(&cookie), "b,c").await;
    drop(old);
    let left = bob.next_named("user-leave").await;
    assert_eq!(
        left.json(),
        json!({"room": "a", "id": "ann", "name": "ann"}),
        "a is left after the grace period"
    );
    // Nothing about ann in b, for longer than the grace period.
    let quiet = bob.try_next_event(Duration::from_millis(1_500)).await;
    assert!(quiet.as_ref().is_none_or(|event| event.json()["id"] != "ann"), "{quiet:?}");
    let (_, users) = get_json(&server, "/users?room=b").await;
    assert_eq!(users["users"].as_array().unwrap().len(), 2);
    server.shutdown().await;
}

#[tokio::test]
async fn a_room_is_large_or_not_on_its_own() {
    let server = TestServer::start_with(|config| config.large_room_threshold = 2).await;
    let (_a, _) = join_rooms(&server, "a", None, "big,small").await;
    let (_b, _) = join_rooms(&server, "b", None, "big").await;
    let (_c, _) = join_rooms(&server, "c", None, "big").await;
    let mut d = SseClient::connect(&server, Connect::new("d", "d").rooms("small,big")).await;
    let small = d.next_event().await;
    assert_eq!((small.event.as_str(), small.json()["room"].clone()), ("all-users", json!("small")));
    assert_eq!(small.json()["users"].as_array().unwrap().len(), 2, "small has a and d: not large");
    let big = d.next_event().await;
    assert_eq!((big.event.as_str(), big.json()["room"].clone()), ("all-users", json!("big")));
    let presence = d.next_event().await;
    assert_eq!(presence.event, "presence", "big has 4 users, above the threshold of 2");
    assert_eq!((presence.json()["room"].clone(), presence.json()["count"].clone()), (json!("big"), json!(4)));
    server.shutdown().await;
}
