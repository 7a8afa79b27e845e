//! Parsing of `application/x-www-form-urlencoded` text (request bodies and query strings)
//! that refuses what a lossy decoder would silently repair: a percent-encoded byte sequence
//! that is not UTF-8 is a 400, not a string full of U+FFFD.

use percent_encoding::percent_decode;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    #[error("{0} is not valid UTF-8")]
    InvalidUtf8(String),
    #[error("field {0} appears more than once")]
    Duplicate(String),
}

/// Decodes `a=1&b=two` into pairs, in order.
pub fn parse_pairs(input: &[u8]) -> Result<Vec<(String, String)>, FormError> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for pair in input.split(|&b| b == b'&').filter(|pair| !pair.is_empty()) {
        let (key, value) = match pair.iter().position(|&b| b == b'=') {
            Some(at) => (&pair[..at], &pair[at + 1..]),
            None => (pair, &b""[..]),
        };
        let key = decode(key).map_err(|_| FormError::InvalidUtf8("a field name".into()))?;
        let value = decode(value).map_err(|_| FormError::InvalidUtf8(key.clone()))?;
        if pairs.iter().any(|(existing, _)| *existing == key) {
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
}
