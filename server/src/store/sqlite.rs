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
//!
//! **Rooms.** The table is clustered by room, then `seq` (`WITHOUT ROWID`), so every read
//! (one room's messages after, before or up to a `seq`) is one range of the b-tree, and a
//! commit of one room's message still writes one leaf. Each row also has its place in its
//! room (`n`: 1, 2, 3, ... per room), so a room's retained rows are those with
//! `n > newest n - retention` whatever the other rooms hold, and the `seq` of the room's
//! previous message (`prev`), so the oldest retained row tells the room's horizon (what it
//! lost; see the store module). The writer keeps each room's newest `n` and `seq` in memory
//! to number new rows. A file of the one-room version is converted when opened: its rows go
//! to `general` with `n = seq`, which keeps exactly what it retained and what it had lost.

use super::{MessageFeed, MessageStore, Page, Replay, RoomHead, StoreError};
use app::protocol::{ChatMessage, MessageText, RoomName, User, UserId, UserName};
use futures_util::{TryFutureExt, future::BoxFuture};
use rusqlite::{Connection, params};
use std::{
    collections::{HashMap, VecDeque},
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
/// A room's old messages are deleted when its `n` crosses a multiple of this, not on every
/// commit.
const RETENTION_STEP: u64 = 512;

/// An append waiting for the writer, and where to send its outcome.
struct PendingAppend {
    author: User,
    room: RoomName,
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
        let ((last_seq, tails), conn) = opened.map_err(|error| match error.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                StoreError::Backend(format!("{} is in use by another process", path.display()))
            }
            _ => backend(error),
        })?;

        let (commands, receiver) = mpsc::channel(QUEUE_DEPTH);
        let retention = retention.clamp(1, i64::MAX as u64);
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || {
                Writer { conn, last_seq, tails, marks: HashMap::new(), retention, feed }.run(receiver)
            })
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

/// Where a room's rows end: its newest `n` and `seq`, which the next row of the room follows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct RoomTail {
    n: u64,
    seq: u64,
}

const CREATE_MESSAGES: &str = "CREATE TABLE messages (
         room TEXT NOT NULL,
         seq INTEGER NOT NULL,
         n INTEGER NOT NULL,
         prev INTEGER NOT NULL,
         user_id TEXT NOT NULL,
         name TEXT NOT NULL,
         message TEXT NOT NULL,
         ts TEXT NOT NULL,
         PRIMARY KEY (room, seq)
     ) WITHOUT ROWID";

/// Every room with rows, and where its rows end: one b-tree seek per room (a skip scan over
/// the rooms), not a scan of every row.
const ROOM_TAILS: &str = "WITH RECURSIVE rooms(room) AS (
         SELECT MIN(room) FROM messages
         UNION ALL
         SELECT (SELECT MIN(room) FROM messages WHERE room > rooms.room) FROM rooms
         WHERE rooms.room IS NOT NULL
     )
     SELECT room,
            (SELECT n FROM messages m WHERE m.room = rooms.room ORDER BY seq DESC LIMIT 1),
            (SELECT seq FROM messages m WHERE m.room = rooms.room ORDER BY seq DESC LIMIT 1)
     FROM rooms WHERE room IS NOT NULL";

/// Creates the tables when missing (converting a one-room file), and returns the last `seq`
/// written and where each room's rows end.
fn prepare_schema(conn: &Connection) -> rusqlite::Result<(u64, HashMap<RoomName, RoomTail>)> {
    conn.execute_batch("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);")?;
    let columns: Vec<String> = conn
        .prepare("SELECT name FROM pragma_table_info('messages')")?
        .query_map([], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if columns.is_empty() {
        conn.execute_batch(CREATE_MESSAGES)?;
    } else if !columns.iter().any(|column| column == "room") {
        // The one-room layout: every row is `general`'s, numbered by its seq (which had no
        // holes), so the same rows are retained and the oldest one's `prev` tells the same loss.
        conn.execute_batch(&format!(
            "BEGIN;
             ALTER TABLE messages RENAME TO messages_one_room;
             {CREATE_MESSAGES};
             INSERT INTO messages (room, seq, n, prev, user_id, name, message, ts)
                 SELECT 'general', seq, seq, seq - 1, user_id, name, message, ts FROM messages_one_room;
             DROP TABLE messages_one_room;
             COMMIT;"
        ))?;
    }
    let mut tails = HashMap::new();
    let mut newest = 0;
    let mut select = conn.prepare(ROOM_TAILS)?;
    let mut rows = select.query([])?;
    while let Some(row) = rows.next()? {
        let name: String = row.get(0)?;
        let tail = RoomTail { n: row.get(1)?, seq: row.get(2)? };
        newest = newest.max(tail.seq);
        match RoomName::parse(&name) {
            Ok(room) => {
                tails.insert(room, tail);
            }
            Err(error) => return Err(invalid_column(0, error)),
        }
    }
    // `meta` holds the last `seq` as of the last deletion; newer rows go beyond it.
    let recorded: u64 =
        conn.query_row("SELECT COALESCE((SELECT value FROM meta WHERE key = 'last_seq'), 0)", [], |row| {
            row.get(0)
        })?;
    Ok((recorded.max(newest), tails))
}

/// A row that no longer parses is corruption, reported as an error instead of a panic.
fn invalid_column(column: usize, error: app::protocol::InputError) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, Box::new(error))
}

fn backend(error: rusqlite::Error) -> StoreError {
    StoreError::Backend(error.to_string())
}

struct Writer {
    conn: Connection,
    last_seq: u64,
    /// Where each room's rows end.
    tails: HashMap<RoomName, RoomTail>,
    /// For each room, the `n` and `seq` of every row this writer wrote whose `n` is a multiple
    /// of [`RETENTION_STEP`], oldest first, from the newest one past retention on.
    ///
    /// `n` is not part of the key, so deleting `n <= X` reads every row of the room (10,000
    /// at the default retention, every 512 messages: 20 rows read per post, about a tenth of
    /// the writer's CPU per post in the 16-publisher profile). `n` and `seq` grow together
    /// within a room, so a mark turns it into `seq <= S`, one range of the b-tree that holds
    /// only the rows deleted. Rows written before the server started have no marks: until
    /// the marks reach back far enough, the room is deleted from as before.
    marks: HashMap<RoomName, VecDeque<RoomTail>>,
    retention: u64,
    feed: MessageFeed,
}

/// A message with the place it takes in its room.
struct Row {
    message: ChatMessage,
    n: u64,
    prev: u64,
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
        // The rooms' tails as they will be once this batch is written, applied only if it is.
        let mut tails: HashMap<RoomName, RoomTail> = HashMap::new();
        let rows: Vec<Row> = batch
            .iter()
            .zip(self.last_seq + 1..)
            .map(|(PendingAppend { author, room, text, .. }, seq)| {
                let tail = tails
                    .entry(room.clone())
                    .or_insert_with(|| self.tails.get(room).copied().unwrap_or_default());
                let row = Row {
                    message: ChatMessage {
                        id: author.id.clone(),
                        name: author.name.clone(),
                        message: text.clone(),
                        seq,
                        ts: ts.clone(),
                        room: room.clone(),
                    },
                    n: tail.n + 1,
                    prev: tail.seq,
                };
                *tail = RoomTail { n: row.n, seq };
                row
            })
            .collect();
        match self.write(&rows, &tails) {
            Ok(()) => {
                self.last_seq += rows.len() as u64;
                self.keep_marks(&rows, &tails);
                self.tails.extend(tails);
                let messages: Vec<ChatMessage> = rows.into_iter().map(|row| row.message).collect();
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

    /// Writes `rows`; `tails` are the rooms they go to, as they end after them.
    fn write(&mut self, rows: &[Row], tails: &HashMap<RoomName, RoomTail>) -> rusqlite::Result<()> {
        let Some(last) = rows.last() else { return Ok(()) };
        let last_seq = last.message.seq;
        let tx = self.conn.transaction()?;
        {
            // Every statement of a commit is prepared once per connection, not once per commit.
            let mut insert = tx.prepare_cached(
                "INSERT INTO messages (room, seq, n, prev, user_id, name, message, ts)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            for Row { message: m, n, prev } in rows {
                insert.execute(params![
                    m.room.as_str(),
                    m.seq,
                    n,
                    prev,
                    m.id.as_str(),
                    m.name.as_str(),
                    m.message.as_str(),
                    m.ts
                ])?;
            }
            if last_seq / RETENTION_STEP != self.last_seq / RETENTION_STEP {
                tx.prepare_cached(
                    "INSERT INTO meta (key, value) VALUES ('last_seq', ?1)
                     ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                )?
                .execute(params![last_seq])?;
            }
            for (room, tail) in tails {
                let before = self.tails.get(room).map_or(0, |tail| tail.n);
                if tail.n / RETENTION_STEP != before / RETENTION_STEP {
                    // Rows up to this `n` are past retention.
                    let dropped_through = tail.n.saturating_sub(self.retention);
                    match newest_mark_up_to(&self.marks, room, dropped_through) {
                        Some(mark) => tx
                            .prepare_cached("DELETE FROM messages WHERE room = ?1 AND seq <= ?2")?
                            .execute(params![room.as_str(), mark.seq])?,
                        None => tx
                            .prepare_cached("DELETE FROM messages WHERE room = ?1 AND n <= ?2")?
                            .execute(params![room.as_str(), dropped_through])?,
                    };
                }
            }
        }
        tx.commit()
    }

    /// Notes the marks among `rows`, just written, and forgets those no deletion will need:
    /// every mark past retention but the newest (`tails`: where the rooms of `rows` end now).
    fn keep_marks(&mut self, rows: &[Row], tails: &HashMap<RoomName, RoomTail>) {
        for row in rows.iter().filter(|row| row.n % RETENTION_STEP == 0) {
            let marks = self.marks.entry(row.message.room.clone()).or_default();
            marks.push_back(RoomTail { n: row.n, seq: row.message.seq });
        }
        for (room, tail) in tails {
            if let Some(marks) = self.marks.get_mut(room) {
                let dropped_through = tail.n.saturating_sub(self.retention);
                while marks.get(1).is_some_and(|next| next.n <= dropped_through) {
                    marks.pop_front();
                }
            }
        }
    }
}

/// The newest of `room`'s `marks` (see [`Writer::marks`]) at or below `n`.
fn newest_mark_up_to(
    marks: &HashMap<RoomName, VecDeque<RoomTail>>,
    room: &RoomName,
    n: u64,
) -> Option<RoomTail> {
    marks.get(room)?.iter().rev().find(|mark| mark.n <= n).copied()
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

const SELECT: &str = "SELECT user_id, name, message, seq, ts, room FROM messages";
/// The rows of room `?1` a read may return, given the retention as `?2`: the room's newest
/// `retention` (older ones are only deleted every [`RETENTION_STEP`]). One statement, so one
/// snapshot; the subquery does not depend on the row, so it is computed once.
const RETAINED: &str = "room = ?1
     AND n > COALESCE((SELECT n FROM messages WHERE room = ?1 ORDER BY seq DESC LIMIT 1), 0) - ?2";

fn row_to_message(row: &rusqlite::Row<'_>) -> rusqlite::Result<ChatMessage> {
    // Rows were validated when written.
    let id: String = row.get(0)?;
    let name: String = row.get(1)?;
    let message: String = row.get(2)?;
    let room: String = row.get(5)?;
    Ok(ChatMessage {
        id: UserId::parse(&id).map_err(|e| invalid_column(0, e))?,
        name: UserName::parse(&name).map_err(|e| invalid_column(1, e))?,
        message: MessageText::parse(&message).map_err(|e| invalid_column(2, e))?,
        seq: row.get(3)?,
        ts: row.get(4)?,
        room: RoomName::parse(&room).map_err(|e| invalid_column(5, e))?,
    })
}

/// SQLite's integers are signed: a `seq` past `i64::MAX` (a client's claim, never a real one)
/// is the largest it can compare with.
fn sql_seq(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

impl MessageStore for SqliteStore {
    fn append(
        &self,
        author: User,
        room: RoomName,
        text: MessageText,
    ) -> BoxFuture<'_, Result<ChatMessage, StoreError>> {
        Box::pin(async move {
            if self.closed.load(Ordering::Acquire) {
                return Err(StoreError::Unavailable);
            }
            let (reply, answer) = oneshot::channel();
            self.commands
                .send(Command::Job(Job::Append(PendingAppend { author, room, text, reply })))
                .await
                .map_err(|_| StoreError::Unavailable)?;
            // A dropped reply means the writer stopped before this append: not written.
            answer.await.map_err(|_| StoreError::Unavailable)?
        })
    }

    fn read_after<'a>(
        &'a self,
        room: &'a RoomName,
        after: u64,
        limit: usize,
    ) -> BoxFuture<'a, Result<Replay, StoreError>> {
        let (retention, room) = (self.retention, room.clone());
        Box::pin(self.read(move |conn| {
            // The oldest retained row's `prev` is the newest message the room lost.
            let horizon = conn
                .prepare_cached(&format!("SELECT prev FROM messages WHERE {RETAINED} ORDER BY seq LIMIT 1"))?
                .query_row(params![room.as_str(), retention], |row| row.get(0))
                .or_else(|error| match error {
                    rusqlite::Error::QueryReturnedNoRows => Ok(0),
                    error => Err(error),
                })?;
            let messages = conn
                .prepare_cached(&format!("{SELECT} WHERE {RETAINED} AND seq > ?3 ORDER BY seq LIMIT ?4"))?
                .query_map(
                    params![room.as_str(), retention, sql_seq(after), sql_limit(limit)],
                    row_to_message,
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(Replay { messages, horizon })
        }))
    }

    fn read_last<'a>(
        &'a self,
        room: &'a RoomName,
        n: usize,
    ) -> BoxFuture<'a, Result<Vec<ChatMessage>, StoreError>> {
        Box::pin(self.read_before(room, None, n).map_ok(|page| page.messages))
    }

    fn read_before<'a>(
        &'a self,
        room: &'a RoomName,
        before: Option<u64>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Page, StoreError>> {
        let (retention, room) = (self.retention, room.clone());
        let before = before.map_or(i64::MAX, sql_seq);
        Box::pin(self.read(move |conn| {
            // One row more than asked says whether older ones exist.
            let mut messages = conn
                .prepare_cached(&format!(
                    "{SELECT} WHERE {RETAINED} AND seq < ?3 ORDER BY seq DESC LIMIT ?4"
                ))?
                .query_map(
                    params![room.as_str(), retention, before, sql_limit(limit).saturating_add(1)],
                    row_to_message,
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let more = messages.len() > limit;
            messages.truncate(limit);
            messages.reverse();
            Ok(Page { messages, more })
        }))
    }

    fn rooms(&self) -> BoxFuture<'_, Result<Vec<RoomHead>, StoreError>> {
        Box::pin(self.read(|conn| {
            let mut select = conn.prepare_cached(ROOM_TAILS)?;
            let mut rows = select.query([])?;
            let mut heads = Vec::new();
            while let Some(row) = rows.next()? {
                let room: String = row.get(0)?;
                heads.push(RoomHead {
                    room: RoomName::parse(&room).map_err(|e| invalid_column(0, e))?,
                    last_seq: row.get(2)?,
                });
            }
            Ok(heads)
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

    fn general() -> RoomName {
        RoomName::general()
    }

    fn room(name: &str) -> RoomName {
        RoomName::parse(name).unwrap()
    }

    fn seqs(messages: &[ChatMessage]) -> Vec<u64> {
        messages.iter().map(|m| m.seq).collect()
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
                tokio::spawn(async move { store.append(author(), general(), text(&format!("m{i}"))).await })
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
            assert_eq!(store.append(author(), general(), text("hi")).await.unwrap().seq, i);
        }
        store.close().await;
        assert!(matches!(
            store.append(author(), general(), text("late")).await,
            Err(StoreError::Unavailable)
        ));
        drop(store);

        let store = SqliteStore::open(&path, 100, feed).unwrap();
        assert_eq!(store.append(author(), general(), text("again")).await.unwrap().seq, 4);
        assert_eq!(*seen.lock().unwrap(), vec![1, 2, 3, 4]);
        let all = store.read_last(&general(), 10).await.unwrap();
        assert_eq!(all.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![1, 2, 3, 4]);
    }

    /// Drives one commit on this thread, so the order is checked rather than raced: when
    /// the feed is called the caller has no answer yet, and once the feed has let the writer
    /// answer (before it wakes the streams) the answer is there.
    #[test]
    fn the_writer_answers_after_the_feed_records_and_before_it_wakes_streams() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open_connection(&dir.path().join("chat.db")).unwrap();
        let (last_seq, tails) = prepare_schema(&conn).unwrap();
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
        let mut writer = Writer { conn, last_seq, tails, marks: HashMap::new(), retention: 100, feed };
        writer.commit(&mut vec![PendingAppend {
            author: author(),
            room: general(),
            text: text("hi"),
            reply,
        }]);
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
        let replay = store.read_after(&general(), 0, 100).await.unwrap();
        assert_eq!(
            replay.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
            vec![total - 2, total - 1, total]
        );
        assert_eq!(store.append(author(), general(), text("next")).await.unwrap().seq, total + 1);
    }

    #[tokio::test]
    async fn rows_this_writer_wrote_are_deleted_up_to_its_newest_mark_past_retention() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chat.db");
        let (feed, _) = recording_feed();
        let store = SqliteStore::open(&path, 3, feed).unwrap();
        let total = 2 * RETENTION_STEP + 10;
        // One at a time: each commit holds one row, so the writer has seen the mark at
        // RETENTION_STEP long before it crosses 2 × RETENTION_STEP.
        for _ in 0..total {
            store.append(author(), general(), text("hi")).await.unwrap();
        }
        // The rows past retention still on disk are in no read: not in a replay, not in a page
        // read back.
        let replay = store.read_after(&general(), 0, 100).await.unwrap();
        assert_eq!((seqs(&replay.messages), replay.horizon), (vec![total - 2, total - 1, total], total - 3));
        let page = store.read_before(&general(), None, 100).await.unwrap();
        assert_eq!((seqs(&page.messages), page.more), (vec![total - 2, total - 1, total], false));
        store.close().await;
        drop(store);

        // Crossing 2 × RETENTION_STEP, the newest mark past retention is the row numbered
        // RETENTION_STEP: everything up to it is gone, and the rows after it wait for the
        // next step.
        let (oldest, rows): (u64, u64) = Connection::open(&path)
            .unwrap()
            .query_row("SELECT MIN(n), COUNT(*) FROM messages", [], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap();
        assert_eq!((oldest, rows), (RETENTION_STEP + 1, total - RETENTION_STEP));
    }

    #[tokio::test]
    async fn a_second_store_on_the_same_file_is_refused_until_the_first_closes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chat.db");
        let (feed, _) = recording_feed();
        let first = SqliteStore::open(&path, 10, feed.clone()).unwrap();
        first.append(author(), general(), text("hi")).await.unwrap();
        match SqliteStore::open(&path, 10, feed.clone()) {
            Err(StoreError::Backend(reason)) => assert!(reason.contains("in use"), "{reason}"),
            Err(other) => panic!("unexpected error: {other}"),
            Ok(_) => panic!("two stores wrote to one file"),
        }
        first.close().await;
        let second = SqliteStore::open(&path, 10, feed).unwrap();
        assert_eq!(second.read_last(&general(), 10).await.unwrap().len(), 1);
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
            tokio::spawn(async move { store.read_last(&general(), 100).await })
        };
        let seen = read.await.unwrap().unwrap();
        assert_eq!(seen.iter().map(|m| m.seq).collect::<Vec<_>>(), (1..=50).collect::<Vec<_>>());
        answers(appends).await;
    }

    #[tokio::test]
    async fn retention_keeps_the_newest_and_reports_the_horizon() {
        let dir = tempfile::tempdir().unwrap();
        let (feed, _) = recording_feed();
        let store = SqliteStore::open(&dir.path().join("chat.db"), 3, feed).unwrap();
        let empty = store.read_after(&general(), 0, 100).await.unwrap();
        assert_eq!((empty.messages.len(), empty.horizon), (0, 0));
        for i in 0..5 {
            store.append(author(), general(), text(&format!("m{i}"))).await.unwrap();
        }
        let replay = store.read_after(&general(), 0, 100).await.unwrap();
        assert_eq!(replay.horizon, 2, "messages 1 and 2 are gone");
        assert_eq!(seqs(&replay.messages), vec![3, 4, 5]);
        let replay = store.read_after(&general(), 4, 100).await.unwrap();
        assert_eq!(seqs(&replay.messages), vec![5]);
    }

    #[tokio::test]
    async fn each_room_keeps_its_own_messages_retention_and_horizon() {
        let dir = tempfile::tempdir().unwrap();
        let (feed, seen) = recording_feed();
        let store = SqliteStore::open(&dir.path().join("chat.db"), 3, feed).unwrap();
        // a: 1 2 _ 4 5 _ 7 ; b: 3 6
        for (i, target) in ["a", "a", "b", "a", "a", "b", "a"].into_iter().enumerate() {
            let message = store.append(author(), room(target), text(&format!("m{i}"))).await.unwrap();
            assert_eq!((message.seq, message.room.as_str()), (i as u64 + 1, target));
        }
        assert_eq!(*seen.lock().unwrap(), (1..=7).collect::<Vec<_>>(), "one sequence for all rooms");
        let a = store.read_after(&room("a"), 0, 100).await.unwrap();
        assert_eq!((seqs(&a.messages), a.horizon), (vec![4, 5, 7], 2), "a lost 1 and 2");
        assert!(a.messages.iter().all(|m| m.room == room("a")));
        let b = store.read_after(&room("b"), 0, 100).await.unwrap();
        assert_eq!((seqs(&b.messages), b.horizon), (vec![3, 6], 0), "b lost nothing");
        assert_eq!(seqs(&store.read_after(&room("a"), 4, 1).await.unwrap().messages), vec![5]);
        assert_eq!(seqs(&store.read_last(&room("b"), 1).await.unwrap()), vec![6]);
        assert!(store.read_last(&room("nobody"), 10).await.unwrap().is_empty());
        let mut heads = store.rooms().await.unwrap();
        heads.sort_by(|x, y| x.room.cmp(&y.room));
        assert_eq!(
            heads,
            vec![RoomHead { room: room("a"), last_seq: 7 }, RoomHead { room: room("b"), last_seq: 6 }]
        );
    }

    #[tokio::test]
    async fn pages_before_a_seq_cover_a_room_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let (feed, _) = recording_feed();
        let store = SqliteStore::open(&dir.path().join("chat.db"), 100, feed).unwrap();
        for i in 0..12 {
            let target = if i % 3 == 0 { "other" } else { "talk" };
            store.append(author(), room(target), text(&format!("m{i}"))).await.unwrap();
        }
        let talk: Vec<u64> = (1..=12).filter(|seq| (seq - 1) % 3 != 0).collect();
        let (mut pages, mut before) = (Vec::new(), None);
        loop {
            let page = store.read_before(&room("talk"), before, 3).await.unwrap();
            before = page.messages.first().map(|m| m.seq);
            pages.push((seqs(&page.messages), page.more));
            if !page.more {
                break;
            }
        }
        assert_eq!(
            pages,
            vec![(vec![9, 11, 12], true), (vec![5, 6, 8], true), (vec![2, 3], false)],
            "newest first, each page oldest first, `more` false exactly at the oldest"
        );
        assert_eq!(
            pages.iter().flat_map(|(seqs, _)| seqs.clone()).collect::<std::collections::BTreeSet<_>>(),
            talk.into_iter().collect()
        );
        let exact = store.read_before(&room("talk"), Some(5), 2).await.unwrap();
        assert_eq!((seqs(&exact.messages), exact.more), (vec![2, 3], false), "a page ending at the oldest");
        let none = store.read_before(&room("talk"), Some(1), 10).await.unwrap();
        assert_eq!((none.messages.len(), none.more), (0, false));
    }

    #[tokio::test]
    async fn a_one_room_file_is_converted_to_general_keeping_what_it_retained_and_lost() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chat.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE messages (seq INTEGER PRIMARY KEY, user_id TEXT NOT NULL, name TEXT NOT NULL,
                                        message TEXT NOT NULL, ts TEXT NOT NULL);
                 CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
                 INSERT INTO meta VALUES ('last_seq', 3);",
            )
            .unwrap();
            for seq in 3..=6 {
                conn.execute(
                    "INSERT INTO messages VALUES (?1, 'ann', 'Ann', ?2, '2026-01-01T00:00:00.000Z')",
                    params![seq, format!("old {seq}")],
                )
                .unwrap();
            }
        }
        let (feed, _) = recording_feed();
        let store = SqliteStore::open(&path, 3, feed).unwrap();
        let replay = store.read_after(&general(), 0, 100).await.unwrap();
        assert_eq!((seqs(&replay.messages), replay.horizon), (vec![4, 5, 6], 3));
        assert!(replay.messages.iter().all(|m| m.room.is_general() && m.message.as_str().starts_with("old")));
        let next = store.append(author(), general(), text("new")).await.unwrap();
        assert_eq!(next.seq, 7);
        let replay = store.read_after(&general(), 0, 100).await.unwrap();
        assert_eq!((seqs(&replay.messages), replay.horizon), (vec![5, 6, 7], 4));
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
        store.append(author(), general(), text("hi")).await.unwrap();
        let policies = policies_of_threads_named("sqlite-writer");
        assert!(policies.contains(&(libc::SCHED_BATCH as u32)), "writer policies: {policies:?}");
    }
}
