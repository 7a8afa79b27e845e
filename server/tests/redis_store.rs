//! The Redis message store against a real `redis-server` ([`common::redis`]: its own loopback
//! port, AOF with `appendfsync always`, killed by PID). Two `RedisStore`s on one Redis stand
//! for two server instances. Tests that do not name a room use `general`.

mod common;

use app::protocol::{ChatMessage, MessageText, RoomName, User, UserId, UserName};
use common::redis::RedisProcess;
use server::store::{MessageFeed, MessageStore, Page, RedisStore, RoomHead, StoreError};
use std::{
    sync::Arc,
    time::{Duration, Instant},
};
use tokio::sync::watch;

/// How long a test waits for something that should happen; a timeout is a failure.
const PATIENCE: Duration = Duration::from_secs(15);
/// "Within a few seconds": how soon an append must give up on a dead or hung Redis.
const FEW_SECONDS: Duration = Duration::from_secs(6);
const PREFIX: &str = "ssechat-test";

/// The store's log lines, shown with a failing test's output.
fn show_logs() {
    let _ = tracing_subscriber::fmt().with_env_filter("server=debug").with_test_writer().try_init();
}

fn author(id: &str) -> User {
    User { id: UserId::parse(id).unwrap(), name: UserName::parse(id).unwrap() }
}

fn text(s: &str) -> MessageText {
    MessageText::parse(s).unwrap()
}

fn room(name: &str) -> RoomName {
    RoomName::parse(name).unwrap()
}

fn general() -> RoomName {
    RoomName::general()
}

/// A feed that records every message it is handed, in the order it is handed them.
/// Each change wakes whoever waits on the receiver ([`wait_for_feed`]).
fn recording_feed() -> (MessageFeed, Seen) {
    let (sink, seen) = watch::channel(Vec::new());
    let feed: MessageFeed = Arc::new(move |batch: &[ChatMessage], _before_waking: &mut dyn FnMut()| {
        // The hub relies on this: one batch is consecutive seqs.
        assert!(
            batch.windows(2).all(|pair| pair[1].seq == pair[0].seq + 1),
            "a batch with a hole: {batch:?}"
        );
        sink.send_modify(|seen| seen.extend_from_slice(batch));
    });
    (feed, seen)
}

/// The messages a recording feed has been handed so far.
type Seen = watch::Receiver<Vec<ChatMessage>>;

async fn connect(redis: &RedisProcess, retention: u64) -> (RedisStore, Seen) {
    let (feed, seen) = recording_feed();
    let store = RedisStore::connect(&redis.url(), PREFIX, retention, feed).await.expect("connect to Redis");
    (store, seen)
}

/// Waits until the seqs in `seen` are exactly `expected` (a feed may lag an append by another
/// instance), and returns what it delivered. Fails at once if the feed delivers anything that
/// is not a prefix of `expected`.
async fn wait_for_feed(seen: &Seen, expected: &[u64]) -> Vec<ChatMessage> {
    let mut seen = seen.clone();
    let reached = tokio::time::timeout(
        PATIENCE,
        seen.wait_for(|now| {
            let now = seqs(now);
            assert!(expected.starts_with(&now), "the feed delivered {now:?}, expected {expected:?}");
            now == expected
        }),
    )
    .await;
    match reached {
        Ok(Ok(delivered)) => delivered.clone(),
        Ok(Err(_)) => panic!("the feed was dropped before delivering {expected:?}"),
        Err(_) => {
            drop(reached);
            panic!("the feed delivered {:?} in {PATIENCE:?}, expected {expected:?}", seqs(&seen.borrow()))
        }
    }
}

/// Appends until Redis takes it again (after a restart); every refusal must be `Unavailable`.
async fn append_once_back(store: &RedisStore, who: &str, what: &str) -> ChatMessage {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match store.append(author(who), general(), text(what)).await {
            Ok(message) => return message,
            Err(StoreError::Unavailable) => {
                assert!(Instant::now() < deadline, "appends did not recover after Redis came back");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => panic!("a refusal other than Unavailable: {error}"),
        }
    }
}

/// Asserts that `append` fails with `Unavailable`, and soon.
async fn assert_unavailable_soon(store: &RedisStore) {
    let started = Instant::now();
    let outcome =
        tokio::time::timeout(PATIENCE, store.append(author("ann"), general(), text("into the void")))
            .await
            .expect("append must not hang when Redis is gone");
    assert!(matches!(outcome, Err(StoreError::Unavailable)), "expected Unavailable, got {outcome:?}");
    assert!(started.elapsed() < FEW_SECONDS, "Unavailable took {:?}", started.elapsed());
}

fn seqs(messages: &[ChatMessage]) -> Vec<u64> {
    messages.iter().map(|m| m.seq).collect()
}

/// A plain connection, to look at or write the keys behind the store's back.
async fn raw(redis: &RedisProcess) -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(redis.url()).unwrap();
    client.get_multiplexed_async_connection().await.unwrap()
}

/// Every entry of the stream `<PREFIX>:<key>`: its id and its `json`.
async fn entries(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> Vec<(String, String)> {
    let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(format!("{PREFIX}:{key}"))
        .arg("-")
        .arg("+")
        .query_async(conn)
        .await
        .unwrap();
    reply.ids.iter().map(|entry| (entry.id.clone(), entry.get("json").unwrap())).collect()
}

/// Every field of the hash `<PREFIX>:<key>`, sorted.
async fn hash(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> =
        redis::cmd("HGETALL").arg(format!("{PREFIX}:{key}")).query_async(conn).await.unwrap();
    fields.sort();
    fields
}

#[tokio::test]
async fn seq_starts_at_one_and_grows_by_one() {
    show_logs();
    let redis = RedisProcess::start();
    let (store, seen) = connect(&redis, 100).await;
    for expected in 1..=3 {
        let message = store.append(author("ann"), general(), text(&format!("hi {expected}"))).await.unwrap();
        assert_eq!(message.seq, expected);
        assert_eq!(message.message.as_str(), format!("hi {expected}"));
        assert!(
            message.ts.ends_with('Z') && message.ts.len() == "2026-01-01T00:00:00.000Z".len(),
            "{}",
            message.ts
        );
    }
    // `append` answers after this instance's feed has the message.
    assert_eq!(seqs(&seen.borrow()), vec![1, 2, 3]);
    let stored = store.read_last(&general(), 10).await.unwrap();
    assert_eq!(seqs(&stored), vec![1, 2, 3]);
    assert_eq!(stored[2].message.as_str(), "hi 3");
    store.close().await;
}

#[tokio::test]
async fn entries_are_chat_message_json_under_their_seq_in_the_feed_and_in_their_room() {
    show_logs();
    let redis = RedisProcess::start();
    let (store, _) = connect(&redis, 100).await;
    let sent = store.append(author("ann"), room("ops"), text("look \"inside\"")).await.unwrap();
    assert_eq!(sent.room, room("ops"));

    let mut conn = raw(&redis).await;
    for key in ["messages", "room:ops"] {
        let entries = entries(&mut conn, key).await;
        assert_eq!(entries.len(), 1, "{key}");
        assert_eq!(entries[0].0, "1-0", "{key}");
        assert!(entries[0].1.contains(r#""room":"ops""#), "{key}: {}", entries[0].1);
        assert_eq!(serde_json::from_str::<ChatMessage>(&entries[0].1).unwrap(), sent, "{key}");
    }
    let counter: u64 = redis::cmd("GET").arg(format!("{PREFIX}:seq")).query_async(&mut conn).await.unwrap();
    assert_eq!(counter, 1);
    assert_eq!(hash(&mut conn, "rooms").await, vec![("ops".to_owned(), "1".to_owned())]);
    assert!(hash(&mut conn, "horizons").await.is_empty(), "nothing was trimmed");
    let layout: String =
        redis::cmd("GET").arg(format!("{PREFIX}:layout")).query_async(&mut conn).await.unwrap();
    assert_eq!(layout, "2");
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_one_sequence_and_both_feeds_get_every_message_in_order() {
    show_logs();
    let redis = RedisProcess::start();
    let (a, seen_a) = connect(&redis, 10_000).await;
    let (b, seen_b) = connect(&redis, 10_000).await;
    let (a, b) = (Arc::new(a), Arc::new(b));

    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let store = Arc::clone(if i % 2 == 0 { &a } else { &b });
            tokio::spawn(async move { store.append(author("ann"), general(), text(&format!("m{i}"))).await })
        })
        .collect();
    let mut assigned = Vec::new();
    for task in tasks {
        assigned.push(task.await.unwrap().unwrap().seq);
    }
    assigned.sort_unstable();
    let all: Vec<u64> = (1..=200).collect();
    assert_eq!(assigned, all, "seqs are distinct and consecutive across instances");
    wait_for_feed(&seen_a, &all).await;
    wait_for_feed(&seen_b, &all).await;
    assert_eq!(seqs(&a.read_after(&general(), 0, 1_000).await.unwrap().messages), all);
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn an_instance_started_later_feeds_only_what_comes_after_unless_told_where_to_start() {
    show_logs();
    let redis = RedisProcess::start();
    let (first, _) = connect(&redis, 100).await;
    for i in 0..3 {
        first.append(author("ann"), general(), text(&format!("early {i}"))).await.unwrap();
    }
    let (late, seen_late) = connect(&redis, 100).await;
    let (feed, seen_from_one) = recording_feed();
    let from_one = RedisStore::connect_after(&redis.url(), PREFIX, 100, feed, 1).await.unwrap();
    wait_for_feed(&seen_from_one, &[2, 3]).await;

    first.append(author("ann"), general(), text("news")).await.unwrap();
    wait_for_feed(&seen_late, &[4]).await;
    wait_for_feed(&seen_from_one, &[2, 3, 4]).await;
    for store in [first, late, from_one] {
        store.close().await;
    }
}

#[tokio::test]
async fn read_after_read_last_and_retention_follow_the_sqlite_store() {
    show_logs();
    let redis = RedisProcess::start();
    let (store, _) = connect(&redis, 3).await;

    let empty = store.read_after(&general(), 0, 10).await.unwrap();
    assert!(empty.messages.is_empty());
    assert_eq!(empty.horizon, 0);
    assert!(store.read_last(&general(), 10).await.unwrap().is_empty());

    for i in 1..=5 {
        store.append(author("ann"), general(), text(&format!("m{i}"))).await.unwrap();
    }
    let replay = store.read_after(&general(), 0, 100).await.unwrap();
    assert_eq!(replay.horizon, 2, "the newest message no longer retained");
    assert_eq!(seqs(&replay.messages), vec![3, 4, 5]);
    assert_eq!(replay.messages[0].message.as_str(), "m3");
    assert_eq!(seqs(&store.read_after(&general(), 3, 100).await.unwrap().messages), vec![4, 5]);
    assert_eq!(seqs(&store.read_after(&general(), 3, 1).await.unwrap().messages), vec![4]);
    let nothing_newer = store.read_after(&general(), 5, 100).await.unwrap();
    assert!(nothing_newer.messages.is_empty());
    assert_eq!(nothing_newer.horizon, 2);
    let no_limit = store.read_after(&general(), 0, 0).await.unwrap();
    assert!(no_limit.messages.is_empty());
    assert_eq!(no_limit.horizon, 2);
    let far_future = store.read_after(&general(), u64::MAX, 100).await.unwrap();
    assert!(far_future.messages.is_empty());
    assert_eq!(far_future.horizon, 2);
    assert_eq!(seqs(&store.read_last(&general(), 2).await.unwrap()), vec![4, 5]);
    assert_eq!(seqs(&store.read_last(&general(), 10).await.unwrap()), vec![3, 4, 5]);
    assert!(store.read_last(&general(), 0).await.unwrap().is_empty());
    store.close().await;
}

#[tokio::test]
async fn a_feed_that_starts_behind_the_retention_skips_the_trimmed_and_goes_on() {
    show_logs();
    let redis = RedisProcess::start();
    let (store, _) = connect(&redis, 3).await;
    for i in 1..=5 {
        store.append(author("ann"), general(), text(&format!("m{i}"))).await.unwrap();
    }
    let (feed, seen) = recording_feed();
    let behind = RedisStore::connect_after(&redis.url(), PREFIX, 3, feed, 0).await.unwrap();
    wait_for_feed(&seen, &[3, 4, 5]).await;
    store.append(author("ann"), general(), text("m6")).await.unwrap();
    wait_for_feed(&seen, &[3, 4, 5, 6]).await;
    behind.close().await;
    store.close().await;
}

#[tokio::test]
async fn close_finishes_writes_in_flight_then_refuses_new_ones() {
    show_logs();
    let redis = RedisProcess::start();
    let (store, seen) = connect(&redis, 1_000).await;
    let store = Arc::new(store);
    let in_flight: Vec<_> = (0..50)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.append(author("ann"), general(), text(&format!("m{i}"))).await })
        })
        .collect();
    // Let them reach the writer's queue before closing.
    tokio::task::yield_now().await;
    store.close().await;
    assert!(matches!(
        store.append(author("ann"), general(), text("late")).await,
        Err(StoreError::Unavailable)
    ));

    let mut written = Vec::new();
    for task in in_flight {
        match task.await.unwrap() {
            Ok(message) => written.push(message.seq),
            Err(StoreError::Unavailable) => {}
            Err(error) => panic!("unexpected {error}"),
        }
    }
    written.sort_unstable();
    let expected: Vec<u64> = (1..=written.len() as u64).collect();
    assert_eq!(written, expected);
    // Everything acknowledged was fed before `close` returned.
    assert_eq!(seqs(&seen.borrow()), expected);
    let (reader, _) = connect(&redis, 1_000).await;
    assert_eq!(seqs(&reader.read_after(&general(), 0, 1_000).await.unwrap().messages), expected);
}

#[tokio::test]
async fn a_dead_redis_makes_appends_unavailable_within_seconds_and_health_false() {
    show_logs();
    let mut redis = RedisProcess::start();
    let (store, _) = connect(&redis, 100).await;
    assert!(store.is_healthy().await);
    store.append(author("ann"), general(), text("before")).await.unwrap();

    redis.stop();
    assert_unavailable_soon(&store).await;
    assert_unavailable_soon(&store).await;
    let started = Instant::now();
    assert!(!store.is_healthy().await);
    assert!(started.elapsed() < FEW_SECONDS);
    assert!(matches!(store.read_last(&general(), 10).await, Err(StoreError::Unavailable)));
    tokio::time::timeout(PATIENCE, store.close()).await.expect("close does not hang without Redis");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_crash_and_restart_nothing_acknowledged_is_lost_and_the_feeds_go_on() {
    show_logs();
    let mut redis = RedisProcess::start();
    let (a, seen_a) = connect(&redis, 1_000).await;
    let (b, seen_b) = connect(&redis, 1_000).await;
    let mut acknowledged = Vec::new();
    for i in 0..10 {
        let store = if i % 2 == 0 { &a } else { &b };
        acknowledged.push(store.append(author("ann"), general(), text(&format!("m{i}"))).await.unwrap());
    }

    redis.stop(); // kill -9
    assert_unavailable_soon(&a).await;
    assert_unavailable_soon(&b).await;

    redis.restart();
    // Recovery needs nothing from us; the counter came back with the AOF, so no seq repeats.
    acknowledged.push(append_once_back(&a, "ann", "back on a").await);
    acknowledged.push(append_once_back(&b, "bob", "back on b").await);
    assert_eq!(seqs(&acknowledged), (1..=12).collect::<Vec<_>>());
    assert!(a.is_healthy().await);

    let stored = b.read_after(&general(), 0, 1_000).await.unwrap();
    assert_eq!(stored.messages, acknowledged, "every acknowledged message, as acknowledged");
    assert_eq!(stored.horizon, 0);
    let all: Vec<u64> = (1..=12).collect();
    wait_for_feed(&seen_a, &all).await;
    wait_for_feed(&seen_b, &all).await;
    a.close().await;
    b.close().await;
    drop(redis);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_redis_makes_appends_unavailable_within_seconds_then_all_recovers() {
    show_logs();
    let redis = RedisProcess::start();
    let (a, seen_a) = connect(&redis, 1_000).await;
    let (b, seen_b) = connect(&redis, 1_000).await;
    a.append(author("ann"), general(), text("before")).await.unwrap();

    redis.signal("STOP");
    assert_unavailable_soon(&a).await;
    let started = Instant::now();
    assert!(!b.is_healthy().await);
    assert!(started.elapsed() < FEW_SECONDS);
    redis.signal("CONT");

    let after = append_once_back(&b, "bob", "after").await;
    // The append refused while Redis was frozen had reached it: Redis carried it out when it
    // woke. Its caller was told Unavailable; the message exists and is fed like any other.
    let stored = seqs(&a.read_after(&general(), 0, 1_000).await.unwrap().messages);
    assert_eq!(stored, (1..=after.seq).collect::<Vec<_>>());
    wait_for_feed(&seen_a, &stored).await;
    wait_for_feed(&seen_b, &stored).await;
    a.close().await;
    b.close().await;
}

// Rooms: one `seq` sequence, a history and a retention per room.

#[tokio::test]
async fn two_rooms_share_one_sequence_and_each_reads_only_its_own() {
    show_logs();
    let redis = RedisProcess::start();
    let (store, _) = connect(&redis, 100).await;
    let (a, b) = (room("a"), room("b"));
    let mut sent = Vec::new();
    for (i, to) in [&a, &b, &b, &a, &b, &a].into_iter().enumerate() {
        let message = store.append(author("ann"), to.clone(), text(&format!("m{i}"))).await.unwrap();
        assert_eq!(&message.room, to);
        sent.push(message);
    }
    assert_eq!(seqs(&sent), (1..=6).collect::<Vec<_>>(), "one sequence for every room");

    for (which, expected) in [(&a, vec![1, 4, 6]), (&b, vec![2, 3, 5])] {
        let own: Vec<ChatMessage> = sent.iter().filter(|m| &m.room == which).cloned().collect();
        assert_eq!(seqs(&own), expected);
        let replay = store.read_after(which, 0, 100).await.unwrap();
        assert_eq!(replay.messages, own, "{which}");
        assert_eq!(replay.horizon, 0, "{which}");
        assert_eq!(store.read_last(which, 100).await.unwrap(), own, "{which}");
        assert_eq!(store.read_before(which, None, 100).await.unwrap(), Page { messages: own, more: false });
    }
    // A seq of the other room is a fine place to start or stop.
    assert_eq!(seqs(&store.read_after(&a, 2, 100).await.unwrap().messages), vec![4, 6]);
    assert_eq!(seqs(&store.read_after(&a, 4, 1).await.unwrap().messages), vec![6]);
    assert_eq!(seqs(&store.read_last(&b, 2).await.unwrap()), vec![3, 5]);
    assert_eq!(seqs(&store.read_before(&b, Some(4), 100).await.unwrap().messages), vec![2, 3]);

    // Rooms without messages (general included) have none to read and lost none.
    for nowhere in [room("nowhere"), general()] {
        let replay = store.read_after(&nowhere, 0, 100).await.unwrap();
        assert!(replay.messages.is_empty());
        assert_eq!(replay.horizon, 0);
        assert!(store.read_last(&nowhere, 100).await.unwrap().is_empty());
        assert_eq!(
            store.read_before(&nowhere, None, 100).await.unwrap(),
            Page { messages: vec![], more: false }
        );
    }
    store.close().await;
}

#[tokio::test]
async fn retention_is_per_room_and_the_horizon_is_the_rooms_newest_trimmed_seq() {
    show_logs();
    let redis = RedisProcess::start();
    let (store, _) = connect(&redis, 3).await;
    let (a, b) = (room("a"), room("b"));
    // a: seqs 1, 3, 4, 5, 6; b: seq 2.
    for to in [&a, &b, &a, &a, &a, &a] {
        store.append(author("ann"), to.clone(), text("hi")).await.unwrap();
    }

    let in_a = store.read_after(&a, 0, 100).await.unwrap();
    assert_eq!(seqs(&in_a.messages), vec![4, 5, 6], "a keeps its 3 newest");
    assert_eq!(in_a.horizon, 3, "a's second message is its newest no longer retained");
    // Whoever saw seq 3 missed nothing still to be had; whoever saw less is owed a gap.
    assert_eq!(store.read_after(&a, 3, 100).await.unwrap(), in_a);
    assert_eq!(seqs(&store.read_last(&a, 10).await.unwrap()), vec![4, 5, 6]);
    assert_eq!(store.read_before(&a, None, 10).await.unwrap(), Page { messages: in_a.messages, more: false });

    // b keeps its one message, although a's pushed it out of the (equally bounded) feed.
    let in_b = store.read_after(&b, 0, 100).await.unwrap();
    assert_eq!(seqs(&in_b.messages), vec![2]);
    assert_eq!(in_b.horizon, 0);
    let mut conn = raw(&redis).await;
    assert_eq!(entries(&mut conn, "room:a").await.len(), 3, "exactly the retention, not about it");
    assert_eq!(entries(&mut conn, "messages").await.len(), 3, "the feed is bounded too");

    // b fills up on its own, a is untouched.
    for _ in 0..3 {
        store.append(author("ann"), b.clone(), text("hi")).await.unwrap();
    }
    let in_b = store.read_after(&b, 0, 100).await.unwrap();
    assert_eq!((seqs(&in_b.messages), in_b.horizon), (vec![7, 8, 9], 2));
    let in_a = store.read_after(&a, 0, 100).await.unwrap();
    assert_eq!((seqs(&in_a.messages), in_a.horizon), (vec![4, 5, 6], 3));
    store.close().await;

    // A lower retention trims the room at its next message, to exactly the new one.
    let (store, _) = connect(&redis, 1).await;
    let newest = store.append(author("ann"), a.clone(), text("hi")).await.unwrap();
    let in_a = store.read_after(&a, 0, 100).await.unwrap();
    assert_eq!((seqs(&in_a.messages), in_a.horizon), (vec![newest.seq], 6));
    store.close().await;
}

#[tokio::test]
async fn read_before_pages_through_a_room_exactly_and_says_more_only_when_older_ones_exist() {
    show_logs();
    let redis = RedisProcess::start();
    let (store, _) = connect(&redis, 5).await;
    let (a, b) = (room("a"), room("b"));
    // a: seqs 1, 3, …, 13, of which 5, 7, 9, 11, 13 are retained; b: the even ones.
    for i in 0..14 {
        store
            .append(author("ann"), if i % 2 == 0 { a.clone() } else { b.clone() }, text("hi"))
            .await
            .unwrap();
    }
    let retained = vec![5, 7, 9, 11, 13];
    assert_eq!(seqs(&store.read_after(&a, 0, 100).await.unwrap().messages), retained);

    for limit in 1..=6 {
        let mut collected = Vec::new();
        let mut before = None;
        let mut pages = 0;
        loop {
            let page = store.read_before(&a, before, limit).await.unwrap();
            pages += 1;
            assert!(!page.messages.is_empty() && page.messages.len() <= limit, "limit {limit}: {page:?}");
            let oldest = page.messages[0].seq;
            assert_eq!(
                page.more,
                retained.iter().any(|&seq| seq < oldest),
                "limit {limit}, before {before:?}"
            );
            collected = [seqs(&page.messages), collected].concat();
            if !page.more {
                break;
            }
            before = Some(oldest);
        }
        assert_eq!(collected, retained, "limit {limit}");
        assert_eq!(pages, retained.len().div_ceil(limit), "limit {limit}: no empty last page");
    }

    let page = |before: Option<u64>, limit: usize| {
        let store = &store;
        let a = &a;
        async move {
            let page = store.read_before(a, before, limit).await.unwrap();
            (seqs(&page.messages), page.more)
        }
    };
    // Nothing is below seq 1, nor below the oldest retained.
    assert_eq!(page(Some(0), 10).await, (vec![], false));
    assert_eq!(page(Some(1), 10).await, (vec![], false));
    assert_eq!(page(Some(5), 10).await, (vec![], false));
    // `before` may be another room's seq, or one not handed out yet.
    assert_eq!(page(Some(6), 10).await, (vec![5], false));
    assert_eq!(page(Some(8), 1).await, (vec![7], true));
    assert_eq!(page(Some(u64::MAX), 2).await, (vec![11, 13], true));
    // A zero limit still tells whether there is anything to page.
    assert_eq!(page(None, 0).await, (vec![], true));
    assert_eq!(page(Some(5), 0).await, (vec![], false));
    store.close().await;
}

#[tokio::test]
async fn rooms_lists_every_room_with_messages_and_its_newest_seq() {
    show_logs();
    let redis = RedisProcess::start();
    let (store, _) = connect(&redis, 2).await;
    assert!(store.rooms().await.unwrap().is_empty());
    for to in ["a", "b", "a", "a", "a"] {
        store.append(author("ann"), room(to), text("hi")).await.unwrap();
    }
    let heads = |mut rooms: Vec<RoomHead>| {
        rooms.sort_by(|x, y| x.room.cmp(&y.room));
        rooms.into_iter().map(|head| (head.room.to_string(), head.last_seq)).collect::<Vec<_>>()
    };
    let expected = vec![("a".to_owned(), 5), ("b".to_owned(), 2)];
    assert_eq!(heads(store.rooms().await.unwrap()), expected);

    // Fields nobody could have written are skipped, not fatal.
    let mut conn = raw(&redis).await;
    let _: () = redis::cmd("HSET")
        .arg(format!("{PREFIX}:rooms"))
        .arg("Not A Room")
        .arg(9)
        .arg("c")
        .arg("not a seq")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(heads(store.rooms().await.unwrap()), expected);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_feed_delivers_every_rooms_messages_in_seq_order_with_their_room() {
    show_logs();
    let redis = RedisProcess::start();
    let (one, seen_one) = connect(&redis, 100).await;
    let (two, seen_two) = connect(&redis, 100).await;
    let mut sent = Vec::new();
    for i in 0..12 {
        let store = if i % 2 == 0 { &one } else { &two };
        let to = ["a", "b", "general"][i % 3];
        sent.push(store.append(author("ann"), room(to), text(&format!("m{i}"))).await.unwrap());
    }
    let all: Vec<u64> = (1..=12).collect();
    assert_eq!(seqs(&sent), all);
    assert_eq!(wait_for_feed(&seen_one, &all).await, sent);
    assert_eq!(wait_for_feed(&seen_two, &all).await, sent);
    let (feed, seen_late) = recording_feed();
    let late = RedisStore::connect_after(&redis.url(), PREFIX, 100, feed, 0).await.unwrap();
    assert_eq!(wait_for_feed(&seen_late, &all).await, sent);
    for store in [one, two, late] {
        store.close().await;
    }
}

/// Writes what a version 1 store left: the feed with `seqs` (v1 JSON, no `room`; the ones
/// before were trimmed) and the counter.
async fn write_version_1(redis: &RedisProcess, seqs: std::ops::RangeInclusive<u64>) {
    let mut conn = raw(redis).await;
    for seq in seqs.clone() {
        let message = ChatMessage {
            id: UserId::parse("ann").unwrap(),
            name: UserName::parse("Ann").unwrap(),
            message: text(&format!("old {seq}")),
            seq,
            ts: "2026-01-01T00:00:00.000Z".into(),
            room: general(),
        };
        let json = serde_json::to_string(&message.v1()).unwrap();
        assert!(!json.contains("room"));
        let _: String = redis::cmd("XADD")
            .arg(format!("{PREFIX}:messages"))
            .arg(format!("{seq}-0"))
            .arg("json")
            .arg(json)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let _: () =
        redis::cmd("SET").arg(format!("{PREFIX}:seq")).arg(*seqs.end()).query_async(&mut conn).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_1_layout_becomes_general_once_when_instances_start_together() {
    show_logs();
    let redis = RedisProcess::start();
    // Seqs 1 and 2 were trimmed by the version 1 store.
    write_version_1(&redis, 3..=5).await;

    let (one, two) = tokio::join!(connect(&redis, 100), connect(&redis, 100));
    let ((one, seen_one), (two, _)) = (one, two);
    for store in [&one, &two] {
        let replay = store.read_after(&general(), 0, 100).await.unwrap();
        assert_eq!(seqs(&replay.messages), vec![3, 4, 5], "copied once");
        assert!(replay.messages.iter().all(|m| m.room.is_general() && m.name.as_str() == "Ann"));
        assert_eq!(replay.messages[0].message.as_str(), "old 3");
        assert_eq!(replay.horizon, 2, "version 1 lost what came before its oldest retained message");
        let rooms = store.rooms().await.unwrap();
        assert_eq!(rooms, vec![RoomHead { room: general(), last_seq: 5 }]);
    }

    // The sequence goes on from version 1's counter, in any room.
    let next = one.append(author("bob"), general(), text("new")).await.unwrap();
    let elsewhere = two.append(author("bob"), room("ops"), text("new")).await.unwrap();
    assert_eq!((next.seq, elsewhere.seq), (6, 7));
    wait_for_feed(&seen_one, &[6, 7]).await;
    let replay = two.read_after(&general(), 0, 100).await.unwrap();
    assert_eq!((seqs(&replay.messages), replay.horizon), (vec![3, 4, 5, 6], 2));

    // A later start finds the marker and copies nothing again; the version 1 entries still in
    // the feed read as `general`'s.
    let (feed, seen_late) = recording_feed();
    let late = RedisStore::connect_after(&redis.url(), PREFIX, 100, feed, 0).await.unwrap();
    let fed = wait_for_feed(&seen_late, &[3, 4, 5, 6, 7]).await;
    let rooms: Vec<&str> = fed.iter().map(|m| m.room.as_str()).collect();
    assert_eq!(rooms, ["general", "general", "general", "general", "ops"]);
    assert_eq!(seqs(&late.read_after(&general(), 0, 100).await.unwrap().messages), vec![3, 4, 5, 6]);
    let mut conn = raw(&redis).await;
    let layout: String =
        redis::cmd("GET").arg(format!("{PREFIX}:layout")).query_async(&mut conn).await.unwrap();
    assert_eq!(layout, "2");
    for store in [one, two, late] {
        store.close().await;
    }
}

#[tokio::test]
async fn the_upgrade_keeps_the_newest_retention_and_a_full_history_lost_nothing() {
    show_logs();
    for (retention, expected, horizon) in [(2, vec![3, 4], 2), (100, vec![1, 2, 3, 4], 0)] {
        let redis = RedisProcess::start();
        write_version_1(&redis, 1..=4).await;
        let (store, _) = connect(&redis, retention).await;
        let replay = store.read_after(&general(), 0, 100).await.unwrap();
        assert_eq!((seqs(&replay.messages), replay.horizon), (expected, horizon), "retention {retention}");
        let mut conn = raw(&redis).await;
        let expected_horizons = match horizon {
            0 => vec![],
            horizon => vec![("general".to_owned(), horizon.to_string())],
        };
        assert_eq!(hash(&mut conn, "horizons").await, expected_horizons);
        store.close().await;
    }
}

#[tokio::test]
async fn data_already_in_rooms_is_not_copied_into_general_when_the_marker_is_lost() {
    show_logs();
    let redis = RedisProcess::start();
    let (store, _) = connect(&redis, 100).await;
    store.append(author("ann"), general(), text("in general")).await.unwrap();
    store.append(author("ann"), room("ops"), text("in ops")).await.unwrap();
    store.close().await;
    let mut conn = raw(&redis).await;
    let _: () = redis::cmd("DEL").arg(format!("{PREFIX}:layout")).query_async(&mut conn).await.unwrap();

    let (store, _) = connect(&redis, 100).await;
    assert_eq!(seqs(&store.read_after(&general(), 0, 100).await.unwrap().messages), vec![1]);
    assert_eq!(seqs(&store.read_after(&room("ops"), 0, 100).await.unwrap().messages), vec![2]);
    let layout: String =
        redis::cmd("GET").arg(format!("{PREFIX}:layout")).query_async(&mut conn).await.unwrap();
    assert_eq!(layout, "2");
    store.close().await;
}

#[tokio::test]
async fn an_append_redis_refuses_leaves_no_hole_and_no_half_written_message() {
    show_logs();
    let redis = RedisProcess::start();
    let (store, _) = connect(&redis, 100).await;
    store.append(author("ann"), general(), text("first")).await.unwrap();
    let mut conn = raw(&redis).await;
    let raw_command = |args: &[&str]| {
        let mut command = redis::cmd(args[0]);
        for arg in &args[1..] {
            command.arg(*arg);
        }
        command
    };
    // A room key that is not a stream, and a room stream already past the counter.
    let _: () =
        raw_command(&["SET", &format!("{PREFIX}:room:taken"), "x"]).query_async(&mut conn).await.unwrap();
    let _: String = raw_command(&["XADD", &format!("{PREFIX}:room:ahead"), "100-0", "json", "{}"])
        .query_async(&mut conn)
        .await
        .unwrap();
    for refused in ["taken", "ahead"] {
        let outcome = store.append(author("ann"), room(refused), text("refused")).await;
        assert!(matches!(outcome, Err(StoreError::Backend(_))), "{refused}: {outcome:?}");
    }
    assert_eq!(store.append(author("ann"), general(), text("second")).await.unwrap().seq, 2);
    // The feed already past the counter: the room's entry is taken back too.
    let _: String = raw_command(&["XADD", &format!("{PREFIX}:messages"), "50-0", "json", "{}"])
        .query_async(&mut conn)
        .await
        .unwrap();
    let outcome = store.append(author("ann"), room("ops"), text("refused")).await;
    assert!(matches!(outcome, Err(StoreError::Backend(_))), "{outcome:?}");
    assert!(entries(&mut conn, "room:ops").await.is_empty());

    let counter: u64 = redis::cmd("GET").arg(format!("{PREFIX}:seq")).query_async(&mut conn).await.unwrap();
    assert_eq!(counter, 2, "every refused append gave its number back");
    assert_eq!(hash(&mut conn, "rooms").await, vec![("general".to_owned(), "2".to_owned())]);
    store.close().await;
}
