//! Links in message text. A message is split into plain text and `http(s)://` addresses; the view
//! renders the text as text nodes and each address as an `<a>` whose `href` is exactly the text
//! shown. Nothing here produces markup: there is no way for typed text to become an element or an
//! attribute, and no other scheme (`javascript:`, `data:`) is ever a link.

/// One piece of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece<'a> {
    Text(&'a str),
    Link(&'a str),
}

/// Splits `text` into text and links, in order; joined back together they are `text` again.
pub fn split_links(text: &str) -> Vec<Piece<'_>> {
    let mut pieces = Vec::new();
    let mut plain_from = 0;
    let mut search_from = 0;
    while let Some(found) = text[search_from..].find("http") {
        let start = search_from + found;
        let end = start + link_len(&text[start..]);
        // A scheme glued to a word ("xhttp://…") is not the start of a link.
        let starts_word = text[..start].chars().next_back().is_none_or(|before| !before.is_alphanumeric());
        if end == start || !starts_word {
            search_from = start + "http".len();
            continue;
        }
        if plain_from < start {
            pieces.push(Piece::Text(&text[plain_from..start]));
        }
        pieces.push(Piece::Link(&text[start..end]));
        plain_from = end;
        search_from = end;
    }
    if plain_from < text.len() {
        pieces.push(Piece::Text(&text[plain_from..]));
    }
    pieces
}

/// The length of the link at the start of `rest`, or 0 if there is none. A link runs to the next
/// space, quote or angle bracket, less trailing punctuation that belongs to the sentence ("see
/// https://example.com." or "(https://example.com)"); a `)` closing one opened inside the link
/// stays, as in Wikipedia addresses.
fn link_len(rest: &str) -> usize {
    let scheme = if rest.starts_with("https://") {
        "https://".len()
    } else if rest.starts_with("http://") {
        "http://".len()
    } else {
        return 0;
    };
    let mut end = rest
        .char_indices()
        .find(|&(_, c)| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"' | '`'))
        .map_or(rest.len(), |(at, _)| at);
    while let Some(last) = rest[..end].chars().next_back() {
        let unbalanced_close = match last {
            ')' => rest[..end].matches('(').count() < rest[..end].matches(')').count(),
            ']' => rest[..end].matches('[').count() < rest[..end].matches(']').count(),
            _ => false,
        };
        if !matches!(last, '.' | ',' | ':' | ';' | '!' | '?' | '\'' | '*' | '_') && !unbalanced_close {
            break;
        }
        end -= last.len_utf8();
    }
    if end <= scheme { 0 } else { end }
}

#[cfg(test)]
mod tests {
    use super::{Piece::*, *};

    #[test]
    fn text_without_links_is_one_piece() {
        assert_eq!(split_links("hello there"), [Text("hello there")]);
        assert_eq!(split_links(""), []);
    }

    #[test]
    fn a_link_in_a_sentence_stops_before_the_full_stop() {
        assert_eq!(
            split_links("see https://example.com/a?b=c#d. ok"),
            [Text("see "), Link("https://example.com/a?b=c#d"), Text(". ok")]
        );
    }

    #[test]
    fn parentheses_around_a_link_are_not_part_of_it_but_inside_it_they_are() {
        assert_eq!(split_links("(http://example.com)"), [Text("("), Link("http://example.com"), Text(")")]);
        assert_eq!(
            split_links("https://en.wikipedia.org/wiki/Rust_(programming_language)!"),
            [Link("https://en.wikipedia.org/wiki/Rust_(programming_language)"), Text("!")]
        );
    }

    #[test]
    fn only_http_and_https_addresses_become_links() {
        for text in [
            "javascript:alert(1)",
            "data:text/html,hi",
            "xhttps://example.com",
            "https://",
            "http:/x",
            "ftp://x",
        ] {
            assert!(split_links(text).iter().all(|piece| matches!(piece, Text(_))), "{text:?}");
        }
    }

    #[test]
    fn markup_ends_a_link_and_stays_text() {
        assert_eq!(
            split_links("https://a.example/<img src=x onerror=alert(1)>"),
            [Link("https://a.example/"), Text("<img src=x onerror=alert(1)>")]
        );
        assert_eq!(split_links("\"https://a.example\""), [Text("\""), Link("https://a.example"), Text("\"")]);
    }

    #[test]
    fn several_links_and_line_breaks_keep_every_character() {
        let text = "one https://a.example\ntwo http://b.example/ü three";
        let pieces = split_links(text);
        assert_eq!(
            pieces,
            [
                Text("one "),
                Link("https://a.example"),
                Text("\ntwo "),
                Link("http://b.example/ü"),
                Text(" three")
            ]
        );
        let joined: String = pieces
            .iter()
            .map(|piece| match piece {
                Text(s) | Link(s) => *s,
            })
            .collect();
        assert_eq!(joined, text);
    }
}
