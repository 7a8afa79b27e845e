//! What one subscriber received in one step, checked as it arrives: every marker is set in a
//! bitset per publisher (a second arrival is a duplicate), compared with the highest counter
//! from that publisher so far (lower is out of order: each publisher sends one message at a
//! time, so its order is defined), and, on ssechat, the SSE `id` (`seq`) must grow.
//!
//! What was lost is only known at the end, against what each publisher had acknowledged:
//! [`Deliveries::missing`].

use crate::{countdown::Countdown, marker::Marker};
use std::sync::Arc;

/// A growable set of small integers.
#[derive(Debug, Clone, Default)]
pub struct Bitset {
    words: Vec<u64>,
    ones: u64,
}

impl Bitset {
    /// Sets `bit`; false when it was set already.
    pub fn insert(&mut self, bit: u64) -> bool {
        let (word, mask) = ((bit / 64) as usize, 1u64 << (bit % 64));
        if word >= self.words.len() {
            self.words.resize(word + 1, 0);
        }
        let fresh = self.words[word] & mask == 0;
        self.words[word] |= mask;
        self.ones += u64::from(fresh);
        fresh
    }

    pub fn contains(&self, bit: u64) -> bool {
        self.words.get((bit / 64) as usize).is_some_and(|word| word & (1 << (bit % 64)) != 0)
    }

    pub fn len(&self) -> u64 {
        self.ones
    }

    pub fn is_empty(&self) -> bool {
        self.ones == 0
    }

    /// How many bits of `self` are not in `other`.
    pub fn count_not_in(&self, other: &Bitset) -> u64 {
        self.words
            .iter()
            .enumerate()
            .map(|(i, word)| u64::from((word & !other.words.get(i).copied().unwrap_or(0)).count_ones()))
            .sum()
    }
}

/// Markers from one publisher, as one subscriber received them.
#[derive(Debug, Clone, Default)]
struct FromPublisher {
    seen: Bitset,
    highest: Option<u64>,
}

/// The coordinator's request to be told when a subscriber has everything.
#[derive(Debug)]
struct DrainWatch {
    expected: u64,
    countdown: Arc<Countdown>,
    told: bool,
}

/// What happened to one delivered marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// First arrival, in order.
    InOrder,
    /// First arrival, but after a later message of the same publisher (or a lower `seq`).
    OutOfOrder,
    Duplicate,
    /// From another step (a straggler of an earlier one).
    OtherStep,
}

/// One subscriber's deliveries in the current step.
#[derive(Debug, Default)]
pub struct Deliveries {
    step: u32,
    from: Vec<FromPublisher>,
    /// The highest SSE `id` seen (ssechat's `seq`), across steps.
    last_seq: u64,
    pub delivered: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
    /// Messages without a marker of this run (history sent on connect) whose `seq` was not
    /// above the previous one; kept across steps.
    pub seq_regressions: u64,
    /// Receive time of the last delivery, in run-clock microseconds.
    pub last_delivery_us: u64,
    drain: Option<DrainWatch>,
}

impl Deliveries {
    /// Starts counting a new step from zero.
    pub fn begin_step(&mut self, step: u32) {
        let (last_seq, seq_regressions) = (self.last_seq, self.seq_regressions);
        *self = Self { step, last_seq, seq_regressions, ..Self::default() };
    }

    /// Records a message event that carried no marker of this run: only its `seq` is checked.
    pub fn record_unmarked(&mut self, seq: Option<u64>) {
        if let Some(seq) = seq {
            if seq <= self.last_seq {
                self.seq_regressions += 1;
            }
            self.last_seq = seq;
        }
    }

    /// Records a delivery received at `now_us`.
    pub fn record(&mut self, marker: &Marker, seq: Option<u64>, now_us: u64) -> Arrival {
        if marker.step != self.step {
            return Arrival::OtherStep;
        }
        let index = marker.publisher as usize;
        if index >= self.from.len() {
            self.from.resize_with(index + 1, FromPublisher::default);
        }
        let from = &mut self.from[index];
        if !from.seen.insert(marker.counter) {
            self.duplicated += 1;
            return Arrival::Duplicate;
        }
        let mut in_order = from.highest.is_none_or(|highest| marker.counter > highest);
        from.highest = from.highest.max(Some(marker.counter));
        if let Some(seq) = seq {
            in_order &= seq > self.last_seq;
            self.last_seq = self.last_seq.max(seq);
        }
        self.delivered += 1;
        self.last_delivery_us = self.last_delivery_us.max(now_us);
        self.tell_if_complete();
        if in_order {
            Arrival::InOrder
        } else {
            self.out_of_order += 1;
            Arrival::OutOfOrder
        }
    }

    /// Asks to tick `countdown` once this subscriber has `expected` deliveries, or has ended
    /// (`ended`), at once if either is true already.
    pub fn watch_drain(&mut self, expected: u64, countdown: Arc<Countdown>, ended: bool) {
        self.drain = Some(DrainWatch { expected, countdown, told: false });
        if ended {
            self.stop_waiting();
        } else {
            self.tell_if_complete();
        }
    }

    /// The stream ended: nobody should wait for this subscriber any more.
    pub fn stop_waiting(&mut self) {
        if let Some(watch) = self.drain.as_mut().filter(|watch| !watch.told) {
            watch.told = true;
            watch.countdown.tick();
        }
    }

    fn tell_if_complete(&mut self) {
        let delivered = self.delivered;
        if let Some(watch) = self.drain.as_mut().filter(|watch| !watch.told && delivered >= watch.expected) {
            watch.told = true;
            watch.countdown.tick();
        }
    }

    /// Acknowledged messages (one set per publisher) this subscriber never received, of the
    /// publishers whose messages it is `owed`.
    pub fn missing(&self, acknowledged: &[Bitset], owed: impl Fn(usize) -> bool) -> u64 {
        let nothing = FromPublisher::default();
        acknowledged
            .iter()
            .enumerate()
            .filter(|(publisher, _)| owed(*publisher))
            .map(|(publisher, acked)| acked.count_not_in(&self.from.get(publisher).unwrap_or(&nothing).seen))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marker(publisher: u32, counter: u64) -> Marker {
        Marker { step: 1, publisher, counter, sent_us: 0 }
    }

    #[test]
    fn duplicates_reordering_and_losses_are_told_apart() {
        let mut deliveries = Deliveries::default();
        deliveries.begin_step(1);
        assert_eq!(deliveries.record(&marker(0, 0), Some(1), 5), Arrival::InOrder);
        assert_eq!(deliveries.record(&marker(1, 0), Some(2), 6), Arrival::InOrder);
        assert_eq!(deliveries.record(&marker(0, 2), Some(3), 7), Arrival::InOrder);
        assert_eq!(deliveries.record(&marker(0, 1), Some(4), 8), Arrival::OutOfOrder);
        assert_eq!(deliveries.record(&marker(0, 1), Some(5), 9), Arrival::Duplicate);
        assert_eq!(deliveries.record(&marker(1, 1), Some(4), 9), Arrival::OutOfOrder, "seq went back");
        assert_eq!(deliveries.record(&Marker { step: 0, ..marker(0, 9) }, None, 9), Arrival::OtherStep);
        assert_eq!((deliveries.delivered, deliveries.duplicated, deliveries.out_of_order), (5, 1, 2));

        let mut acked = vec![Bitset::default(), Bitset::default()];
        for counter in 0..4 {
            acked[0].insert(counter);
        }
        acked[1].insert(0);
        assert_eq!(deliveries.missing(&acked, |_| true), 1, "publisher 0's message 3 never came");
        assert_eq!(deliveries.missing(&acked, |publisher| publisher == 1), 0, "not owed publisher 0's");
    }

    #[test]
    fn a_drain_watch_ticks_once_when_everything_arrived() {
        let countdown = Arc::new(Countdown::new(2));
        let mut deliveries = Deliveries::default();
        deliveries.begin_step(1);
        deliveries.record(&marker(0, 0), None, 1);
        deliveries.watch_drain(2, Arc::clone(&countdown), false);
        assert_eq!(countdown.remaining(), 2);
        deliveries.record(&marker(0, 1), None, 2);
        deliveries.record(&marker(0, 2), None, 3);
        deliveries.stop_waiting();
        assert_eq!(countdown.remaining(), 1, "told once");
    }

    #[test]
    fn bitsets_count_what_the_other_lacks() {
        let (mut a, mut b) = (Bitset::default(), Bitset::default());
        for bit in [0, 63, 64, 1000] {
            assert!(a.insert(bit));
        }
        assert!(!a.insert(64));
        b.insert(63);
        assert_eq!((a.len(), a.count_not_in(&b), b.count_not_in(&a)), (4, 3, 0));
        assert!(a.contains(1000) && !a.contains(999));
    }
}
