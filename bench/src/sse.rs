//! A streaming Server-Sent Events parser that keeps almost nothing per stream.
//!
//! Bytes go in as they arrive, split anywhere; events come out through a callback that
//! borrows the parser's buffers, so the steady state allocates nothing. A data field is kept
//! only up to [`KEPT_DATA_BYTES`]: past that, lines and `{` are still counted (enough to size
//! a user list) but the bytes are dropped. The original design sends every stream a list of
//! every user every two seconds; keeping those would cost the load tester gigabytes at ten
//! thousand streams, and it would become the thing measured.
//!
//! Lines end with `\n` or `\r\n` (every server measured here uses those; a lone `\r` is not
//! treated as a line end).

use memchr::memchr;

/// Data bytes kept per event; messages and `presence` events fit with room to spare.
pub const KEPT_DATA_BYTES: usize = 16 * 1024;
/// Field names longer than this are no field we know.
const LONGEST_FIELD_NAME: usize = 8;

/// One dispatched event, borrowed from the parser.
#[derive(Debug, Clone, Copy)]
pub struct SseEvent<'a> {
    /// The `event:` field, or `message` when there was none.
    pub name: &'a [u8],
    /// The data lines joined by `\n`, at most [`KEPT_DATA_BYTES`] of them.
    pub data: &'a [u8],
    /// True when `data` was cut at [`KEPT_DATA_BYTES`].
    pub data_truncated: bool,
    pub data_lines: usize,
    /// `{` characters in the data, truncated part included: the number of users in a user
    /// list (the load tester's names and ids have no braces).
    pub data_objects: usize,
    /// The `id:` field of this event, if it had one.
    pub id: Option<&'a [u8]>,
    /// Bytes on the wire, from the event's first field to its blank line included.
    pub wire_bytes: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Event,
    Data,
    Id,
    Comment,
    Ignored,
}

impl Field {
    fn named(name: &[u8]) -> Self {
        match name {
            b"event" => Self::Event,
            b"data" => Self::Data,
            b"id" => Self::Id,
            // `retry` and unknown fields change nothing the load tester looks at.
            _ => Self::Ignored,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Line {
    /// Nothing of the current line yet.
    Start,
    /// Inside the field name.
    Name,
    /// Right after the `:`; a single space here is not part of the value.
    ValueStart(Field),
    Value(Field),
}

#[derive(Debug)]
pub struct SseParser {
    line: Line,
    name: Vec<u8>,
    line_bytes: usize,
    event: Vec<u8>,
    data: Vec<u8>,
    data_truncated: bool,
    data_lines: usize,
    data_objects: usize,
    id: Vec<u8>,
    has_id: bool,
    event_bytes: usize,
}

impl Default for SseParser {
    fn default() -> Self {
        Self {
            line: Line::Start,
            name: Vec::new(),
            line_bytes: 0,
            event: Vec::new(),
            data: Vec::new(),
            data_truncated: false,
            data_lines: 0,
            data_objects: 0,
            id: Vec::new(),
            has_id: false,
            event_bytes: 0,
        }
    }
}

impl SseParser {
    /// Parses `input` and calls `on_event` for every event it completes.
    pub fn feed(&mut self, mut input: &[u8], on_event: &mut impl FnMut(&SseEvent<'_>)) {
        while let Some((&byte, rest)) = input.split_first() {
            match self.line {
                Line::Start | Line::Name => {
                    input = rest;
                    self.line_bytes += 1;
                    match byte {
                        b'\n' if self.line == Line::Start => {
                            self.event_bytes += self.line_bytes;
                            self.line_bytes = 0;
                            self.dispatch(on_event);
                        }
                        b'\n' => {
                            // A field name alone on its line: the field with an empty value.
                            let field = Field::named(&self.name);
                            self.begin_value(field);
                            self.end_line(field);
                        }
                        b'\r' => {}
                        b':' => {
                            let field = if self.line == Line::Start {
                                Field::Comment
                            } else {
                                Field::named(&self.name)
                            };
                            self.begin_value(field);
                            self.line = Line::ValueStart(field);
                        }
                        other => {
                            self.line = Line::Name;
                            if self.name.len() <= LONGEST_FIELD_NAME {
                                self.name.push(other);
                            }
                        }
                    }
                }
                Line::ValueStart(field) => {
                    if byte == b' ' {
                        input = rest;
                        self.line_bytes += 1;
                    }
                    self.line = Line::Value(field);
                }
                Line::Value(field) => {
                    let end = memchr(b'\n', input);
                    let value = &input[..end.unwrap_or(input.len())];
                    self.append_value(field, value);
                    let consumed = value.len() + usize::from(end.is_some());
                    self.line_bytes += consumed;
                    input = &input[consumed..];
                    if end.is_some() {
                        self.end_line(field);
                    }
                }
            }
        }
    }

    fn begin_value(&mut self, field: Field) {
        match field {
            Field::Event => self.event.clear(),
            Field::Id => {
                self.id.clear();
                self.has_id = true;
            }
            Field::Data => {
                if self.data_lines > 0 {
                    self.push_data(b"\n");
                }
                self.data_lines += 1;
            }
            Field::Comment | Field::Ignored => {}
        }
    }

    fn append_value(&mut self, field: Field, value: &[u8]) {
        match field {
            Field::Event if self.event.len() < 64 => self.event.extend_from_slice(value),
            Field::Id if self.id.len() < 64 => self.id.extend_from_slice(value),
            Field::Data => {
                self.data_objects += memchr::memchr_iter(b'{', value).count();
                self.push_data(value);
            }
            _ => {}
        }
    }

    fn push_data(&mut self, bytes: &[u8]) {
        let room = KEPT_DATA_BYTES.saturating_sub(self.data.len());
        if bytes.len() > room {
            self.data_truncated = true;
        }
        self.data.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    fn end_line(&mut self, field: Field) {
        let strip_cr = |buffer: &mut Vec<u8>| {
            if buffer.last() == Some(&b'\r') {
                buffer.pop();
            }
        };
        match field {
            Field::Event => strip_cr(&mut self.event),
            Field::Id => strip_cr(&mut self.id),
            Field::Data if !self.data_truncated => strip_cr(&mut self.data),
            _ => {}
        }
        // Comments (keep-alives) are no part of any event's size.
        if field != Field::Comment {
            self.event_bytes += self.line_bytes;
        }
        self.line_bytes = 0;
        self.name.clear();
        self.line = Line::Start;
    }

    fn dispatch(&mut self, on_event: &mut impl FnMut(&SseEvent<'_>)) {
        if self.data_lines > 0 {
            let name: &[u8] = if self.event.is_empty() { b"message" } else { &self.event };
            on_event(&SseEvent {
                name,
                data: &self.data,
                data_truncated: self.data_truncated,
                data_lines: self.data_lines,
                data_objects: self.data_objects,
                id: self.has_id.then_some(&self.id[..]),
                wire_bytes: self.event_bytes,
            });
        }
        self.event.clear();
        self.data.clear();
        // A huge event (a list of every user) must not keep its buffer for the stream's life.
        if self.data.capacity() > 4 * 1024 {
            self.data.shrink_to(1024);
        }
        self.data_truncated = false;
        self.data_lines = 0;
        self.data_objects = 0;
        self.id.clear();
        self.has_id = false;
        self.event_bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Eq)]
    struct Owned {
        name: String,
        data: String,
        id: Option<String>,
        lines: usize,
        objects: usize,
        wire_bytes: usize,
    }

    fn parse_in_pieces(input: &[u8], piece: usize) -> Vec<Owned> {
        let mut parser = SseParser::default();
        let mut events = Vec::new();
        let mut on_event = |event: &SseEvent<'_>| {
            events.push(Owned {
                name: String::from_utf8_lossy(event.name).into(),
                data: String::from_utf8_lossy(event.data).into(),
                id: event.id.map(|id| String::from_utf8_lossy(id).into()),
                lines: event.data_lines,
                objects: event.data_objects,
                wire_bytes: event.wire_bytes,
            })
        };
        for chunk in input.chunks(piece) {
            parser.feed(chunk, &mut on_event);
        }
        events
    }

    const STREAM: &[u8] = b"retry: 1000\n\n: keep-alive\n\nevent: all-users\ndata: [{\"id\":\"a\"},{\"id\":\"b\"}]\n\nevent: message\r\nid: 7\r\ndata: {\"m\":1}\r\n\r\ndata:two\ndata\ndata: lines\n\n";

    #[test]
    fn events_are_the_same_however_the_bytes_are_split() {
        let whole = parse_in_pieces(STREAM, STREAM.len());
        for piece in 1..STREAM.len() {
            assert_eq!(parse_in_pieces(STREAM, piece), whole, "split every {piece} bytes");
        }
        assert_eq!(whole.len(), 3);
        assert_eq!(whole[0].name, "all-users");
        assert_eq!(whole[0].objects, 2);
        assert_eq!(whole[0].id, None);
        assert_eq!(whole[0].wire_bytes, "event: all-users\ndata: [{\"id\":\"a\"},{\"id\":\"b\"}]\n\n".len());
        assert_eq!(whole[1].name, "message");
        assert_eq!(whole[1].id.as_deref(), Some("7"));
        assert_eq!(whole[1].data, "{\"m\":1}");
        assert_eq!(whole[2].name, "message", "no event field means message");
        assert_eq!(whole[2].data, "two\n\nlines");
        assert_eq!(whole[2].lines, 3);
    }

    #[test]
    fn huge_data_is_counted_but_not_kept() {
        let mut input = b"event: users\ndata: ".to_vec();
        for _ in 0..10_000 {
            input.extend_from_slice(b"{\"id\":\"0123456789\"},");
        }
        input.extend_from_slice(b"\n\n");
        let mut parser = SseParser::default();
        let mut seen = None;
        for chunk in input.chunks(1000) {
            parser.feed(chunk, &mut |event| {
                seen = Some((event.data.len(), event.data_truncated, event.data_objects))
            });
        }
        assert_eq!(seen, Some((KEPT_DATA_BYTES, true, 10_000)));
        assert!(parser.data.capacity() <= 4 * 1024);
    }
}
