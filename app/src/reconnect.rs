//! The rules of the browser's reconnecting, apart from the browser: how long to wait between
//! attempts, what each answer to a probe of `/sse` means, how to read `Retry-After`, and when a
//! silent stream is taken for dead. They are plain functions of their inputs (the time and a
//! random number are passed in), so they are tested natively with a fake clock; the browser's
//! connection (`crate::client`, feature `hydrate`) only drives them.
//!
//! ## Why jitter
//!
//! When a server restarts, every open page loses its stream at the same instant. Waits of 1 s,
//! 2 s, 4 s … would bring them all back at the same instants too, a storm at each step. So each
//! wait is drawn at random between zero and the step's ceiling ("full jitter"): the attempts
//! spread over the whole interval, and the ceiling still grows to [`BACKOFF_MAX`].
//!
//! ## Why silence means "reconnect"
//!
//! A stream whose connection died without a word (a laptop that slept, a NAT that forgot it, a
//! proxy that dropped it) is "half open": the browser sees no error and `EventSource` stays
//! open forever. The server writes a `: keep-alive` comment after 15 s of silence, but
//! `EventSource` does not surface comments, so the page cannot tell a quiet room from a dead
//! stream by them. What it can see is events: so after [`SILENCE_LIMIT`] (more than twice the
//! keep-alive interval) without any, the stream is taken for dead, closed, and opened again with
//! `last_event_id`. In a busy room events come all the time (messages, and `presence` in large
//! rooms) and this never happens; in a quiet one it costs one reconnect per interval, within
//! the server's leave grace period, so nobody sees a leave or a join and nothing is replayed.
//! That is the price of noticing a dead stream within a minute without reading the stream's
//! bytes ourselves.

use std::time::Duration;

/// The ceiling of the first wait before reconnecting by hand; it doubles per failed attempt up
/// to [`BACKOFF_MAX`].
pub const BACKOFF_FIRST: Duration = Duration::from_secs(1);
pub const BACKOFF_MAX: Duration = Duration::from_secs(15);
/// A `Retry-After` longer than this is taken as this: someone will be looking at the page.
pub const RETRY_AFTER_MAX: Duration = Duration::from_secs(300);
/// How often a patient start asks again while a 409 may just mean "not yet" (the server's leave
/// grace period is 3 s by default).
pub const PATIENT_RETRY: Duration = Duration::from_millis(400);
/// How long a probe may take to answer before it counts as a failed attempt: a server that
/// accepts connections but never answers must not leave the page "reconnecting" forever.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a stream may go without any event before it is taken for dead: more than twice the
/// server's 15 s keep-alive interval (see the module's documentation).
pub const SILENCE_LIMIT: Duration = Duration::from_secs(35);
/// How often the silence is checked.
pub const SILENCE_CHECK: Duration = Duration::from_secs(5);

/// Waits between failed attempts: exponential ceilings, each wait drawn below its ceiling.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backoff {
    /// Attempts that failed since the stream was last live: the ceiling's exponent.
    failures: u32,
}

impl Backoff {
    /// The next wait, counting one more failure. `random` is uniform in `[0, 1)`
    /// (`Math.random()` in the browser); the wait is that fraction of 1 s, 2 s, 4 s … 15 s.
    pub fn next_wait(&mut self, random: f64) -> Duration {
        let ceiling = BACKOFF_FIRST.saturating_mul(1 << self.failures.min(8)).min(BACKOFF_MAX);
        self.failures = self.failures.saturating_add(1);
        let fraction = if random.is_finite() { random.clamp(0.0, 1.0) } else { 1.0 };
        ceiling.mul_f64(fraction)
    }

    /// The stream is live again: the next failure starts from the first step.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

/// What to do after a probe of the stream's URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// 200: open the stream.
    Open,
    /// 400: the id or name is invalid; back to the join form.
    Invalid,
    /// 409: the id or name is held in another browser; retrying will not help.
    Refused,
    /// Ask again after this long (the server's `Retry-After`, or a patient start's pace).
    RetryIn(Duration),
    /// Ask again after the next backoff wait.
    Backoff,
}

/// What a probe's answer means. `status` is `None` when there was no answer at all (offline,
/// refused connection, timed out); `retry_after` is the answer's `Retry-After`, already read
/// ([`parse_retry_after`]). `patient`: a 409 may still mean "not yet" (see
/// `client::Session::rename`).
///
/// Only 400 and 409 are final: they are the server's own answers about this id and name. Any
/// other refusal may come from something between (a proxy's 404 while the server restarts, a
/// 429 or 503 when busy) and is retried, after `Retry-After` when there is one.
pub fn after_probe(status: Option<u16>, retry_after: Option<Duration>, patient: bool) -> Next {
    match status {
        Some(200) => Next::Open,
        Some(400) => Next::Invalid,
        Some(409) if patient => Next::RetryIn(PATIENT_RETRY),
        Some(409) => Next::Refused,
        Some(_) => retry_after.map_or(Next::Backoff, |delay| Next::RetryIn(delay.min(RETRY_AFTER_MAX))),
        None => Next::Backoff,
    }
}

/// `Retry-After` as a wait from `now_ms` (milliseconds since the epoch): either delta-seconds
/// (`120`) or an HTTP date in the IMF-fixdate form (`Wed, 21 Oct 2015 07:28:00 GMT`); a date in
/// the past is no wait. `None` for anything else.
pub fn parse_retry_after(value: &str, now_ms: f64) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|byte| byte.is_ascii_digit()) {
        // More digits than fit are "a long time": the caller clamps it anyway.
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let at_ms = parse_imf_fixdate(value)?;
    Some(Duration::from_millis((at_ms - now_ms).max(0.0) as u64))
}

/// Milliseconds since the epoch of an IMF-fixdate (RFC 9110, section 5.6.7).
fn parse_imf_fixdate(value: &str) -> Option<f64> {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] =
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let mut parts = value.split(' ');
    let day_name = parts.next()?.strip_suffix(',')?;
    let (day, month, year, clock, zone) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some()
        || !DAYS.contains(&day_name)
        || zone != "GMT"
        || day.len() != 2
        || year.len() != 4
    {
        return None;
    }
    let number = |digits: &str| -> Option<i64> {
        (!digits.is_empty() && digits.bytes().all(|byte| byte.is_ascii_digit()))
            .then(|| digits.parse().ok())?
    };
    let month = MONTHS.iter().position(|name| *name == month)? as i64 + 1;
    let (day, year) = (number(day)?, number(year)?);
    let mut clock = clock.split(':');
    let (hour, minute, second) = (clock.next()?, clock.next()?, clock.next()?);
    if clock.next().is_some() || [hour, minute, second].iter().any(|part| part.len() != 2) {
        return None;
    }
    let (hour, minute, second) = (number(hour)?, number(minute)?, number(second)?);
    if !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let days = crate::model::time::days_from_civil(year, month, day);
    Some((days * 86_400 + hour * 3_600 + minute * 60 + second) as f64 * 1000.0)
}

/// When the stream last showed a sign of life, and whether it has been silent too long.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Silence {
    last_activity_ms: f64,
}

impl Silence {
    /// Something came in (the stream opened, or any event), or a stream was just opened.
    pub fn touch(&mut self, now_ms: f64) {
        self.last_activity_ms = now_ms;
    }

    /// Whether nothing came for longer than [`SILENCE_LIMIT`].
    pub fn is_too_long(&self, now_ms: f64) -> bool {
        now_ms - self.last_activity_ms > SILENCE_LIMIT.as_secs_f64() * 1000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: f64 = 1000.0;

    #[test]
    fn waits_are_drawn_below_a_ceiling_that_doubles_up_to_fifteen_seconds() {
        let mut backoff = Backoff::default();
        let ceilings: Vec<Duration> = (0..7).map(|_| backoff.next_wait(1.0)).collect();
        let expected = [1, 2, 4, 8, 15, 15, 15].map(Duration::from_secs);
        assert_eq!(ceilings, expected);
        let mut backoff = Backoff::default();
        assert_eq!(backoff.next_wait(0.5), Duration::from_millis(500));
        assert_eq!(backoff.next_wait(0.25), Duration::from_millis(500));
        assert_eq!(backoff.next_wait(0.0), Duration::ZERO);
    }

    #[test]
    fn pages_cut_off_together_come_back_at_different_times() {
        // A restart: a hundred pages fail at once, each with its own random numbers.
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut random = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 11) as f64 / (1u64 << 53) as f64
        };
        let waits: std::collections::HashSet<Duration> =
            (0..100).map(|_| Backoff::default().next_wait(random())).collect();
        assert!(waits.len() > 90, "only {} distinct waits", waits.len());
        assert!(waits.iter().all(|wait| *wait <= BACKOFF_FIRST));
    }

    #[test]
    fn a_live_stream_starts_the_backoff_over() {
        let mut backoff = Backoff::default();
        for _ in 0..5 {
            backoff.next_wait(1.0);
        }
        backoff.reset();
        assert_eq!(backoff.next_wait(1.0), BACKOFF_FIRST);
    }

    #[test]
    fn a_random_number_out_of_range_never_makes_a_longer_wait() {
        assert_eq!(Backoff::default().next_wait(7.0), BACKOFF_FIRST);
        assert_eq!(Backoff::default().next_wait(-1.0), Duration::ZERO);
        assert_eq!(Backoff::default().next_wait(f64::NAN), BACKOFF_FIRST);
    }

    #[test]
    fn only_the_servers_400_and_409_are_final() {
        assert_eq!(after_probe(Some(200), None, false), Next::Open);
        assert_eq!(after_probe(Some(400), None, false), Next::Invalid);
        assert_eq!(after_probe(Some(409), None, false), Next::Refused);
        for status in [401, 403, 404, 408, 429, 500, 502, 503, 504] {
            assert_eq!(after_probe(Some(status), None, false), Next::Backoff, "{status}");
        }
    }

    #[test]
    fn a_busy_answer_is_retried_when_its_retry_after_says() {
        let in_7s = Some(Duration::from_secs(7));
        assert_eq!(after_probe(Some(429), in_7s, false), Next::RetryIn(Duration::from_secs(7)));
        assert_eq!(after_probe(Some(503), in_7s, false), Next::RetryIn(Duration::from_secs(7)));
        assert_eq!(after_probe(Some(404), in_7s, false), Next::RetryIn(Duration::from_secs(7)));
        assert_eq!(
            after_probe(Some(429), Some(Duration::from_secs(86_400)), false),
            Next::RetryIn(RETRY_AFTER_MAX)
        );
    }

    #[test]
    fn no_answer_or_a_timed_out_probe_is_a_failed_attempt() {
        assert_eq!(after_probe(None, None, false), Next::Backoff);
        assert_eq!(after_probe(None, None, true), Next::Backoff);
    }

    #[test]
    fn a_patient_start_takes_a_409_as_not_yet() {
        assert_eq!(after_probe(Some(409), None, true), Next::RetryIn(PATIENT_RETRY));
        assert_eq!(after_probe(Some(400), None, true), Next::Invalid);
    }

    #[test]
    fn retry_after_in_seconds_is_read() {
        assert_eq!(parse_retry_after("120", 0.0), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after(" 5 ", 0.0), Some(Duration::from_secs(5)));
        assert_eq!(parse_retry_after("0", 0.0), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("99999999999999999999999", 0.0), Some(Duration::from_secs(u64::MAX)));
    }

    #[test]
    fn retry_after_as_an_http_date_is_a_wait_from_now() {
        // Wed, 21 Oct 2015 07:28:00 GMT is 1,445,412,480 s after the epoch.
        let date_ms = 1_445_412_480.0 * SECOND;
        let date = "Wed, 21 Oct 2015 07:28:00 GMT";
        assert_eq!(parse_retry_after(date, date_ms - 30.0 * SECOND), Some(Duration::from_secs(30)));
        assert_eq!(parse_retry_after(date, date_ms + 30.0 * SECOND), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784_111_777.0 * SECOND - 1500.0),
            Some(Duration::from_millis(1500))
        );
    }

    #[test]
    fn anything_else_in_retry_after_is_ignored() {
        for bad in [
            "",
            "soon",
            "-5",
            "1.5",
            "Wed, 21 Oct 2015 07:28:00 UTC",
            "Wed, 21 Oct 2015 07:28 GMT",
            "Wed 21 Oct 2015 07:28:00 GMT",
            "Wed, 21 Foo 2015 07:28:00 GMT",
            "Wed, 32 Oct 2015 07:28:00 GMT",
            "Wednesday, 21-Oct-15 07:28:00 GMT",
        ] {
            assert_eq!(parse_retry_after(bad, 0.0), None, "{bad:?}");
        }
    }

    #[test]
    fn a_stream_silent_for_more_than_twice_the_keep_alive_is_taken_for_dead() {
        let mut silence = Silence::default();
        silence.touch(1_000.0 * SECOND);
        assert!(!silence.is_too_long(1_030.0 * SECOND));
        assert!(!silence.is_too_long(1_035.0 * SECOND));
        assert!(silence.is_too_long(1_035.1 * SECOND));
        silence.touch(1_034.0 * SECOND);
        assert!(!silence.is_too_long(1_050.0 * SECOND));
    }
}
