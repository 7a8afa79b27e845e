//! The embedded message store: SQLite in WAL mode, in a file under the data folder.
//!
//! One writer thread owns the only connection and commits in groups: it takes every job
//! waiting in its queue (up to [`MAX_BATCH`]), writes the appends among them in one
//! transaction with one fsync (`synchronous=FULL`), then hands them to the feed, which records
//! them, lets the writer answer each caller, and only then wakes the streams. Under load
//! many posts share one fsync, so durability does not cost throughput; alone, a post waits for
//! exactly one. `seq` is assigned here, one writer, so it is strictly increasing.
//!
//! Reads are jobs for the same thread, run after the commit they were gathered with, one at a
//! time with a look at the queue between two, so appends that arrive while reads wait are
//! committed first: a post waits behind at most one read (a replay is read in pages by the
//! hub), not behind every replay of a reconnect storm. Reads are rare (the hub serves recent
//! history from memory), and one connection lets SQLite hold the
//! file in exclusive locking mode: no file-lock calls around each commit (six per commit
//! before), the WAL index in the process's memory instead of a shared-memory file, and a second
//! server started on the same data folder is refused at open instead of writing beside this one.
//!
//! A commit touches as few pages as it can, since each is a 4 KiB WAL frame to write and
//! checksum: the new rows, and only every [`RETENTION_STEP`] messages the deletion of old ones
//! together with the last `seq` in a `meta` row, so deleting old rows never lets one repeat.
//! Rows past retention but not yet deleted are left out of every read.

use super::{MessageFeed, MessageStore, Replay, StoreError};
use app::protocol::{ChatMessage, MessageText, User, UserId, UserName};
use futures_util::future::BoxFuture;
use rusqlite::{Connection, params};
use std::{
    collections::VecDeque,
    path::Path,
    sync::atomic::{AtomicBool, Ordering},
    time::SystemTime,
};
use tokio::sync::{mpsc, oneshot};

/// Most jobs gathered for one transaction.
const MAX_BATCH: usize = 1024;
/// Jobs that may wait for the writer before callers wait for room in the queue.
const QUEUE_DEPTH: usize = 16 * 1024;
/// How long opening waits for another process to let go of the file.
const OPEN_PATIENCE: std::time::Duration = std::time::Duration::from_secs(2);
/// Old messages are deleted when `seq` crosses a multiple of this, not on every commit.
const RETENTION_STEP: u64 = 512;

/// An append waiting for the writer, and where to send its outcome.
struct PendingAppend {
    author: User,
    text: MessageText,
    reply: oneshot::Sender<Result<ChatMessage, StoreError>>,
}

/// A read, run on the writer's connection; it sends its own outcome.
type PendingRead = Box<dyn FnOnce(&Connection) + Send>;

/// What the writer thread does for a caller.
enum Job {
    Append(PendingAppend),
    Read(PendingRead),
}

type Command = super::Command<Job, oneshot::Sender<()>>;

pub struct SqliteStore {
    commands: mpsc::Sender<Command>,
    /// How many of the newest messages reads may return.
    retention: u64,
    closed: AtomicBool,
}

impl SqliteStore {
    /// Opens (or creates) `path`, and starts the writer thread. `feed` receives each committed
    /// batch, in order.
    pub fn open(path: &Path, retention: u64, feed: MessageFeed) -> Result<Self, StoreError> {
        let opened = open_connection(path).and_then(|conn| Ok((prepare_schema(&conn)?, conn)));
        let (last_seq, conn) = opened.map_err(|error| match error.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                StoreError::Backend(format!("{} is in use by another process", path.display()))
            }
            _ => backend(error),
        })?;

        let (commands, receiver) = mpsc::channel(QUEUE_DEPTH);
        let retention = retention.clamp(1, i64::MAX as u64);
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || Writer { conn, last_seq, retention, feed }.run(receiver))
            .map_err(|error| StoreError::Backend(error.to_string()))?;
        Ok(Self { commands, retention, closed: AtomicBool::new(false) })
    }

    /// Runs `read` on the writer's connection, after the appends queued before it.
    async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        let job: PendingRead = Box::new(move |conn: &Connection| {
            let _ = reply.send(read(conn).map_err(backend));
        });
        self.commands.send(Command::Job(Job::Read(job))).await.map_err(|_| StoreError::Unavailable)?;
        // A dropped reply means the writer stopped before this read.
        answer.await.map_err(|_| StoreError::Unavailable)?
    }
}

fn open_connection(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    // A server being restarted may still be closing the file (its last checkpoint); longer
    // than this, and another process holds it.
    conn.busy_timeout(OPEN_PATIENCE)?;
    // EXCLUSIVE before WAL: the connection keeps the file locked from its first access to its
    // close, and the WAL index in its own memory (see the module comment). FULL: a commit is on
    // disk before it returns, so an acknowledged message survives a power cut, not only a
    // `kill -9`.
    conn.execute_batch(
        "PRAGMA locking_mode = EXCLUSIVE;
         PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;",
    )?;
    Ok(conn)
}

/// Creates the tables when missing and returns the last `seq` written.
fn prepare_schema(conn: &Connection) -> rusqlite::Result<u64> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS messages (
             seq INTEGER PRIMARY KEY,
             user_id TEXT NOT NULL,
             name TEXT NOT NULL,
             message TEXT NOT NULL,
             ts TEXT NOT NULL
         );
         CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);",
    )?;
    // `meta` holds the last `seq` as of the last deletion; newer rows go beyond it.
    conn.query_row(
        "SELECT MAX(COALESCE((SELECT value FROM meta WHERE key = 'last_seq'), 0),
                    COALESCE((SELECT MAX(seq) FROM messages), 0))",
        [],
        |row| row.get(0),
    )
}

fn backend(error: rusqlite::Error) -> StoreError {
    StoreError::Backend(error.to_string())
}

struct Writer {
    conn: Connection,
    last_seq: u64,
    retention: u64,
    feed: MessageFeed,
}

impl Writer {
    fn run(mut self, mut receiver: mpsc::Receiver<Command>) {
        run_after_the_request_threads();
        let mut jobs = Vec::with_capacity(MAX_BATCH);
        let mut appends = Vec::with_capacity(MAX_BATCH);
        let mut reads: VecDeque<PendingRead> = VecDeque::new();
        let mut closing = None;
        loop {
            // With reads waiting, only what is already queued is taken: the next read runs
            // at once unless appends arrived meanwhile, which are committed first.
            let next = if closing.is_some() {
                None
            } else if reads.is_empty() {
                match receiver.blocking_recv() {
                    Some(first) => Some(first),
                    None => break,
                }
            } else {
                receiver.try_recv().ok()
            };
            if let Some(first) = next {
                closing = super::gather(first, &mut receiver, &mut jobs, MAX_BATCH);
                for job in jobs.drain(..) {
                    match job {
                        Job::Append(append) => appends.push(append),
                        Job::Read(read) => reads.push_back(read),
                    }
                }
            }
            if !appends.is_empty() {
                self.commit(&mut appends);
            }
            // One read between two looks at the queue: a post waits behind at most one read
            // (a page of a replay), never behind all the reads of a replay storm. After the
            // commit, so a read sees at least every append queued before it.
            if let Some(read) = reads.pop_front() {
                read(&self.conn);
            }
            if reads.is_empty()
                && let Some(done) = closing.take()
            {
                // The file is unlocked before the closer hears back: it may reopen it at once.
                drop(self);
                let _ = done.send(());
                return;
            }
        }
    }

    fn commit(&mut self, batch: &mut Vec<PendingAppend>) {
        let ts = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        let messages: Vec<ChatMessage> = batch
            .iter()
            .zip(self.last_seq + 1..)
            .map(|(PendingAppend { author, text, .. }, seq)| ChatMessage {
                id: author.id.clone(),
                name: author.name.clone(),
                message: text.clone(),
                seq,
                ts: ts.clone(),
            })
            .collect();
        match self.write(&messages) {
            Ok(()) => {
                self.last_seq += messages.len() as u64;
                // Answered once the hub has recorded the batch, before it wakes the streams
                // (see `MessageFeed`).
                let mut answer = || {
                    for (append, message) in batch.drain(..).zip(&messages) {
                        let _ = append.reply.send(Ok(message.clone()));
                    }
                };
                (self.feed)(&messages, &mut answer);
                // A feed that did not call it still gets the posts answered.
                answer();
            }
            Err(error) => {
                tracing::error!(%error, "committing messages failed");
                for append in batch.drain(..) {
                    let _ = append.reply.send(Err(StoreError::Backend(error.to_string())));
                }
            }
        }
    }

    fn write(&mut self, messages: &[ChatMessage]) -> rusqlite::Result<()> {
        let Some(last) = messages.last() else { return Ok(()) };
        let tx = self.conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO messages (seq, user_id, name, message, ts) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for m in messages {
                insert.execute(params![m.seq, m.id.as_str(), m.name.as_str(), m.message.as_str(), m.ts])?;
            }
            // Every statement of a commit is prepared once per connection, not once per commit.
            if last.seq / RETENTION_STEP != self.last_seq / RETENTION_STEP {
                tx.prepare_cached(
                    "INSERT INTO meta (key, value) VALUES ('last_seq', ?1)
                     ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                )?
                .execute(params![last.seq])?;
                tx.prepare_cached("DELETE FROM messages WHERE seq <= ?1")?
                    .execute(params![last.seq.saturating_sub(self.retention)])?;
            }
        }
        tx.commit()
    }
}

/// Makes the calling thread (the writer) `SCHED_BATCH`, so that waking it does not preempt
/// the thread that is running.
///
/// The writer is woken by the first post of every commit and by the end of every fsync. As a
/// normal thread it would take the CPU from the request thread at that moment, in the middle of
/// parsing the next posts: commits would start with one post each, and the CPU would switch
/// threads twice per commit. `SCHED_BATCH` changes only that: the writer runs as soon as the
/// running thread waits or yields, and by then it finds every post queued meanwhile. (A thread
/// that neither waits nor yields keeps the core until a scheduler tick: the streams' thread,
/// busy with a fan-out round, yields every few writes for this reason; see
/// `net::share_the_core`.) It cuts the request thread's involuntary switches, puts more posts
/// in each fsync and raises durable posts/s (figures in BENCHMARKS.md's notes).
///
/// Best effort: where the call fails (or outside Linux) the writer still works as before.
fn run_after_the_request_threads() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: `param` is a valid `sched_param` that outlives the call; pid 0 means the
        // calling thread, and SCHED_BATCH takes priority 0.
        let status = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
        if status != 0 {
            let error = std::io::Error::last_os_error();
            tracing::debug!(%error, "the writer keeps the normal scheduling policy");
        }
    }
}

const SELECT: &str = "SELECT user_id, name, message, seq, ts FROM messages";
/// The rows a read may return, given the retention as `?1`: the newest `retention` (older ones
/// are only deleted every [`RETENTION_STEP`]). One statement, so one snapshot.
const RETAINED: &str = "seq > (SELECT COALESCE(MAX(seq), 0) FROM messages) - ?1";

fn row_to_message(row: &rusqlite::Row<'_>) -> rusqlite::Result<ChatMessage> {
    // Rows were validated when written; a row that no longer parses is corruption, reported
    // as an error instead of a panic.
    fn invalid(column: usize, error: app::protocol::InputError) -> rusqlite::Error {
        rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, Box::new(error))
    }
    let id: String = row.get(0)?;
    let name: String = row.get(1)?;
    let message: String = row.get(2)?;
    Ok(ChatMessage {
        id: UserId::parse(&id).map_err(|e| invalid(0, e))?,
        name: UserName::parse(&name).map_err(|e| invalid(1, e))?,
        message: MessageText::parse(&message).map_err(|e| invalid(2, e))?,
        seq: row.get(3)?,
        ts: row.get(4)?,
    })
}

impl MessageStore for SqliteStore {
    fn append(&self, author: User, text: MessageText) -> BoxFuture<'_, Result<ChatMessage, StoreError>> {
        Box::pin(async move {
            if self.closed.load(Ordering::Acquire) {
                return Err(StoreError::Unavailable);
            }
            let (reply, answer) = oneshot::channel();
            self.commands
                .send(Command::Job(Job::Append(PendingAppend { author, text, reply })))
                .await
                .map_err(|_| StoreError::Unavailable)?;
            // A dropped reply means the writer stopped before this append: not written.
            answer.await.map_err(|_| StoreError::Unavailable)?
        })
    }

    fn read_after(&self, after: u64, limit: usize) -> BoxFuture<'_, Result<Replay, StoreError>> {
        let retention = self.retention;
        Box::pin(self.read(move |conn| {
            let oldest_retained = conn.query_row(
                &format!("SELECT MIN(seq) FROM messages WHERE {RETAINED}"),
                params![retention],
                |row| row.get(0),
            )?;
            let mut select = conn
                .prepare_cached(&format!("{SELECT} WHERE {RETAINED} AND seq > ?2 ORDER BY seq LIMIT ?3"))?;
            let messages = select
                .query_map(params![retention, after, limit as i64], row_to_message)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(Replay { messages, oldest_retained })
        }))
    }

    fn read_last(&self, n: usize) -> BoxFuture<'_, Result<Vec<ChatMessage>, StoreError>> {
        let retention = self.retention;
        Box::pin(self.read(move |conn| {
            let mut select =
                conn.prepare_cached(&format!("{SELECT} WHERE {RETAINED} ORDER BY seq DESC LIMIT ?2"))?;
            let mut messages = select
                .query_map(params![retention, n as i64], row_to_message)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            messages.reverse();
            Ok(messages)
        }))
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            super::close_writer(&self.closed, &self.commands).await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::Mutex as StdMutex;

    fn author() -> User {
        User { id: UserId::parse("ann").unwrap(), name: UserName::parse("Ann").unwrap() }
    }

    fn text(s: &str) -> MessageText {
        MessageText::parse(s).unwrap()
    }

    fn recording_feed() -> (MessageFeed, Arc<StdMutex<Vec<u64>>>) {
        let seen = Arc::new(StdMutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        let feed: MessageFeed = Arc::new(move |batch: &[ChatMessage], before_waking: &mut dyn FnMut()| {
            sink.lock().unwrap().extend(batch.iter().map(|m| m.seq));
            before_waking();
        });
        (feed, seen)
    }

    /// Starts `count` appends at once (messages `m0`, `m1`, ...), each on a task of its own.
    fn spawn_appends(
        store: &Arc<SqliteStore>,
        count: u64,
    ) -> Vec<tokio::task::JoinHandle<Result<ChatMessage, StoreError>>> {
        (0..count)
            .map(|i| {
                let store = Arc::clone(store);
                tokio::spawn(async move { store.append(author(), text(&format!("m{i}"))).await })
            })
            .collect()
    }

    /// The answers to appends started by [`spawn_appends`], in the order they were started.
    async fn answers(
        tasks: Vec<tokio::task::JoinHandle<Result<ChatMessage, StoreError>>>,
    ) -> Vec<ChatMessage> {
        let mut answers = Vec::with_capacity(tasks.len());
        for task in tasks {
            answers.push(task.await.unwrap().unwrap());
        }
        answers
    }

    #[tokio::test]
    async fn seq_starts_at_one_and_continues_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chat.db");
        let (feed, seen) = recording_feed();
        let store = SqliteStore::open(&path, 100, feed.clone()).unwrap();
        for i in 1..=3 {
            assert_eq!(store.append(author(), text("hi")).await.unwrap().seq, i);
        }
        store.close().await;
        assert!(matches!(store.append(author(), text("late")).await, Err(StoreError::Unavailable)));
        drop(store);

        let store = SqliteStore::open(&path, 100, feed).unwrap();
        assert_eq!(store.append(author(), text("again")).await.unwrap().seq, 4);
        assert_eq!(*seen.lock().unwrap(), vec![1, 2, 3, 4]);
        let all = store.read_last(10).await.unwrap();
        assert_eq!(all.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![1, 2, 3, 4]);
    }

    /// Drives one commit on this thread, so the order is checked rather than raced: when
    /// the feed is called the caller has no answer yet, and once the feed has let the writer
    /// answer (before it wakes the streams) the answer is there.
    #[test]
    fn the_writer_answers_after_the_feed_records_and_before_it_wakes_streams() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open_connection(&dir.path().join("chat.db")).unwrap();
        let last_seq = prepare_schema(&conn).unwrap();
        let (reply, answer) = oneshot::channel::<Result<ChatMessage, StoreError>>();
        let answer = Arc::new(StdMutex::new(answer));
        let observed = Arc::new(StdMutex::new(Vec::new()));
        let feed: MessageFeed = {
            let (answer, observed) = (Arc::clone(&answer), Arc::clone(&observed));
            Arc::new(move |batch: &[ChatMessage], before_waking: &mut dyn FnMut()| {
                let answered = || match answer.lock().unwrap().try_recv() {
                    Ok(message) => Some(message.unwrap().seq),
                    Err(_) => None,
                };
                observed.lock().unwrap().push(("fed", batch[0].seq, answered()));
                before_waking();
                observed.lock().unwrap().push(("before waking", batch[0].seq, answered()));
            })
        };
        let mut writer = Writer { conn, last_seq, retention: 100, feed };
        writer.commit(&mut vec![PendingAppend { author: author(), text: text("hi"), reply }]);
        assert_eq!(*observed.lock().unwrap(), vec![("fed", 1, None), ("before waking", 1, Some(1))]);
    }

    #[tokio::test]
    async fn concurrent_appends_get_distinct_consecutive_seqs_fed_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (feed, seen) = recording_feed();
        let store = Arc::new(SqliteStore::open(&dir.path().join("chat.db"), 10_000, feed).unwrap());
        let mut seqs: Vec<u64> = answers(spawn_appends(&store, 200)).await.iter().map(|m| m.seq).collect();
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=200).collect::<Vec<_>>());
        assert_eq!(*seen.lock().unwrap(), (1..=200).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn old_rows_are_deleted_in_steps_and_seq_survives_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chat.db");
        let (feed, _) = recording_feed();
        let store = Arc::new(SqliteStore::open(&path, 3, feed.clone()).unwrap());
        let total = RETENTION_STEP + 10;
        answers(spawn_appends(&store, total)).await;
        store.close().await;
        drop(store);

        let rows: u64 = Connection::open(&path)
            .unwrap()
            .query_row("SELECT COUNT(*) FROM messages", [], |row| row.get(0))
            .unwrap();
        assert!(rows < RETENTION_STEP, "crossing a step deletes what is past retention ({rows} rows left)");
        let store = SqliteStore::open(&path, 3, feed).unwrap();
        let replay = store.read_after(0, 100).await.unwrap();
        assert_eq!(
            replay.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
            vec![total - 2, total - 1, total]
        );
        assert_eq!(store.append(author(), text("next")).await.unwrap().seq, total + 1);
    }

    #[tokio::test]
    async fn a_second_store_on_the_same_file_is_refused_until_the_first_closes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chat.db");
        let (feed, _) = recording_feed();
        let first = SqliteStore::open(&path, 10, feed.clone()).unwrap();
        first.append(author(), text("hi")).await.unwrap();
        match SqliteStore::open(&path, 10, feed.clone()) {
            Err(StoreError::Backend(reason)) => assert!(reason.contains("in use"), "{reason}"),
            Err(other) => panic!("unexpected error: {other}"),
            Ok(_) => panic!("two stores wrote to one file"),
        }
        first.close().await;
        let second = SqliteStore::open(&path, 10, feed).unwrap();
        assert_eq!(second.read_last(10).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_read_sees_every_append_queued_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let (feed, _) = recording_feed();
        let store = Arc::new(SqliteStore::open(&dir.path().join("chat.db"), 1000, feed).unwrap());
        // On this single-threaded runtime the tasks queue their jobs in the order spawned, so
        // the writer gathers the read behind all fifty appends, most likely in one batch.
        let appends = spawn_appends(&store, 50);
        let read = {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.read_last(100).await })
        };
        let seen = read.await.unwrap().unwrap();
        assert_eq!(seen.iter().map(|m| m.seq).collect::<Vec<_>>(), (1..=50).collect::<Vec<_>>());
        answers(appends).await;
    }

    #[tokio::test]
    async fn retention_keeps_the_newest_and_reports_the_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let (feed, _) = recording_feed();
        let store = SqliteStore::open(&dir.path().join("chat.db"), 3, feed).unwrap();
        for i in 0..5 {
            store.append(author(), text(&format!("m{i}"))).await.unwrap();
        }
        let replay = store.read_after(0, 100).await.unwrap();
        assert_eq!(replay.oldest_retained, Some(3));
        assert_eq!(replay.messages.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![3, 4, 5]);
        let replay = store.read_after(4, 100).await.unwrap();
        assert_eq!(replay.messages.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![5]);
    }

    /// The scheduling policy of each of this process's threads called `name` (Linux numbers:
    /// 0 normal, 3 batch), from `/proc`.
    #[cfg(target_os = "linux")]
    fn policies_of_threads_named(name: &str) -> Vec<u32> {
        let mut policies = Vec::new();
        for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            if comm.trim_end() != name {
                continue;
            }
            let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else { continue };
            // Fields after the parenthesised name start at field 3; the policy is field 41.
            let after_name = &stat[stat.rfind(')').unwrap() + 1..];
            policies.push(after_name.split_whitespace().nth(41 - 3).unwrap().parse().unwrap());
        }
        policies
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn the_writer_thread_runs_with_the_batch_policy() {
        let dir = tempfile::tempdir().unwrap();
        let (feed, _) = recording_feed();
        let store = SqliteStore::open(&dir.path().join("chat.db"), 10, feed).unwrap();
        // Answered, so this store's writer has set its policy (other tests' writers may not
        // have yet: one batch writer is what is asked).
        store.append(author(), text("hi")).await.unwrap();
        let policies = policies_of_threads_named("sqlite-writer");
        assert!(policies.contains(&(libc::SCHED_BATCH as u32)), "writer policies: {policies:?}");
    }
}
