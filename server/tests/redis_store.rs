//! The Redis message store against a real `redis-server` ([`common::redis`]: its own loopback
//! port, AOF with `appendfsync always`, killed by PID). Two `RedisStore`s on one Redis stand
//! for two server instances.

mod common;

use app::protocol::{ChatMessage, MessageText, User, UserId, UserName};
use common::redis::RedisProcess;
use server::store::{MessageFeed, MessageStore, RedisStore, StoreError};
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

/// A feed that records every `seq` it is handed, in the order it is handed them.
/// Each change wakes whoever waits on the receiver ([`wait_for_feed`]).
fn recording_feed() -> (MessageFeed, Seen) {
    let (sink, seen) = watch::channel(Vec::new());
    let feed: MessageFeed = Arc::new(move |batch: &[ChatMessage], _before_waking: &mut dyn FnMut()| {
        // The hub relies on this: one batch is consecutive seqs.
        assert!(
            batch.windows(2).all(|pair| pair[1].seq == pair[0].seq + 1),
            "a batch with a hole: {batch:?}"
        );
        sink.send_modify(|seen| seen.extend(batch.iter().map(|m| m.seq)));
    });
    (feed, seen)
}

/// The `seq`s a recording feed has been handed so far.
type Seen = watch::Receiver<Vec<u64>>;

async fn connect(redis: &RedisProcess, retention: u64) -> (RedisStore, Seen) {
    let (feed, seen) = recording_feed();
    let store = RedisStore::connect(&redis.url(), PREFIX, retention, feed).await.expect("connect to Redis");
    (store, seen)
}

/// Waits until `seen` is exactly `expected` (a feed may lag an append by another instance).
/// Fails at once if the feed delivers anything that is not a prefix of `expected`.
async fn wait_for_feed(seen: &Seen, expected: &[u64]) {
    let mut seen = seen.clone();
    let reached = tokio::time::timeout(
        PATIENCE,
        seen.wait_for(|now| {
            assert!(expected.starts_with(now), "the feed delivered {now:?}, expected {expected:?}");
            now == expected
        }),
    )
    .await;
    match reached {
        Ok(Ok(_)) => {}
        Ok(Err(_)) => panic!("the feed was dropped before delivering {expected:?}"),
        Err(_) => {
            drop(reached);
            panic!("the feed delivered {:?} in {PATIENCE:?}, expected {expected:?}", *seen.borrow())
        }
    }
}

/// Appends until Redis takes it again (after a restart); every refusal must be `Unavailable`.
async fn append_once_back(store: &RedisStore, who: &str, what: &str) -> ChatMessage {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match store.append(author(who), text(what)).await {
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
    let outcome = tokio::time::timeout(PATIENCE, store.append(author("ann"), text("into the void")))
        .await
        .expect("append must not hang when Redis is gone");
    assert!(matches!(outcome, Err(StoreError::Unavailable)), "expected Unavailable, got {outcome:?}");
    assert!(started.elapsed() < FEW_SECONDS, "Unavailable took {:?}", started.elapsed());
}

fn seqs(messages: &[ChatMessage]) -> Vec<u64> {
    messages.iter().map(|m| m.seq).collect()
}

#[tokio::test]
async fn seq_starts_at_one_and_grows_by_one() {
    show_logs();
    let redis = RedisProcess::start();
    let (store, seen) = connect(&redis, 100).await;
    for expected in 1..=3 {
        let message = store.append(author("ann"), text(&format!("hi {expected}"))).await.unwrap();
        assert_eq!(message.seq, expected);
        assert_eq!(message.message.as_str(), format!("hi {expected}"));
        assert!(
            message.ts.ends_with('Z') && message.ts.len() == "2026-01-01T00:00:00.000Z".len(),
            "{}",
            message.ts
        );
    }
    // `append` answers after this instance's feed has the message.
    assert_eq!(*seen.borrow(), vec![1, 2, 3]);
    let stored = store.read_last(10).await.unwrap();
    assert_eq!(seqs(&stored), vec![1, 2, 3]);
    assert_eq!(stored[2].message.as_str(), "hi 3");
    store.close().await;
}

#[tokio::test]
async fn entries_are_chat_message_json_under_their_seq() {
    show_logs();
    let redis = RedisProcess::start();
    let (store, _) = connect(&redis, 100).await;
    let sent = store.append(author("ann"), text("look \"inside\"")).await.unwrap();

    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let entries: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(format!("{PREFIX}:messages"))
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(entries.ids.len(), 1);
    assert_eq!(entries.ids[0].id, "1-0");
    let json: String = entries.ids[0].get("json").unwrap();
    assert_eq!(serde_json::from_str::<ChatMessage>(&json).unwrap(), sent);
    let counter: u64 = redis::cmd("GET").arg(format!("{PREFIX}:seq")).query_async(&mut conn).await.unwrap();
    assert_eq!(counter, 1);
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
            tokio::spawn(async move { store.append(author("ann"), text(&format!("m{i}"))).await })
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
    assert_eq!(seqs(&a.read_after(0, 1_000).await.unwrap().messages), all);
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn an_instance_started_later_feeds_only_what_comes_after_unless_told_where_to_start() {
    show_logs();
    let redis = RedisProcess::start();
    let (first, _) = connect(&redis, 100).await;
    for i in 0..3 {
        first.append(author("ann"), text(&format!("early {i}"))).await.unwrap();
    }
    let (late, seen_late) = connect(&redis, 100).await;
    let (feed, seen_from_one) = recording_feed();
    let from_one = RedisStore::connect_after(&redis.url(), PREFIX, 100, feed, 1).await.unwrap();
    wait_for_feed(&seen_from_one, &[2, 3]).await;

    first.append(author("ann"), text("news")).await.unwrap();
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

    let empty = store.read_after(0, 10).await.unwrap();
    assert!(empty.messages.is_empty());
    assert_eq!(empty.oldest_retained, None);
    assert!(store.read_last(10).await.unwrap().is_empty());

    for i in 1..=5 {
        store.append(author("ann"), text(&format!("m{i}"))).await.unwrap();
    }
    let replay = store.read_after(0, 100).await.unwrap();
    assert_eq!(replay.oldest_retained, Some(3));
    assert_eq!(seqs(&replay.messages), vec![3, 4, 5]);
    assert_eq!(replay.messages[0].message.as_str(), "m3");
    assert_eq!(seqs(&store.read_after(3, 100).await.unwrap().messages), vec![4, 5]);
    assert_eq!(seqs(&store.read_after(3, 1).await.unwrap().messages), vec![4]);
    let nothing_newer = store.read_after(5, 100).await.unwrap();
    assert!(nothing_newer.messages.is_empty());
    assert_eq!(nothing_newer.oldest_retained, Some(3));
    let no_limit = store.read_after(0, 0).await.unwrap();
    assert!(no_limit.messages.is_empty());
    assert_eq!(no_limit.oldest_retained, Some(3));
    assert_eq!(seqs(&store.read_last(2).await.unwrap()), vec![4, 5]);
    assert_eq!(seqs(&store.read_last(10).await.unwrap()), vec![3, 4, 5]);
    assert!(store.read_last(0).await.unwrap().is_empty());
    store.close().await;
}

#[tokio::test]
async fn a_feed_that_starts_behind_the_retention_skips_the_trimmed_and_goes_on() {
    show_logs();
    let redis = RedisProcess::start();
    let (store, _) = connect(&redis, 3).await;
    for i in 1..=5 {
        store.append(author("ann"), text(&format!("m{i}"))).await.unwrap();
    }
    let (feed, seen) = recording_feed();
    let behind = RedisStore::connect_after(&redis.url(), PREFIX, 3, feed, 0).await.unwrap();
    wait_for_feed(&seen, &[3, 4, 5]).await;
    store.append(author("ann"), text("m6")).await.unwrap();
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
            tokio::spawn(async move { store.append(author("ann"), text(&format!("m{i}"))).await })
        })
        .collect();
    // Let them reach the writer's queue before closing.
    tokio::task::yield_now().await;
    store.close().await;
    assert!(matches!(store.append(author("ann"), text("late")).await, Err(StoreError::Unavailable)));

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
    assert_eq!(*seen.borrow(), expected);
    let (reader, _) = connect(&redis, 1_000).await;
    assert_eq!(seqs(&reader.read_after(0, 1_000).await.unwrap().messages), expected);
}

#[tokio::test]
async fn a_dead_redis_makes_appends_unavailable_within_seconds_and_health_false() {
    show_logs();
    let mut redis = RedisProcess::start();
    let (store, _) = connect(&redis, 100).await;
    assert!(store.is_healthy().await);
    store.append(author("ann"), text("before")).await.unwrap();

    redis.stop();
    assert_unavailable_soon(&store).await;
    assert_unavailable_soon(&store).await;
    let started = Instant::now();
    assert!(!store.is_healthy().await);
    assert!(started.elapsed() < FEW_SECONDS);
    assert!(matches!(store.read_last(10).await, Err(StoreError::Unavailable)));
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
        acknowledged.push(store.append(author("ann"), text(&format!("m{i}"))).await.unwrap());
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

    let stored = b.read_after(0, 1_000).await.unwrap();
    assert_eq!(stored.messages, acknowledged, "every acknowledged message, as acknowledged");
    assert_eq!(stored.oldest_retained, Some(1));
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
    a.append(author("ann"), text("before")).await.unwrap();

    redis.signal("STOP");
    assert_unavailable_soon(&a).await;
    let started = Instant::now();
    assert!(!b.is_healthy().await);
    assert!(started.elapsed() < FEW_SECONDS);
    redis.signal("CONT");

    let after = append_once_back(&b, "bob", "after").await;
    // The append refused while Redis was frozen had reached it: Redis carried it out when it
    // woke. Its caller was told Unavailable; the message exists and is fed like any other.
    let stored = seqs(&a.read_after(0, 1_000).await.unwrap().messages);
    assert_eq!(stored, (1..=after.seq).collect::<Vec<_>>());
    wait_for_feed(&seen_a, &stored).await;
    wait_for_feed(&seen_b, &stored).await;
    a.close().await;
    b.close().await;
}
