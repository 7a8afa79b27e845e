//! Sharing the CPU with the threads that wait for it while a fan-out round writes thousands of
//! streams: see [`share_the_core`]. Every writer of event streams (the lane, a stream's task)
//! calls it after each write.

use std::cell::Cell;

/// Writes a thread makes to event streams between two yields of the CPU.
const WRITES_PER_YIELD: u32 = 16;

thread_local! {
    static WRITES_SINCE_YIELD: Cell<u32> = const { Cell::new(0) };
}

/// Called after each write to an event stream: every [`WRITES_PER_YIELD`] writes on this
/// thread, it yields the CPU to whichever thread is waiting for it.
///
/// A fan-out round is thousands of writes with no wait between them, and the kernel takes the
/// core from a thread that never waits only at a scheduler tick. A thread that does not
/// preempt on wake-up, as the SQLite writer does not (`SCHED_BATCH`, see `store::sqlite`),
/// would wait for such a tick at every commit, and the highest message rate a large room holds
/// would fall with it. Yielding every few writes lets it in within a fraction of a millisecond;
/// when nothing waits, the yield returns at once, for one system call per [`WRITES_PER_YIELD`]
/// writes. (The figures behind the choice of 16 are in BENCHMARKS.md's notes.)
pub(super) fn share_the_core() {
    if WRITES_SINCE_YIELD.with(yield_is_due) {
        std::thread::yield_now();
    }
}

/// Counts one write; true on every [`WRITES_PER_YIELD`]th.
fn yield_is_due(writes: &Cell<u32>) -> bool {
    let count = writes.get() + 1;
    writes.set(count % WRITES_PER_YIELD);
    count == WRITES_PER_YIELD
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_is_yielded_once_every_so_many_writes() {
        let writes = Cell::new(0);
        let due: Vec<u32> = (1..=3 * WRITES_PER_YIELD).filter(|_| yield_is_due(&writes)).collect();
        assert_eq!(due.len(), 3);
        let writes = Cell::new(0);
        let first = (1..=WRITES_PER_YIELD).find(|_| yield_is_due(&writes));
        assert_eq!(first, Some(WRITES_PER_YIELD));
    }
}
