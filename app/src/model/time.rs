//! When a message was sent, as people read it: "now", "5 min. ago", "2 hr. ago" (in the
//! reader's language), and for anything older than a day the local date. The exact local time
//! is for the hover title.
//!
//! The server stamps messages in RFC 3339 UTC; parsing that here (instead of with `Date` in the
//! browser) keeps grouping and relative times plain Rust, tested without a browser. Only the
//! clock, the local time zone and the reader's locale need JavaScript: the browser side provides
//! them as a [`Clock`] in context, the server an inert one, since it never renders a message.

use leptos::prelude::*;

/// Milliseconds since the Unix epoch of an RFC 3339 timestamp such as
/// `2026-11-24T10:00:00.123Z` or `2026-11-24T11:00:00+01:00`; `None` if it is not one.
pub fn parse_ts_ms(ts: &str) -> Option<f64> {
    let bytes = ts.as_bytes();
    let number = |from: usize, to: usize| -> Option<i64> {
        let digits = bytes.get(from..to)?;
        digits.iter().try_fold(0i64, |value, &digit| {
            digit.is_ascii_digit().then(|| value * 10 + i64::from(digit - b'0'))
        })
    };
    let separators = [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')];
    if separators.iter().any(|&(at, byte)| bytes.get(at) != Some(&byte))
        || !matches!(bytes.get(10), Some(b'T' | b't' | b' '))
    {
        return None;
    }
    let (year, month, day) = (number(0, 4)?, number(5, 7)?, number(8, 10)?);
    let (hour, minute, second) = (number(11, 13)?, number(14, 16)?, number(17, 19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }

    let mut at = 19;
    let mut millis = 0.0;
    if bytes.get(at) == Some(&b'.') {
        at += 1;
        let start = at;
        let mut scale = 100.0;
        while let Some(digit) = bytes.get(at).filter(|byte| byte.is_ascii_digit()) {
            millis += f64::from(digit - b'0') * scale;
            scale /= 10.0;
            at += 1;
        }
        if at == start {
            return None;
        }
    }
    let offset_minutes = match bytes.get(at..)? {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let minutes = number(at + 1, at + 3)? * 60 + number(at + 4, at + 6)?;
            if *sign == b'+' { minutes } else { -minutes }
        }
        _ => return None,
    };

    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second - offset_minutes * 60;
    Some(seconds as f64 * 1000.0 + millis)
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar (Howard Hinnant's
/// `days_from_civil`).
pub fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// How long ago something was, in the unit a reader wants: the rule is here, the words are the
/// reader's locale's (the page's [`Clock`] says them with `Intl.RelativeTimeFormat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ago {
    /// Under 45 seconds.
    Now,
    Minutes(u64),
    Hours(u64),
}

impl Ago {
    /// English words, where no locale is at hand (the server renders no message time).
    pub fn in_english(self) -> String {
        match self {
            Self::Now => "now".to_owned(),
            Self::Minutes(minutes) => format!("{minutes} min. ago"),
            Self::Hours(hours) => format!("{hours} hr. ago"),
        }
    }
}

/// How long ago `ts_ms` was at `now_ms`, up to a day; `None` after that (the date is clearer
/// then). A clock a little behind the server's reads as "now", never "in 1 min".
pub fn ago(ts_ms: f64, now_ms: f64) -> Option<Ago> {
    let seconds = ((now_ms - ts_ms) / 1000.0).max(0.0) as u64;
    match seconds {
        0..45 => Some(Ago::Now),
        45..3_600 => Some(Ago::Minutes((seconds / 60).max(1))),
        3_600..86_400 => Some(Ago::Hours(seconds / 3_600)),
        _ => None,
    }
}

/// Messages by one author closer together than this are shown as one group.
pub const GROUP_WINDOW_MS: f64 = 5.0 * 60.0 * 1000.0;

/// The browser's clock and the reader's locale, as the message list asks for them: provided as
/// context next to the page's actions, so the list never names the browser side.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// Now, in milliseconds since the epoch.
    pub now: Callback<(), f64>,
    /// A time (milliseconds since the epoch) in the reader's locale and time zone: `true` for
    /// the exact time, `false` for a short date and time.
    pub local: Callback<(f64, bool), String>,
    /// How long ago, in the reader's words ("now", "5 min. ago").
    pub relative: Callback<Ago, String>,
}

impl Clock {
    /// For the server build, which renders no message: the epoch, and no words.
    pub fn inert() -> Self {
        Self {
            now: Callback::new(|()| 0.0),
            local: Callback::new(|_| String::new()),
            relative: Callback::new(Ago::in_english),
        }
    }

    /// The page's clock, as provided to it.
    ///
    /// # Panics
    ///
    /// Outside the chat page, where nobody provided it: a wiring mistake, not a user's.
    pub fn expect() -> Self {
        expect_context()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_timestamps_parse_to_epoch_milliseconds() {
        assert_eq!(parse_ts_ms("1970-01-01T00:00:00Z"), Some(0.0));
        assert_eq!(parse_ts_ms("2026-11-24T10:00:00.123Z"), Some(1_795_514_400_123.0));
        assert_eq!(parse_ts_ms("2000-02-29T23:59:59.5Z"), Some(951_868_799_500.0));
    }

    #[test]
    fn offsets_are_applied() {
        assert_eq!(parse_ts_ms("2026-11-24T11:00:00+01:00"), parse_ts_ms("2026-11-24T10:00:00Z"));
        assert_eq!(parse_ts_ms("2026-11-24T05:30:00-04:30"), parse_ts_ms("2026-11-24T10:00:00Z"));
    }

    #[test]
    fn anything_else_is_not_a_time() {
        for bad in [
            "",
            "yesterday",
            "2026-11-24",
            "2026-11-24T10:00:00",
            "2026-13-24T10:00:00Z",
            "2026-11-24T10:00:00.Z",
        ] {
            assert_eq!(parse_ts_ms(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn how_long_ago_is_told_in_minutes_then_hours_for_a_day() {
        let minute = 60_000.0;
        assert_eq!(ago(0.0, 0.0), Some(Ago::Now));
        assert_eq!(ago(10_000.0, 0.0), Some(Ago::Now), "a clock behind the server's");
        assert_eq!(ago(0.0, 50_000.0), Some(Ago::Minutes(1)));
        assert_eq!(ago(0.0, 59.0 * minute), Some(Ago::Minutes(59)));
        assert_eq!(ago(0.0, 150.0 * minute), Some(Ago::Hours(2)));
        assert_eq!(ago(0.0, 24.0 * 60.0 * minute), None);
        assert_eq!(Ago::Minutes(5).in_english(), "5 min. ago");
    }
}
