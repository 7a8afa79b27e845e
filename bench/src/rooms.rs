//! How a run's clients are spread over rooms (nchan: channels).
//!
//! One room (the default) is the one-room chat every earlier scenario measures: every
//! subscriber follows it, every publisher posts in it, and ssechat is spoken to in protocol
//! version 1. With several rooms, publisher `p` posts in room `p % rooms` and subscriber `i`
//! follows `per_stream` of them (one stream following several rooms: ssechat's `rooms=`,
//! nchan's multiplexed channels); ssechat is then spoken to in version 2. Each subscriber is
//! owed exactly the messages of the rooms it follows.

/// The rooms of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomLayout {
    /// The name every room's name starts with (the `--room` option).
    base: String,
    rooms: usize,
    per_stream: usize,
}

impl RoomLayout {
    /// `rooms` rooms (at least one) named after `base`, each subscriber following
    /// `per_stream` of them (at least one, at most all).
    pub fn new(base: String, rooms: usize, per_stream: usize) -> Self {
        let rooms = rooms.max(1);
        Self { base, rooms, per_stream: per_stream.clamp(1, rooms) }
    }

    /// True when the run has rooms (and ssechat speaks version 2).
    pub fn has_rooms(&self) -> bool {
        self.rooms > 1
    }

    pub fn count(&self) -> usize {
        self.rooms
    }

    pub fn per_stream(&self) -> usize {
        self.per_stream
    }

    /// The name of room `room`: the base alone with one room, else `base-N` (a valid ssechat
    /// room name when the base is one).
    pub fn name(&self, room: usize) -> String {
        if self.has_rooms() { format!("{}-{room}", self.base) } else { self.base.clone() }
    }

    /// The rooms subscriber `index` follows: `per_stream` rooms spread evenly over all of
    /// them, starting at its own, so every room has about as many followers.
    pub fn subscriber_rooms(&self, index: usize) -> Vec<usize> {
        let step = self.rooms / self.per_stream;
        (0..self.per_stream).map(|k| (index + k * step) % self.rooms).collect()
    }

    /// The room publisher `index` posts in.
    pub fn publisher_room(&self, index: usize) -> usize {
        index % self.rooms
    }

    /// Whether subscriber `subscriber` is owed what publisher `publisher` posts.
    pub fn is_owed(&self, subscriber: usize, publisher: usize) -> bool {
        let room = self.publisher_room(publisher);
        !self.has_rooms() || self.subscriber_rooms(subscriber).contains(&room)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_room_is_everyones() {
        let layout = RoomLayout::new("room".into(), 1, 5);
        assert!(!layout.has_rooms());
        assert_eq!(layout.name(0), "room");
        assert_eq!(layout.subscriber_rooms(7), vec![0]);
        assert!(layout.is_owed(3, 9));
    }

    #[test]
    fn subscribers_follow_distinct_rooms_spread_evenly() {
        let layout = RoomLayout::new("room".into(), 100, 10);
        let rooms = layout.subscriber_rooms(3);
        assert_eq!(rooms, vec![3, 13, 23, 33, 43, 53, 63, 73, 83, 93]);
        let mut followers = vec![0; 100];
        for subscriber in 0..5_000 {
            let mut rooms = layout.subscriber_rooms(subscriber);
            rooms.sort_unstable();
            rooms.dedup();
            assert_eq!(rooms.len(), 10, "distinct rooms");
            for room in rooms {
                followers[room] += 1;
            }
        }
        assert!(followers.iter().all(|&count| count == 500), "{followers:?}");
        assert_eq!(layout.name(42), "room-42");
        assert!(layout.is_owed(3, 13) && layout.is_owed(3, 113) && !layout.is_owed(3, 4));
    }

    #[test]
    fn one_room_per_subscriber_splits_them() {
        let layout = RoomLayout::new("r".into(), 1_000, 1);
        assert_eq!(layout.subscriber_rooms(1_234), vec![234]);
        assert_eq!(layout.publisher_room(234), 234);
        assert!(layout.is_owed(1_234, 234) && !layout.is_owed(1_234, 235));
    }
}
