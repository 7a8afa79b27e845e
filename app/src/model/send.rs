//! What a failed send leaves behind: a sentence for people and, after a 429, how long to wait.
//! The browser's `POST /message` (`client/post.rs`) makes it; the composer shows it and
//! holds the Send button back for the wait.

/// Why the last send failed, and how long the server asked us to wait before trying again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendFailure {
    pub sentence: String,
    pub retry_after_secs: Option<u32>,
}
