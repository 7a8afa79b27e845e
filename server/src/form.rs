//! Parsing of `application/x-www-form-urlencoded` text (request bodies and query strings)
//! that refuses what a lossy decoder would silently repair: a percent-encoded byte sequence
//! that is not UTF-8 is a 400, not a string full of U+FFFD.

use percent_encoding::percent_decode;
use std::collections::HashSet;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    #[error("{0} is not valid UTF-8")]
    InvalidUtf8(String),
    #[error("field {0} appears more than once")]
    Duplicate(String),
}

/// Decodes `a=1&b=two` into pairs, in order.
///
/// Linear in the input: these are unauthenticated routes, so a long query of distinct keys
/// must cost no more than reading it (the duplicate check is a hash set, not a scan of the
/// keys before each one).
pub fn parse_pairs(input: &[u8]) -> Result<Vec<(String, String)>, FormError> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    for pair in input.split(|&b| b == b'&').filter(|pair| !pair.is_empty()) {
        let (key, value) = match pair.iter().position(|&b| b == b'=') {
            Some(at) => (&pair[..at], &pair[at + 1..]),
            None => (pair, &b""[..]),
        };
        let key = decode(key).map_err(|_| FormError::InvalidUtf8("a field name".into()))?;
        let value = decode(value).map_err(|_| FormError::InvalidUtf8(key.clone()))?;
        if !seen.insert(key.clone()) {
            return Err(FormError::Duplicate(key));
        }
        pairs.push((key, value));
    }
    Ok(pairs)
}

fn decode(raw: &[u8]) -> Result<String, std::string::FromUtf8Error> {
    let spaced: Vec<u8> = raw.iter().map(|&b| if b == b'+' { b' ' } else { b }).collect();
    String::from_utf8(percent_decode(&spaced).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_percent_and_plus_decoded() {
        let pairs = parse_pairs(b"message=a+b%0Ac%C3%A9&id=x").unwrap();
        assert_eq!(pairs, vec![("message".into(), "a b\nc\u{e9}".into()), ("id".into(), "x".into())]);
    }

    #[test]
    fn invalid_utf8_and_duplicates_are_refused() {
        assert_eq!(parse_pairs(b"message=%FF"), Err(FormError::InvalidUtf8("message".into())));
        assert_eq!(parse_pairs(b"a=1&a=2"), Err(FormError::Duplicate("a".into())));
    }

    /// A guard against complexity, not a speed target: 100,000 distinct keys take a linear
    /// parser well under a second even in a debug build, and a quadratic duplicate check (5
    /// billion key comparisons) minutes. The bound sits far from both.
    #[test]
    fn many_distinct_keys_are_parsed_in_linear_time() {
        let keys = 100_000;
        let query: Vec<u8> = (0..keys).map(|i| format!("k{i}=v&")).collect::<String>().into_bytes();
        let started = std::time::Instant::now();
        let pairs = parse_pairs(&query).expect("distinct keys");
        assert_eq!(pairs.len(), keys);
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "{:?}", started.elapsed());
        let mut repeated = query;
        repeated.extend_from_slice(b"k99999=again");
        assert_eq!(parse_pairs(&repeated), Err(FormError::Duplicate("k99999".into())));
    }
}
