//! ssechat's server: a group chat over Server-Sent Events.
//!
//! A message's path, top to bottom: `POST /message` ([`routes::message`]) parses a validated
//! [`app::protocol::MessageText`] → the store appends it durably and assigns its `seq`
//! ([`store`]) → the store's feed hands the batch to the rooms ([`hub::Rooms`]), and the
//! message's room's ring encodes it once ([`hub::Ring`]) → the cursor of each stream that
//! follows the room takes from itself to the head as one chunk ([`hub::EventStream`]),
//! written by the room's fan-out lane while the stream is idle, by its connection's task
//! while it is busy (`net`) → SSE bytes → the browser's `EventSource`.
//!
//! [`start`] builds all of it and serves on a bound listener; `main.rs` only parses the
//! configuration and waits for a signal, so tests start the same server on `127.0.0.1:0`.

pub mod config;
pub mod error;
mod form;
pub mod hub;
mod limits;
mod metrics;
mod net;
pub mod routes;
pub mod session;
mod state;
pub mod store;

pub use config::Config;

use app::{App, shell};
use axum::{
    Router,
    http::{HeaderValue, header},
    routing::{get, post},
};
use hub::{Hub, HubConfig, LocalPresence, Presence, Rooms, SharedPresence};
use leptos::config::LeptosOptions;
use leptos_axum::{LeptosRoutes, generate_route_list};
use metrics::Metrics;
use session::SessionKey;
use state::AppState;
use std::{io, net::SocketAddr, sync::Arc, time::Duration};
use store::{MessageStore, RedisStore, SqliteStore, StoreError};
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;
use tower_http::set_header::SetResponseHeaderLayer;

/// How long shutdown waits for open connections to finish before giving up on them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create the data folder {path}: {source}")]
    DataDir { path: String, source: io::Error },
    #[error(transparent)]
    Secret(#[from] session::SecretError),
    #[error("cannot open the message store: {0}")]
    Store(#[from] StoreError),
    #[error("cannot reach the shared rooms: {0}")]
    Cluster(#[from] hub::ClusterError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("cannot start the event streams' threads: {0}")]
    Runtime(io::Error),
}

/// A server that is accepting connections.
pub struct RunningServer {
    local_addr: SocketAddr,
    /// Where `/metrics` is served when not on `local_addr` (`--metrics-addr`).
    metrics_addr: Option<SocketAddr>,
    shutdown: CancellationToken,
    serving: JoinHandle<io::Result<()>>,
    /// A handle to the state's store (its one owner), to make every accepted write durable
    /// once serving has ended and the state is gone.
    store: Arc<dyn MessageStore>,
    /// Dropped last: streams run on it until serving has ended.
    _streams: net::StreamRuntime,
}

impl RunningServer {
    /// The address actually bound (the port is chosen by the OS for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address `/metrics` is served on, when it has one of its own.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// A token that starts shutdown when cancelled (from a signal handler, say).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Waits until shutdown has been requested, then stops: refuses new connections, ends
    /// every stream, lets requests in flight finish, and makes every accepted write durable.
    pub async fn stopped(self) -> io::Result<()> {
        self.shutdown.cancelled().await;
        let served = self.serving.await.unwrap_or_else(|join_error| Err(io::Error::other(join_error)));
        self.store.close().await;
        served
    }

    /// Requests shutdown and waits for it.
    pub async fn shutdown(self) -> io::Result<()> {
        self.shutdown.cancel();
        self.stopped().await
    }
}

/// Builds the server from its configuration and starts serving.
pub async fn start(config: Config) -> Result<RunningServer, StartError> {
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|source| StartError::DataDir { path: config.data_dir.display().to_string(), source })?;
    let sessions = match (&config.session_secret, &config.session_secret_file) {
        (Some(secret), _) => SessionKey::from_secret(secret.as_bytes())?,
        (None, Some(path)) => SessionKey::from_secret_file(path)?,
        (None, None) => SessionKey::load_or_create(&config.data_dir.join("session.key"))?,
    }
    .with_secure_cookie(config.cookie_secure);
    let shutdown = CancellationToken::new();
    let metrics = Arc::new(Metrics::default());
    let settings = hub_config(&config);
    // The rooms hear of messages from the store, never from the handler: with Redis, messages
    // appended by other instances arrive the same way.
    let rooms = Rooms::new(&settings, Arc::clone(&metrics));
    let feed_rooms = rooms.clone();
    let feed: store::MessageFeed =
        Arc::new(move |messages, before_waking| feed_rooms.publish(messages, before_waking));
    // The one owner of the store: the state below; the ring is handed it where it reads.
    let store: Arc<dyn MessageStore> = match &config.redis_url {
        Some(url) => Arc::new(RedisStore::connect(url, &config.redis_prefix, config.retention, feed).await?),
        None => Arc::new(SqliteStore::open(&config.data_dir.join("messages.db"), config.retention, feed)?),
    };
    rooms.preload(store.as_ref()).await?;
    // Who is in which room is decided by this instance alone, or with every instance on the
    // same Redis: chosen here, once.
    let presence: Box<dyn Presence> = match &config.redis_url {
        Some(url) => {
            let cluster = hub::ClusterPresence::connect(url, &config.redis_prefix).await?;
            Box::new(SharedPresence::start(
                cluster,
                rooms.clone(),
                &settings,
                Arc::clone(&metrics),
                shutdown.clone(),
            ))
        }
        None => Box::new(LocalPresence::new(rooms.clone(), settings.leave_grace)),
    };
    let hub = Hub::new(settings, presence, rooms, Arc::clone(&metrics), shutdown.clone());
    hub.spawn_presence_summaries();

    let listener = listen(config.addr).map_err(|source| StartError::Bind { addr: config.addr, source })?;
    let local_addr =
        listener.local_addr().map_err(|source| StartError::Bind { addr: config.addr, source })?;
    let (slow_client_timeout_ms, max_connections) = (config.slow_client_timeout_ms, config.max_connections);
    let streams = net::StreamRuntime::new().map_err(StartError::Runtime)?;
    let streams_handle =
        streams.handle().ok_or_else(|| StartError::Runtime(io::Error::other("no runtime")))?;
    let lane = net::Lane::start(&hub, Arc::clone(&metrics), &streams_handle);
    let state = AppState {
        leptos_options: Arc::new(leptos_options(&config, local_addr)),
        rate: Arc::new(limits::RateLimiter::new(config.rate_burst, config.rate_per_sec)),
        addr_rate: Arc::new(limits::RateLimiter::new(config.addr_rate_burst, config.addr_rate_per_sec)),
        new_ids: Arc::new(limits::RateLimiter::new(
            config.new_ids_per_addr_per_min,
            f64::from(config.new_ids_per_addr_per_min) / 60.0,
        )),
        address_slots: limits::AddressSlots::new(config.max_streams_per_addr),
        config: Arc::new(config),
        hub,
        store: Arc::clone(&store),
        sessions,
    };
    let metrics_server = match state.config.metrics_addr {
        Some(addr) => Some(serve_metrics(addr, state.clone(), shutdown.clone())?),
        None => None,
    };
    let router = router(state);
    let options = net::ServeOptions {
        lane,
        streams: streams_handle,
        write_timeout: Duration::from_millis(slow_client_timeout_ms),
        grace: SHUTDOWN_GRACE,
        max_connections,
        metrics,
    };
    let serving = tokio::spawn(net::serve(listener, router, options, shutdown.clone()));
    Ok(RunningServer {
        local_addr,
        metrics_addr: metrics_server,
        shutdown,
        serving,
        store,
        _streams: streams,
    })
}

/// Serves `GET /metrics` alone on its own address (see `--metrics-addr`), until shutdown.
fn serve_metrics(
    addr: SocketAddr,
    state: AppState,
    shutdown: CancellationToken,
) -> Result<SocketAddr, StartError> {
    let listener = listen(addr).map_err(|source| StartError::Bind { addr, source })?;
    let bound = listener.local_addr().map_err(|source| StartError::Bind { addr, source })?;
    let router = Router::new().route("/metrics", get(routes::health::metrics)).with_state(state);
    tokio::spawn(async move {
        let serving = axum::serve(listener, router).with_graceful_shutdown(shutdown.cancelled_owned());
        if let Err(error) = serving.await {
            tracing::error!(%error, "the metrics listener failed");
        }
    });
    Ok(bound)
}

/// Connections the kernel may hold for us before we accept them. A chat is joined in bursts
/// (a deploy reconnects everyone at once); tokio's default of 1,024 overflows, and each
/// overflowed handshake costs its client a one-second SYN retry. The kernel caps this at
/// `net.core.somaxconn`.
const LISTEN_BACKLOG: u32 = 16_384;

fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket =
        if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

pub(crate) fn hub_config(config: &Config) -> HubConfig {
    HubConfig {
        history: config.history,
        retention: config.retention,
        leave_grace: config.leave_grace(),
        users_interval: config.users_interval(),
        keepalive: config.keepalive(),
        retry: Duration::from_millis(config.retry_ms),
        max_streams: config.max_streams,
        max_streams_per_user: config.max_streams_per_user,
        stream_buffer: config.stream_buffer,
        large_room_threshold: config.large_room_threshold,
        instance_timeout: Duration::from_millis(config.instance_timeout_ms),
        max_rooms: usize::try_from(config.max_rooms).unwrap_or(usize::MAX),
    }
}

/// Leptos's options: what cargo-leptos put in the environment (output name, reload port),
/// with the site folder and address from our configuration.
fn leptos_options(config: &Config, local_addr: SocketAddr) -> LeptosOptions {
    // Outside cargo-leptos (plain `cargo test`) there is no output name to read, and asking
    // for the configuration only prints a warning.
    let from_cargo_leptos =
        option_env!("LEPTOS_OUTPUT_NAME").is_some() || std::env::var_os("LEPTOS_OUTPUT_NAME").is_some();
    let mut options = from_cargo_leptos
        .then(|| leptos::config::get_configuration(None).ok())
        .flatten()
        .map(|conf| conf.leptos_options)
        .unwrap_or_else(|| LeptosOptions::builder().output_name("ssechat").build());
    if options.output_name.is_empty() {
        options.output_name = "ssechat".into();
    }
    options.site_root = config.site_root.display().to_string().into();
    options.site_addr = local_addr;
    options
}

fn router(state: AppState) -> Router {
    let reload_port = std::env::var_os("LEPTOS_WATCH").map(|_| state.leptos_options.reload_port);
    let routes = generate_route_list(App);
    let page_context = routes::page::page_context(reload_port);
    let mut router = Router::new()
        // A HEAD is answered without opening anything: it must never bind an id or change
        // the room (axum would otherwise run the GET handler for it).
        .route("/sse", get(routes::sse::open_stream).head(routes::sse::describe_stream))
        .route("/message", post(routes::message::post_message))
        .route("/users", get(routes::users::list_users))
        .route("/messages", get(routes::messages::list_messages))
        .route("/rooms", get(routes::rooms::list_rooms))
        .route("/healthz", get(routes::health::healthz));
    if state.config.metrics_addr.is_none() {
        router = router.route("/metrics", get(routes::health::metrics));
    }
    router
        .leptos_routes_with_context(&state, routes, page_context.clone(), {
            let options = state.leptos_options.clone();
            move || shell(LeptosOptions::clone(&options))
        })
        // Error pages are rendered with the same context as the page, so they carry the same
        // Content-Security-Policy (with its nonce).
        .fallback(leptos_axum::file_and_error_handler_with_context::<AppState, _>(page_context, shell))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ))
        .with_state(state)
}
