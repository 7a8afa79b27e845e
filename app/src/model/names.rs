//! Names typed into a form (the join form, the rename form), read with the protocol's own
//! rules: a refused name is explained before any request, in the words the server would use,
//! as a sentence. The browser side uses [`capitalised`] for the server's reasons too.

use crate::protocol::UserName;

/// Parses a name typed into a form, with the protocol's own rules; a refusal comes back as a
/// sentence to show under the field.
pub fn parse_name(raw: &str) -> Result<UserName, String> {
    UserName::parse(raw).map_err(|reason| capitalised(&reason.to_string()))
}

/// The parser's reasons are written to follow "400: "; as a sentence on their own they start
/// with a capital letter and end with a full stop.
pub fn capitalised(reason: &str) -> String {
    let mut chars = reason.chars();
    let Some(first) = chars.next() else {
        return String::new();
    };
    let mut sentence: String = first.to_uppercase().chain(chars).collect();
    if !sentence.ends_with(['.', '!', '?']) {
        sentence.push('.');
    }
    sentence
}

#[cfg(test)]
mod tests {
    use super::capitalised;

    #[test]
    fn a_reason_reads_as_a_sentence() {
        assert_eq!(capitalised("name must not be blank"), "Name must not be blank.");
        assert_eq!(capitalised("Already one."), "Already one.");
        assert_eq!(capitalised(""), "");
    }
}
