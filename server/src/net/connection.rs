//! One accepted connection and what serving it takes: [`ServeConnection`], built by the
//! listener ([`super::serve`]) and served either by hyper ([`ServeConnection::run`]) or, when
//! its first request opens an event stream, by our own writer (`super::event_stream`).

use super::{deadline::WriteDeadline, lane::Lane};
use crate::{limits::PeerAddr, metrics::Metrics};
use axum::{Router, http::Request};
use hyper::{body::Incoming, server::conn::http1};
use hyper_util::{rt::TokioIo, server::graceful::Watcher, service::TowerToHyperService};
use std::{net::SocketAddr, sync::Arc, time::Duration};
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// A client has this long to send its request headers.
pub(super) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// One accepted connection, and what serving it over HTTP/1.1 takes.
pub(super) struct ServeConnection {
    pub(super) http: http1::Builder,
    pub(super) router: Router,
    /// Registered when the connection is accepted, so shutdown waits for it wherever it runs.
    pub(super) watcher: Watcher,
    pub(super) write_timeout: Duration,
    pub(super) metrics: Arc<Metrics>,
    pub(super) shutdown: CancellationToken,
    /// Where the connection's event stream goes while idle.
    pub(super) lane: Lane,
    /// Whom the connection was accepted from, put on each of its requests ([`PeerAddr`]).
    pub(super) peer: SocketAddr,
    /// Held while the connection is open (`--max-connections`).
    pub(super) connection_slot: OwnedSemaphorePermit,
}

impl ServeConnection {
    /// Serves the connection with hyper, for as many requests as it carries.
    pub(super) async fn run<T>(self, stream: T)
    where
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let io = TokioIo::new(WriteDeadline::new(stream, self.write_timeout, self.metrics));
        let peer = PeerAddr(self.peer);
        let service =
            TowerToHyperService::new(self.router.map_request(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(peer);
                request
            }));
        let connection = self.watcher.watch(self.http.serve_connection(io, service));
        if let Err(error) = connection.await {
            tracing::debug!(%error, "connection ended with an error");
        }
        drop(self.connection_slot);
    }
}
