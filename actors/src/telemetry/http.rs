//! The Prometheus exposition endpoint: a deliberately small HTTP/1.1 server on a
//! tokio `TcpListener`.
//!
//! Why hand-rolled and not hyper: the endpoint answers two fixed GET routes to a
//! scraper on loopback, one request per connection. The whole protocol surface is
//! the request head, which this file bounds explicitly (size, time, connection
//! count); hyper would add a dependency tree larger than this crate for none of
//! its strengths (keep-alive, bodies, HTTP/2).
//!
//! # Behaviour
//!
//! | request | response |
//! |---|---|
//! | `GET /metrics` | 200, [`OPENMETRICS_CONTENT_TYPE`], the registry's OpenMetrics text |
//! | `GET /healthz` | 200, `text/plain`, `ok` |
//! | `HEAD` of either | the same head, no body |
//! | another method on either path | 405 with `Allow: GET, HEAD` |
//! | any other path | 404 |
//! | a head that does not parse | 400 |
//! | a head larger than [`ExporterConfig::max_header_bytes`] | 431 (reading stops at the limit) |
//! | no complete head within [`ExporterConfig::header_timeout`] | 408 |
//!
//! Every response carries `Connection: close`; the server closes after one
//! response. OpenMetrics 1.0 is the content type because `prometheus-client`
//! renders exactly that format (with the `# EOF` trailer); Prometheus negotiates it.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::timeout;

use crate::telemetry::error::TelemetryError;
use crate::telemetry::metrics::encode_text;
use crate::telemetry::spans;

/// The `Content-Type` of `GET /metrics`.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Where and how the exporter listens.
#[derive(Clone, Debug)]
pub struct ExporterConfig {
    /// Listening address. Default `127.0.0.1:9464` (loopback only); port 0 picks a
    /// free port, reported by [`MetricsServer::local_addr`].
    pub addr: SocketAddr,
    /// Largest accepted request head (request line plus headers). Default 8 KiB.
    pub max_header_bytes: usize,
    /// Time allowed for a client to send its request head. Default 5 s.
    pub header_timeout: Duration,
    /// Connections served at once; further clients wait in the accept backlog. Default 64.
    pub max_connections: usize,
    /// On shutdown, how long in-flight responses may take before they are cut. Default 5 s.
    pub shutdown_grace: Duration,
}

impl Default for ExporterConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 9464)),
            max_header_bytes: 8 * 1024,
            header_timeout: Duration::from_secs(5),
            max_connections: 64,
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// A running exporter. [`shutdown`](Self::shutdown) stops it gracefully; dropping
/// the handle stops it too, without waiting.
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
        let listener =
            TcpListener::bind(config.addr)
                .await
                .map_err(|source| TelemetryError::Bind {
                    addr: config.addr,
                    source,
                })?;
        let local_addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(accept_loop(listener, Arc::new(config), registry, stopped));
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
        // Dropping `stop` also ends the accept loop; aborting cuts in-flight work.
        self.task.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    config: Arc<ExporterConfig>,
    registry: Arc<Registry>,
    mut stopped: oneshot::Receiver<()>,
) {
    let permits = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let mut connections = JoinSet::new();
    loop {
        // Reap finished connections so the set holds at most about `max_connections`.
        while connections.try_join_next().is_some() {}
        // Holding a permit before accepting bounds the connections served at once;
        // further clients wait in the kernel's accept backlog.
        let permit = tokio::select! {
            _ = &mut stopped => break,
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = &mut stopped => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // Per-connection accept errors (the peer reset first, fd pressure) are not fatal.
                Err(error) => {
                    tracing::debug!(%error, "accept failed");
                    continue;
                }
            },
        };
        let config = Arc::clone(&config);
        let registry = Arc::clone(&registry);
        connections.spawn(async move {
            let _permit = permit;
            if let Err(error) = serve(stream, &config, &registry).await {
                tracing::debug!(%peer, %error, "metrics connection ended with an error");
            }
        });
    }
    drop(listener);
    let drained = timeout(config.shutdown_grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        connections.abort_all();
    }
}

/// Why a request head was not accepted.
#[derive(Debug, PartialEq, Eq)]
enum HeadError {
    Malformed,
    TooLarge,
    /// No complete head arrived within the header timeout.
    TimedOut,
    /// The client closed before sending anything: no response is owed.
    Empty,
}

async fn serve(
    mut stream: TcpStream,
    config: &ExporterConfig,
    registry: &Registry,
) -> std::io::Result<()> {
    let head = match timeout(
        config.header_timeout,
        read_head(&mut stream, config.max_header_bytes),
    )
    .await
    {
        Ok(result) => result?,
        Err(_elapsed) => Err(HeadError::TimedOut),
    };
    let response = match head {
        Ok(head) => respond(&head, registry),
        Err(HeadError::Malformed) => Response::text(400, "Bad Request", "bad request\n"),
        Err(HeadError::TooLarge) => Response::text(
            431,
            "Request Header Fields Too Large",
            "request header fields too large\n",
        ),
        Err(HeadError::TimedOut) => Response::text(408, "Request Timeout", "request timeout\n"),
        Err(HeadError::Empty) => return Ok(()),
    };
    response.write_to(&mut stream).await?;
    stream.shutdown().await?;
    // Read (and discard) a bounded remainder so that closing with unread bytes does
    // not reset the connection before the client has read the response.
    let mut scratch = [0u8; 4096];
    let mut budget: usize = 64 * 1024;
    let _ = timeout(Duration::from_millis(500), async {
        while budget > 0 {
            match stream.read(&mut scratch).await {
                Ok(0) | Err(_) => break,
                Ok(n) => budget = budget.saturating_sub(n),
            }
        }
    })
    .await;
    Ok(())
}

/// Reads until the blank line that ends the head, never buffering more than `limit` bytes.
async fn read_head(
    stream: &mut TcpStream,
    limit: usize,
) -> std::io::Result<Result<Vec<u8>, HeadError>> {
    let mut head = Vec::with_capacity(1024.min(limit));
    let mut chunk = [0u8; 1024];
    loop {
        let room = (limit + 1).saturating_sub(head.len()).min(chunk.len());
        let read = stream.read(&mut chunk[..room]).await?;
        if read == 0 {
            return Ok(Err(if head.is_empty() {
                HeadError::Empty
            } else {
                HeadError::Malformed
            }));
        }
        // Search only where the terminator can newly appear.
        let from = head.len().saturating_sub(3);
        head.extend_from_slice(&chunk[..read]);
        if let Some(end) = find_head_end(&head[from..]) {
            head.truncate(from + end);
            return Ok(Ok(head));
        }
        if head.len() > limit {
            return Ok(Err(HeadError::TooLarge));
        }
    }
}

fn find_head_end(bytes: &[u8]) -> Option<usize> {
    bytes
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .map(|at| at + 4)
}

/// The parts of a request head this server routes on.
#[derive(Debug, PartialEq, Eq)]
struct RequestLine<'a> {
    method: &'a str,
    path: &'a str,
}

fn parse_head(head: &[u8]) -> Result<RequestLine<'_>, HeadError> {
    let text = std::str::from_utf8(head).map_err(|_| HeadError::Malformed)?;
    let mut lines = text.split("\r\n");
    let request_line = lines.next().ok_or(HeadError::Malformed)?;
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HeadError::Malformed);
    };
    let method_ok = !method.is_empty() && method.bytes().all(|b| b.is_ascii_uppercase());
    if !method_ok || !target.starts_with('/') || !matches!(version, "HTTP/1.0" | "HTTP/1.1") {
        return Err(HeadError::Malformed);
    }
    for header in lines.filter(|line| !line.is_empty()) {
        let (name, _value) = header.split_once(':').ok_or(HeadError::Malformed)?;
        if name.is_empty()
            || name
                .bytes()
                .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return Err(HeadError::Malformed);
        }
    }
    let path = target.split_once('?').map_or(target, |(path, _query)| path);
    Ok(RequestLine { method, path })
}

fn respond(head: &[u8], registry: &Registry) -> Response {
    let Ok(request) = parse_head(head) else {
        return Response::text(400, "Bad Request", "bad request\n");
    };
    let mut response = route(&request, registry);
    // A HEAD response has the GET response's head, whatever the status.
    response.head_only = request.method == "HEAD";
    response
}

fn route(request: &RequestLine<'_>, registry: &Registry) -> Response {
    if !matches!(request.path, "/metrics" | "/healthz") {
        return Response::text(404, "Not Found", "not found\n");
    }
    if !matches!(request.method, "GET" | "HEAD") {
        let mut response = Response::text(405, "Method Not Allowed", "method not allowed\n");
        response.allow = true;
        return response;
    }
    if request.path == "/healthz" {
        return Response::text(200, "OK", "ok");
    }
    let _span = spans::scrape_span().entered();
    match encode_text(registry) {
        Ok(body) => Response {
            status: 200,
            reason: "OK",
            content_type: OPENMETRICS_CONTENT_TYPE,
            body: body.into_bytes(),
            allow: false,
            head_only: false,
        },
        Err(error) => {
            tracing::warn!(%error, "encoding metrics failed");
            Response::text(500, "Internal Server Error", "encoding metrics failed\n")
        }
    }
}

struct Response {
    status: u16,
    reason: &'static str,
    content_type: &'static str,
    body: Vec<u8>,
    allow: bool,
    head_only: bool,
}

impl Response {
    fn text(status: u16, reason: &'static str, body: &str) -> Self {
        Self {
            status,
            reason,
            content_type: "text/plain; charset=utf-8",
            body: body.as_bytes().to_vec(),
            allow: false,
            head_only: false,
        }
    }

    async fn write_to(&self, stream: &mut TcpStream) -> std::io::Result<()> {
        let allow = if self.allow {
            "Allow: GET, HEAD\r\n"
        } else {
            ""
        };
        let head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n",
            self.status,
            self.reason,
            self.content_type,
            self.body.len(),
        );
        stream.write_all(head.as_bytes()).await?;
        if !self.head_only {
            stream.write_all(&self.body).await?;
        }
        stream.flush().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The expected `(method, path)` of a request head, or why it is refused.
    type Expected = Result<(&'static str, &'static str), HeadError>;

    #[test]
    fn request_heads_parse_as_a_table() {
        let table: &[(&str, Expected)] = &[
            (
                "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
                Ok(("GET", "/metrics")),
            ),
            (
                "HEAD /healthz?verbose=1 HTTP/1.0\r\n\r\n",
                Ok(("HEAD", "/healthz")),
            ),
            ("GET /metrics\r\n\r\n", Err(HeadError::Malformed)),
            ("GET metrics HTTP/1.1\r\n\r\n", Err(HeadError::Malformed)),
            ("get /metrics HTTP/1.1\r\n\r\n", Err(HeadError::Malformed)),
            ("GET /metrics HTTP/2\r\n\r\n", Err(HeadError::Malformed)),
            (
                "GET /metrics HTTP/1.1\r\nno colon\r\n\r\n",
                Err(HeadError::Malformed),
            ),
            ("GET  /metrics HTTP/1.1\r\n\r\n", Err(HeadError::Malformed)),
        ];
        for (head, expected) in table {
            let parsed = parse_head(head.as_bytes()).map(|r| (r.method, r.path));
            assert_eq!(&parsed, expected, "{head:?}");
        }
    }

    #[test]
    fn head_end_is_found_across_chunks() {
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n\r\nrest"), Some(18));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n"), None);
    }
}
