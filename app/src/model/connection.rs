//! Where the browser's event stream stands, as one value the header badge
//! (`components/status.rs`) and the composer read and the browser's connection writes.
//! `as_str` is the machine-readable `data-state`, `label` the words people see.

/// Where the browser's stream stands. Only the browser's connection (`client/`) moves it
/// on; the server build renders none of it, because nobody has joined during server rendering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum ConnectionState {
    /// Joined, waiting for the first answer of the stream.
    #[default]
    Connecting,
    /// The stream is open: events arrive and messages can be sent.
    Live,
    /// The stream dropped; the browser or our own backoff is trying again.
    Reconnecting,
    /// The browser says it has no network (`offline`): nothing is tried until it is back.
    Offline,
    /// The server said no (a 409 or another answer retrying cannot change); no more retries.
    Refused,
}

impl ConnectionState {
    /// The value of `data-state`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connecting => "connecting",
            Self::Live => "live",
            Self::Reconnecting => "reconnecting",
            Self::Offline => "offline",
            Self::Refused => "refused",
        }
    }

    /// What the badge says.
    pub fn label(self) -> &'static str {
        match self {
            Self::Connecting => "Connecting…",
            Self::Live => "Connected",
            Self::Reconnecting => "Reconnecting…",
            Self::Offline => "Offline",
            Self::Refused => "Not connected",
        }
    }
}
