//! The exposition endpoint: `/metrics`, `/healthz` and `/status` over hyper 1 (HTTP/1.1,
//! one request per connection) on a tokio `TcpListener`.
//!
//! # Behaviour
//!
//! | request | response |
//! |---|---|
//! | `GET /metrics` | 200, [`OPENMETRICS_CONTENT_TYPE`], the registry's OpenMetrics text |
//! | `GET /healthz` | 200, `text/plain`, `ok` |
//! | `GET /status` | 200, `application/json`: `{"actors": [StatusReport…], "resource_groups": [ResourceGroupStatus…]}` (404 when the server has no runtime to ask) |
//! | `HEAD` of any of these | the same head, no body |
//! | another method on these paths | 405 with `Allow: GET, HEAD` |
//! | any other path | 404 |
//! | an absolute-form target (`GET http://host:port/metrics`) | routed by its path, like the origin form |
//! | a head that does not parse | 400 (hyper) |
//! | a head larger than [`ExporterConfig::max_header_bytes`] | 431 (hyper) |
//! | no complete head within [`ExporterConfig::header_timeout`] | the connection is closed |
//! | a response the client does not read within [`ExporterConfig::write_timeout`] | the connection is closed |
//!
//! Every response carries `Connection: close` (no keep-alive: a scraper sends one request
//! every few seconds, and a kept-alive idle connection would hold a connection slot).
//!
//! # Connection limit
//!
//! At most [`ExporterConfig::max_connections`] connections are served at once. When a new
//! client arrives at the limit, the oldest connection that has not yet sent a complete
//! request head is closed to make room: idle or slow clients cannot lock a scraper out,
//! they are shed first. Only when every slot is busy answering does the new client wait
//! (each answer is bounded by the write timeout).
//!
//! # Accept errors
//!
//! A failed `accept` (out of file descriptors, a reset before accept) is logged and
//! retried after a back-off that doubles from 5 ms to 1 s and resets on the next success,
//! so a persistent error cannot spin a core.
//!
//! OpenMetrics 1.0 is the content type because `prometheus-client` renders exactly that
//! format (with the `# EOF` trailer); Prometheus negotiates it.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ALLOW, CONNECTION, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::registry::Registry;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, Semaphore};
use tokio::task::{AbortHandle, JoinHandle, JoinSet};
use vortex_messages::{ActorKind, Control, ControlReply};
use vortex_runtime::RuntimeObserver;

use crate::telemetry::error::TelemetryError;
use crate::telemetry::metrics::encode_text;
use crate::telemetry::spans;

/// The `Content-Type` of `GET /metrics`.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The `Content-Type` of `GET /status`.
pub const STATUS_CONTENT_TYPE: &str = "application/json";

/// Where and how the exporter listens, and how long it keeps series of vanished actors.
#[derive(Clone, Debug)]
pub struct ExporterConfig {
    /// Listening address. Default `127.0.0.1:9464` (loopback only); port 0 picks a
    /// free port, reported by [`MetricsServer::local_addr`].
    pub addr: SocketAddr,
    /// Largest accepted request head (request line plus headers). Default 8 KiB (hyper's
    /// minimum buffer; smaller values are raised to it).
    pub max_header_bytes: usize,
    /// Time allowed for a client to send its request head. Default 5 s.
    pub header_timeout: Duration,
    /// Time allowed for a response to be written (a client that does not read is cut).
    /// Default 10 s.
    pub write_timeout: Duration,
    /// Connections served at once (see the module docs: idle ones are shed first).
    /// Default 64.
    pub max_connections: usize,
    /// On shutdown, how long in-flight responses may take before they are cut. Default 5 s.
    pub shutdown_grace: Duration,
    /// How long the series of an actor that is no longer registered stay exported (so a
    /// scraper sees its last values) before they are removed: the label cardinality stays
    /// bounded by the actors alive within this window. Default 5 minutes.
    pub series_grace: Duration,
    /// The name of the supervisor [`RuntimeExporter`](crate::telemetry::RuntimeExporter)
    /// starts; its children are `<name>-sampler` and `<name>-http`. Default `exporter`.
    pub name: String,
}

impl Default for ExporterConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 9464)),
            max_header_bytes: 8 * 1024,
            header_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(10),
            max_connections: 64,
            shutdown_grace: Duration::from_secs(5),
            series_grace: Duration::from_secs(300),
            name: "exporter".to_owned(),
        }
    }
}

/// What the server answers from: the metrics registry and, for `/status`, a runtime.
#[derive(Clone)]
pub struct Endpoints {
    registry: Arc<Registry>,
    observer: Option<RuntimeObserver>,
}

impl std::fmt::Debug for Endpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoints")
            .field("status", &self.observer.is_some())
            .finish_non_exhaustive()
    }
}

impl Endpoints {
    /// `/metrics` from `registry`; no `/status`.
    pub fn new(registry: Arc<Registry>) -> Self {
        Self {
            registry,
            observer: None,
        }
    }

    /// Also answers `/status` from `observer`'s runtime.
    pub fn with_status(mut self, observer: RuntimeObserver) -> Self {
        self.observer = Some(observer);
        self
    }
}

/// A running server. [`shutdown`](Self::shutdown) stops it gracefully; dropping the
/// handle stops it too, without waiting.
#[derive(Debug)]
pub struct MetricsServer {
    local_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl MetricsServer {
    /// Binds `config.addr` and starts serving `registry` on the current tokio runtime.
    pub async fn bind(
        config: ExporterConfig,
        registry: Arc<Registry>,
    ) -> Result<Self, TelemetryError> {
        Self::bind_endpoints(config, Endpoints::new(registry)).await
    }

    /// Binds `config.addr` and serves `endpoints`.
    pub async fn bind_endpoints(
        config: ExporterConfig,
        endpoints: Endpoints,
    ) -> Result<Self, TelemetryError> {
        let listener = Arc::new(bind(config.addr).await?);
        let local_addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(accept_loop(
            listener,
            Arc::new(config),
            endpoints,
            async move {
                let _ = stopped.await;
            },
        ));
        tracing::info!(%local_addr, "metrics exporter listening");
        Ok(Self {
            local_addr,
            stop: Some(stop),
            task,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, lets in-flight responses finish within the configured
    /// grace period, and waits for the server task to end.
    pub async fn shutdown(mut self) -> Result<(), TelemetryError> {
        if let Some(stop) = self.stop.take() {
            // An error only means the task already ended; the join reports why.
            let _ = stop.send(());
        }
        (&mut self.task)
            .await
            .map_err(|error| TelemetryError::Exporter(error.to_string()))
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Binds a listener at `addr` with a typed error.
pub(crate) async fn bind(addr: SocketAddr) -> Result<TcpListener, TelemetryError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| TelemetryError::Bind { addr, source })
}

/// One served connection, as the shedding rule sees it.
struct Tracked {
    /// Set once hyper has parsed a complete request head on it.
    answering: Arc<AtomicBool>,
    abort: AbortHandle,
}

const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Accepts and serves connections on `listener` until `stop` completes; then lets
/// in-flight responses finish within the shutdown grace. Dropping the future (aborting
/// its task) cuts every connection at once; the listener stays open for the next loop.
pub(crate) async fn accept_loop(
    listener: Arc<TcpListener>,
    config: Arc<ExporterConfig>,
    endpoints: Endpoints,
    stop: impl Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let mut connections = JoinSet::new();
    let mut tracked: VecDeque<Tracked> = VecDeque::new();
    let mut backoff = ACCEPT_BACKOFF_MIN;
    tokio::pin!(stop);
    loop {
        while connections.try_join_next().is_some() {}
        tracked.retain(|conn| !conn.abort.is_finished());
        let accepted = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => {
                backoff = ACCEPT_BACKOFF_MIN;
                stream
            }
            Err(error) => {
                tracing::warn!(%error, retry_in = ?backoff, "metrics exporter: accept failed");
                tokio::select! {
                    _ = &mut stop => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                continue;
            }
        };
        let permit = match Arc::clone(&permits).try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                // At the limit: shed the oldest connection still waiting for its head.
                if let Some(index) = tracked.iter().position(|c| !c.answering.load(Relaxed)) {
                    if let Some(idle) = tracked.remove(index) {
                        idle.abort.abort();
                    }
                }
                let acquire = Arc::clone(&permits).acquire_owned();
                match tokio::select! {
                    _ = &mut stop => break,
                    permit = acquire => permit,
                } {
                    Ok(permit) => permit,
                    Err(_) => break,
                }
            }
        };
        let answering = Arc::new(AtomicBool::new(false));
        let abort = connections.spawn(serve_connection(
            stream,
            Arc::clone(&config),
            endpoints.clone(),
            Arc::clone(&answering),
            permit,
        ));
        tracked.push_back(Tracked { answering, abort });
    }
    drop(listener);
    let grace = config.shutdown_grace;
    if tokio::time::timeout(grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        connections.abort_all();
    }
}

async fn serve_connection(
    stream: TcpStream,
    config: Arc<ExporterConfig>,
    endpoints: Endpoints,
    answering: Arc<AtomicBool>,
    _permit: tokio::sync::OwnedSemaphorePermit,
) {
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        answering.store(true, Relaxed);
        let endpoints = endpoints.clone();
        async move { Ok::<_, Infallible>(route(&request, &endpoints).await) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_timeout)
        .max_buf_size(config.max_header_bytes.max(8192))
        .keep_alive(false)
        .half_close(true)
        .serve_connection(TokioIo::new(stream), service);
    // The head has `header_timeout`; the response then has `write_timeout`.
    let budget = config.header_timeout + config.write_timeout;
    match tokio::time::timeout(budget, connection).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::debug!(%error, "metrics exporter: connection ended"),
        Err(_) => tracing::debug!("metrics exporter: connection cut at its time budget"),
    }
}

type Reply = Response<Full<Bytes>>;

fn reply(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Reply {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CONNECTION, HeaderValue::from_static("close"));
    response
}

const PLAIN: &str = "text/plain; charset=utf-8";

async fn route(request: &Request<Incoming>, endpoints: &Endpoints) -> Reply {
    // `uri().path()` is the path of an origin-form (`/metrics`) and of an absolute-form
    // (`http://host/metrics`) target alike.
    let path = request.uri().path();
    let known = matches!(path, "/metrics" | "/healthz")
        || (path == "/status" && endpoints.observer.is_some());
    if !known {
        return reply(StatusCode::NOT_FOUND, PLAIN, "not found\n");
    }
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        let mut response = reply(
            StatusCode::METHOD_NOT_ALLOWED,
            PLAIN,
            "method not allowed\n",
        );
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    match path {
        "/metrics" => {
            let _span = spans::scrape_span().entered();
            match encode_text(&endpoints.registry) {
                Ok(text) => reply(StatusCode::OK, OPENMETRICS_CONTENT_TYPE, text),
                Err(error) => {
                    tracing::error!(%error, "metrics exporter: encoding failed");
                    reply(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        PLAIN,
                        "encoding failed\n",
                    )
                }
            }
        }
        "/healthz" => reply(StatusCode::OK, PLAIN, "ok"),
        _ => match &endpoints.observer {
            Some(observer) => reply(
                StatusCode::OK,
                STATUS_CONTENT_TYPE,
                status_json(observer).await,
            ),
            None => reply(StatusCode::NOT_FOUND, PLAIN, "not found\n"),
        },
    }
}

/// Every actor's `StatusReport` (asked with `Control::Status`, so it carries the actor's
/// `describe` detail; the runtime's sampled status where the ask fails) and every
/// resource group, as JSON.
pub async fn status_json(observer: &RuntimeObserver) -> String {
    let mut actors = Vec::new();
    for status in observer.statuses() {
        let asked = if status.kind == ActorKind::Supervisor {
            None
        } else {
            match observer.control(&status.name, Control::Status).await {
                Ok(ControlReply::Status(report)) => Some(report),
                _ => None,
            }
        };
        actors.push(asked.unwrap_or(status));
    }
    let body = serde_json::json!({
        "actors": actors,
        "resource_groups": observer.resource_groups(),
    });
    body.to_string()
}
