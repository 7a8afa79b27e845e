//! The text every published message carries, so that a subscriber can tell, from the message
//! alone and for any server: which run and step it belongs to, which publisher sent it, its
//! number in that publisher's sequence, and when it was sent.
//!
//! `lt.<run>.<step>.<publisher>.<counter>.<sent_us>` with `run` eight hex digits, the rest
//! decimal; optionally `.` and padding to make messages bigger. Only characters that need no
//! escaping in a URL-encoded form, a JSON string or an SSE data line.

use memchr::memmem;

/// What a message says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    pub step: u32,
    pub publisher: u32,
    pub counter: u64,
    /// Microseconds since the run's clock started ([`RunClock`]).
    pub sent_us: u64,
}

/// Writes and finds the markers of one run (messages of other runs are not found).
pub struct MarkerFormat {
    prefix: String,
    finder: memmem::Finder<'static>,
}

impl MarkerFormat {
    pub fn new(run: u32) -> Self {
        let prefix = format!("lt.{run:08x}.");
        let finder = memmem::Finder::new(prefix.as_bytes()).into_owned();
        Self { prefix, finder }
    }

    /// The message text for `marker`, with `padding` extra bytes.
    pub fn text(&self, marker: &Marker, padding: usize) -> String {
        let mut text = format!(
            "{}{}.{}.{}.{}",
            self.prefix, marker.step, marker.publisher, marker.counter, marker.sent_us
        );
        if padding > 0 {
            text.push('.');
            text.extend(std::iter::repeat_n('x', padding.saturating_sub(1)));
        }
        text
    }

    /// The marker in `data` (an SSE data field: JSON or the raw text), if this run wrote one.
    pub fn find(&self, data: &[u8]) -> Option<Marker> {
        let start = self.finder.find(data)? + self.prefix.len();
        let mut fields = [0u64; 4];
        let mut rest = &data[start..];
        for (i, field) in fields.iter_mut().enumerate() {
            let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
            if digits == 0 || digits > 19 {
                return None;
            }
            *field = rest[..digits].iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
            rest = &rest[digits..];
            if i < 3 {
                rest = rest.strip_prefix(b".")?;
            }
        }
        Some(Marker {
            step: u32::try_from(fields[0]).ok()?,
            publisher: u32::try_from(fields[1]).ok()?,
            counter: fields[2],
            sent_us: fields[3],
        })
    }
}

/// The run's clock: every send time and receive time is microseconds since one instant, so
/// latencies need no clock synchronisation (publishers and subscribers share the process).
#[derive(Debug, Clone, Copy)]
pub struct RunClock {
    epoch: std::time::Instant,
}

impl Default for RunClock {
    fn default() -> Self {
        Self { epoch: std::time::Instant::now() }
    }
}

impl RunClock {
    pub fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_is_found_in_json_and_raw_text() {
        let format = MarkerFormat::new(0xabc);
        let marker = Marker { step: 2, publisher: 15, counter: 123_456, sent_us: 9_876_543 };
        let text = format.text(&marker, 40);
        assert_eq!(text.len(), "lt.00000abc.2.15.123456.9876543".len() + 40);
        let json = format!(r#"{{"id":"x","name":"pub","message":"{text}","seq":7,"ts":"t"}}"#);
        assert_eq!(format.find(json.as_bytes()), Some(marker));
        assert_eq!(format.find(text.as_bytes()), Some(marker));
        assert_eq!(format.find(format.text(&marker, 0).as_bytes()), Some(marker));
    }

    #[test]
    fn markers_of_other_runs_and_broken_ones_are_not_found() {
        let format = MarkerFormat::new(1);
        let other = MarkerFormat::new(2).text(&Marker { step: 1, publisher: 0, counter: 0, sent_us: 0 }, 0);
        assert_eq!(format.find(other.as_bytes()), None);
        assert_eq!(format.find(b"lt.00000001.1.2"), None);
        assert_eq!(format.find(b"lt.00000001.1.2.x.4"), None);
        assert_eq!(format.find(b"hello"), None);
    }
}
