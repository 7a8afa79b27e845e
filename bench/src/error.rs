//! What can stop a load test from running at all. Misbehaviour of the server under test (a lost
//! message, a refused post) is not an error here: it is counted and reported, because counting
//! it is the point of the run.

use std::{io, net::SocketAddr, time::Duration};

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("bad URL {0:?}: expected http://HOST:PORT")]
    BadUrl(String),
    #[error("no server to test: give at least one --url")]
    NoServer,
    #[error("cannot connect to {addr}: {source}")]
    Connect { addr: SocketAddr, source: io::Error },
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    #[error("malformed HTTP response: {0}")]
    MalformedResponse(String),
    #[error("the response head is larger than {0} bytes")]
    HeadTooLarge(usize),
    #[error("the server closed the connection")]
    Closed,
    #[error("HTTP {status}: {reason}")]
    Status { status: u16, reason: String },
    #[error("the answer to GET /sse set no session cookie")]
    NoSessionCookie,
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
    #[error("{target} cannot run this scenario: {reason}")]
    Unsupported { target: &'static str, reason: &'static str },
    #[error("cannot read /proc for process {pid}: {reason}")]
    Proc { pid: u32, reason: String },
    #[error("cannot read the results: {0}")]
    Results(String),
    #[error("the publishers' task failed: {0}")]
    Publishers(String),
}

impl LoadError {
    /// A short, stable name for counting errors by kind in a report.
    pub fn kind(&self) -> String {
        match self {
            Self::BadUrl(_) | Self::NoServer => "bad-url".into(),
            Self::Connect { .. } => "connect".into(),
            Self::Io(error) => format!("io-{:?}", error.kind()).to_lowercase(),
            Self::MalformedResponse(_) => "malformed-response".into(),
            Self::HeadTooLarge(_) => "head-too-large".into(),
            Self::Closed => "closed".into(),
            Self::Status { status, .. } => format!("http-{status}"),
            Self::NoSessionCookie => "no-session-cookie".into(),
            Self::TimedOut(_) => "timeout".into(),
            Self::Unsupported { .. } => "unsupported".into(),
            Self::Proc { .. } => "proc".into(),
            Self::Results(_) => "results".into(),
            Self::Publishers(_) => "publishers".into(),
        }
    }
}
