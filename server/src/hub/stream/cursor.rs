//! An event stream's rules, apart from any I/O: when it may write, when it must wait, when it
//! has nothing to do, when it is over, and how large one write may grow.
//!
//! Three drivers write an event stream: the response body hyper polls, the connection's own
//! task, and the fan-out lane that writes idle streams in one loop. They wait in different ways
//! (a `select!` on the ring, a timer the lane shares among thousands of streams), but they must
//! keep one set of rules. Those rules live here, in a plain struct fed "now" and asked what to
//! do (as quinn-proto's connection is), so each driver only carries out the answer and the
//! rules are tested with a fake clock: plain [`Instant`] values, no sleeping.
//!
//! A stream that wrote less than [`FLUSH_INTERVAL`] ago waits out the rest of it before writing
//! again, so a busy stream writes at most once per interval whatever the message rate, with
//! everything that arrived meanwhile in that one write. A socket write costs far more than
//! the bytes in it, so this is what lets throughput grow with load. A quiet stream (the usual
//! case: a chat's messages are seconds apart) writes at once.

use bytes::Bytes;
use std::time::Duration;
use tokio::time::Instant;

/// The shortest time between two writes of one stream. Far below what a reader notices, and
/// below the gap between messages at the rates a room sees for long (100 messages/s is 10 ms
/// apart), so only bursts and floods are gathered.
pub(crate) const FLUSH_INTERVAL: Duration = Duration::from_millis(2);
const KEEP_ALIVE: &[u8] = b": keep-alive\n\n";
/// A chunk stops growing past this, so one wake-up's write stays bounded.
pub(crate) const MAX_CHUNK_BYTES: usize = 256 * 1024;

/// True when a chunk of `len` bytes was cut at the size bound: what it was taken from (the
/// opening, the ring) has more for the next write at once.
pub(crate) fn was_cut(len: usize) -> bool {
    len >= MAX_CHUNK_BYTES
}

/// What a stream's driver does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Write what is waiting, now. That may turn out to be nothing: past the flush interval
    /// the cursor does not ask whether anything waits, since the driver's look at the ring to
    /// take it answers the same question, and asking first would cost the hot path a second
    /// look (a lock on the ring) per write.
    Write,
    /// Something waits, but the stream wrote too recently: come back at this time, when what
    /// arrived meanwhile goes in the same write.
    WaitUntil(Instant),
    /// Nothing to write: wait for the ring (or the stream's timer).
    Idle,
    /// The stream is over (its cursor fell off the ring): end the body.
    End,
}

/// The timing and the end of one event stream. Holds no bytes and does no I/O.
pub(crate) struct StreamCursor {
    last_write: Instant,
    /// Silence after which a keep-alive comment is written.
    keepalive: Duration,
    /// The stream's cursor fell behind the ring: it ends at its next step.
    lagged: bool,
}

impl StreamCursor {
    /// A stream opened at `now`: the opening itself is written at once.
    pub(crate) fn new(now: Instant, keepalive: Duration) -> Self {
        Self { last_write: now, keepalive, lagged: false }
    }

    /// What to do at `now`. `pending` says whether anything waits to be written; it is asked
    /// only within the flush interval, to choose between waiting and idling (see [`Step::Write`]).
    pub(crate) fn next(&self, now: Instant, pending: impl FnOnce() -> bool) -> Step {
        if self.lagged {
            return Step::End;
        }
        let flush_at = self.last_write + FLUSH_INTERVAL;
        if flush_at <= now {
            Step::Write
        } else if pending() {
            Step::WaitUntil(flush_at)
        } else {
            Step::Idle
        }
    }

    /// Records a write made at `at`, whoever made it.
    pub(crate) fn wrote_at(&mut self, at: Instant) {
        self.last_write = at;
    }

    /// The stream's cursor fell off the ring's tail: it ends at its next step.
    pub(crate) fn fell_behind(&mut self) {
        self.lagged = true;
    }

    /// True once the stream fell behind.
    pub(crate) fn has_fallen_behind(&self) -> bool {
        self.lagged
    }

    /// A keep-alive comment, when the stream has been silent long enough at `now`.
    pub(crate) fn keep_alive(&self, now: Instant) -> Option<Bytes> {
        (now.saturating_duration_since(self.last_write) >= self.keepalive)
            .then(|| Bytes::from_static(KEEP_ALIVE))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEEPALIVE: Duration = Duration::from_secs(15);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_quiet_stream_writes_at_once_without_a_look_at_the_ring() {
        let opened = Instant::now();
        let cursor = StreamCursor::new(opened, KEEPALIVE);
        let unasked = || panic!("past the interval, taking from the ring is the look");
        assert_eq!(cursor.next(opened + ms(500), unasked), Step::Write);
        assert_eq!(
            cursor.next(opened + FLUSH_INTERVAL, unasked),
            Step::Write,
            "the interval is up at its end"
        );
    }

    #[test]
    fn a_stream_written_within_the_flush_interval_waits_out_the_rest_of_it() {
        let opened = Instant::now();
        let mut cursor = StreamCursor::new(opened, KEEPALIVE);
        let wrote = opened + ms(100);
        cursor.wrote_at(wrote);
        assert_eq!(cursor.next(wrote, || true), Step::WaitUntil(wrote + FLUSH_INTERVAL));
        assert_eq!(cursor.next(wrote + ms(1), || true), Step::WaitUntil(wrote + FLUSH_INTERVAL));
        assert_eq!(cursor.next(wrote + FLUSH_INTERVAL, || true), Step::Write);
    }

    #[test]
    fn a_stream_written_within_the_interval_with_nothing_waiting_is_idle() {
        let opened = Instant::now();
        let mut cursor = StreamCursor::new(opened, KEEPALIVE);
        assert_eq!(cursor.next(opened, || false), Step::Idle);
        cursor.wrote_at(opened + ms(10));
        assert_eq!(cursor.next(opened + ms(11), || false), Step::Idle);
    }

    #[test]
    fn a_stream_that_fell_behind_ends_whatever_waits() {
        let opened = Instant::now();
        let mut cursor = StreamCursor::new(opened, KEEPALIVE);
        cursor.fell_behind();
        assert!(cursor.has_fallen_behind());
        assert_eq!(cursor.next(opened, || true), Step::End);
        assert_eq!(cursor.next(opened + ms(500), || false), Step::End);
    }

    #[test]
    fn only_a_chunk_that_reached_the_size_bound_was_cut() {
        assert!(!was_cut(0));
        assert!(!was_cut(MAX_CHUNK_BYTES - 1));
        assert!(was_cut(MAX_CHUNK_BYTES));
        assert!(was_cut(MAX_CHUNK_BYTES + 1), "a drain stops past the bound, with the part that crossed it");
    }

    #[test]
    fn a_keep_alive_is_due_only_after_long_enough_silence() {
        let opened = Instant::now();
        let mut cursor = StreamCursor::new(opened, KEEPALIVE);
        assert_eq!(cursor.keep_alive(opened + KEEPALIVE - ms(1)), None);
        assert_eq!(cursor.keep_alive(opened + KEEPALIVE).as_deref(), Some(KEEP_ALIVE));
        cursor.wrote_at(opened + KEEPALIVE);
        assert_eq!(cursor.keep_alive(opened + KEEPALIVE + ms(1)), None, "a write restarts the silence");
        assert_eq!(cursor.keep_alive(opened), None, "a clock read before the write is no silence");
    }
}
