//! A number of things still to happen (streams to connect, subscribers to catch up), and a way
//! to wait until all have happened or a deadline passes. Tasks tick it as they get there; the
//! coordinator waits on a notification, never by sleeping and looking again.

use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::{sync::Notify, time::Instant};

#[derive(Debug)]
pub struct Countdown {
    remaining: AtomicUsize,
    reached_zero: Notify,
}

impl Countdown {
    pub fn new(count: usize) -> Self {
        Self { remaining: AtomicUsize::new(count), reached_zero: Notify::new() }
    }

    /// One thing happened. Extra ticks past zero are ignored.
    pub fn tick(&self) {
        let previous =
            self.remaining.fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| left.checked_sub(1));
        if previous == Ok(1) {
            self.reached_zero.notify_waiters();
        }
    }

    pub fn remaining(&self) -> usize {
        self.remaining.load(Ordering::Acquire)
    }

    /// Waits until the count reaches zero (true) or the deadline passes (false).
    pub async fn wait_until(&self, deadline: Instant) -> bool {
        loop {
            let reached = self.reached_zero.notified();
            tokio::pin!(reached);
            // Registered before the check, so a tick between the check and the wait wakes us.
            reached.as_mut().enable();
            if self.remaining() == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, reached).await.is_err() {
                return self.remaining() == 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{sync::Arc, time::Duration};

    #[tokio::test]
    async fn waiting_ends_when_the_last_tick_arrives() {
        let countdown = Arc::new(Countdown::new(2));
        let ticker = Arc::clone(&countdown);
        let ticks = tokio::spawn(async move {
            ticker.tick();
            ticker.tick();
            ticker.tick();
        });
        assert!(countdown.wait_until(Instant::now() + Duration::from_secs(10)).await);
        ticks.await.unwrap();
        assert_eq!(countdown.remaining(), 0, "extra ticks do not wrap around");
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_gives_up_at_the_deadline() {
        let countdown = Countdown::new(1);
        assert!(!countdown.wait_until(Instant::now() + Duration::from_secs(1)).await);
    }
}
