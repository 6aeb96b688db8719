//! [`ControlServer`]: serves [`vortex_messages::ctl`] requests on a Unix socket (mode
//! 0600) and, optionally, on a TCP listener that demands the HMAC challenge–response
//! first.
//!
//! Every request of a connection runs in its own task and answers through the
//! connection's writer, so a slow actor (a control command waits up to the runtime's ask
//! timeout) never holds up another request or another client. A frame with a bad payload
//! gets an error reply and the connection goes on; a broken stream (oversized header,
//! truncated frame) gets an error reply when possible and is closed. A wrong or missing
//! secret is refused, counted ([`ControlServer::refused`]) and logged with the peer's
//! address, never the secret.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use futures::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener, UnixStream};
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::codec::Framed;
use vortex_messages::ctl::{CtlBody, CtlCommand, CtlError, CtlRequest, CtlResponse};
use vortex_messages::journal::ControlJournaled;
use vortex_runtime::RuntimeObserver;

use crate::control::{auth, ControlServerError, FrameCodec, FrameError, Secret};
use crate::telemetry::TelemetryHandle;

/// The longest Unix socket path the platform takes (`sun_path` less its NUL).
#[cfg(target_os = "linux")]
pub const MAX_SOCKET_PATH: usize = 107;
/// The longest Unix socket path the platform takes (`sun_path` less its NUL).
#[cfg(not(target_os = "linux"))]
pub const MAX_SOCKET_PATH: usize = 103;

/// Responses queued per connection before its request tasks wait for the writer.
const WRITER_QUEUE: usize = 256;

/// The optional TCP listener and the secret its clients must prove.
#[derive(Debug, Clone)]
pub struct TcpControl {
    /// Where to listen (port 0 picks one; see [`ControlServer::tcp_addr`]).
    pub addr: SocketAddr,
    /// The shared secret.
    pub secret: Secret,
}

/// Where the control server listens.
#[derive(Debug, Clone, Default)]
pub struct ControlServerConfig {
    /// The Unix socket path (created with mode 0600), if any.
    pub socket: Option<PathBuf>,
    /// The authenticated TCP listener, if any.
    pub tcp: Option<TcpControl>,
}

/// A hook called with every control command served and its outcome (the journal).
pub type AuditHook = Arc<dyn Fn(ControlJournaled) + Send + Sync>;

/// What the server serves requests against.
#[derive(Clone)]
pub struct ControlServices {
    /// The runtime's registry (list, control by name).
    pub observer: RuntimeObserver,
    /// Telemetry to stream for `Events` (none: `Events` answers `Unavailable`).
    pub telemetry: Option<TelemetryHandle>,
    /// Called with every control command served (none: not recorded).
    pub audit: Option<AuditHook>,
}

#[derive(Default)]
struct Stats {
    connections: AtomicU64,
    requests: AtomicU64,
    bad_frames: AtomicU64,
    refused: AtomicU64,
}

/// A running control server; [`ControlServer::shutdown`] stops it and removes the socket.
pub struct ControlServer {
    socket: Option<PathBuf>,
    tcp_addr: Option<SocketAddr>,
    stats: Arc<Stats>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for ControlServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlServer")
            .field("socket", &self.socket)
            .field("tcp_addr", &self.tcp_addr)
            .finish_non_exhaustive()
    }
}

impl ControlServer {
    /// Binds the listeners `config` names and serves them on the current tokio runtime.
    ///
    /// # Errors
    ///
    /// A socket path over [`MAX_SOCKET_PATH`] bytes, a socket another process serves, or
    /// a bind failure.
    pub async fn start(
        config: ControlServerConfig,
        services: ControlServices,
    ) -> Result<ControlServer, ControlServerError> {
        let stats = Arc::new(Stats::default());
        let (stop, stopped) = watch::channel(false);
        let mut tasks = Vec::new();
        if let Some(path) = &config.socket {
            let listener = bind_unix(path).await?;
            let (services, stats, stopped) =
                (services.clone(), Arc::clone(&stats), stopped.clone());
            tasks.push(tokio::spawn(accept_unix(
                listener, services, stats, stopped,
            )));
        }
        let mut tcp_addr = None;
        if let Some(tcp) = config.tcp {
            let listener =
                TcpListener::bind(tcp.addr)
                    .await
                    .map_err(|source| ControlServerError::Tcp {
                        addr: tcp.addr,
                        source,
                    })?;
            tcp_addr = listener.local_addr().ok();
            let (services, stats) = (services.clone(), Arc::clone(&stats));
            tasks.push(tokio::spawn(accept_tcp(
                listener, tcp.secret, services, stats, stopped,
            )));
        }
        Ok(ControlServer {
            socket: config.socket,
            tcp_addr,
            stats,
            stop,
            tasks,
        })
    }

    /// The Unix socket's path, if it serves one.
    pub fn socket_path(&self) -> Option<&Path> {
        self.socket.as_deref()
    }

    /// The TCP listener's bound address, if it serves one.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp_addr
    }

    /// TCP clients refused for a wrong or missing secret.
    pub fn refused(&self) -> u64 {
        self.stats.refused.load(Relaxed)
    }

    /// Requests served (every kind).
    pub fn requests(&self) -> u64 {
        self.stats.requests.load(Relaxed)
    }

    /// Frames answered with an error (bad version, malformed, oversized).
    pub fn bad_frames(&self) -> u64 {
        self.stats.bad_frames.load(Relaxed)
    }

    /// Connections accepted.
    pub fn connections(&self) -> u64 {
        self.stats.connections.load(Relaxed)
    }

    /// Stops accepting, closes every connection and removes the socket file.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        if let Some(path) = &self.socket {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Binds `path` with mode 0600: bound under a temporary name in the same directory,
/// restricted, then renamed into place, so no client can connect before the mode is set.
async fn bind_unix(path: &Path) -> Result<UnixListener, ControlServerError> {
    let len = path.as_os_str().len();
    if len > MAX_SOCKET_PATH {
        return Err(ControlServerError::SocketPathTooLong {
            path: path.to_owned(),
            len,
            max: MAX_SOCKET_PATH,
        });
    }
    let socket_error = |source| ControlServerError::Socket {
        path: path.to_owned(),
        source,
    };
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            return Err(ControlServerError::SocketInUse(path.to_owned()));
        }
        // A socket left behind by a process that died.
        std::fs::remove_file(path).map_err(socket_error)?;
    }
    let mut staging = path.as_os_str().to_owned();
    staging.push(".new");
    let staging = PathBuf::from(staging);
    if staging.as_os_str().len() > MAX_SOCKET_PATH {
        return Err(ControlServerError::SocketPathTooLong {
            path: path.to_owned(),
            len: staging.as_os_str().len(),
            max: MAX_SOCKET_PATH,
        });
    }
    let _ = std::fs::remove_file(&staging);
    let listener = UnixListener::bind(&staging).map_err(socket_error)?;
    std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(0o600))
        .map_err(socket_error)?;
    std::fs::rename(&staging, path).map_err(socket_error)?;
    Ok(listener)
}

async fn accept_unix(
    listener: UnixListener,
    services: ControlServices,
    stats: Arc<Stats>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = stopped.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    stats.connections.fetch_add(1, Relaxed);
                    let (services, stats) = (services.clone(), Arc::clone(&stats));
                    connections.spawn(serve(stream, "unix".to_owned(), None, services, stats));
                }
                Err(error) => tracing::warn!(%error, "control socket accept failed"),
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn accept_tcp(
    listener: TcpListener,
    secret: Secret,
    services: ControlServices,
    stats: Arc<Stats>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = stopped.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    stats.connections.fetch_add(1, Relaxed);
                    let (services, stats) = (services.clone(), Arc::clone(&stats));
                    let secret = Some(secret.clone());
                    connections.spawn(serve(stream, peer.to_string(), secret, services, stats));
                }
                Err(error) => tracing::warn!(%error, "control listener accept failed"),
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

type ServerFramed<S> = Framed<S, FrameCodec<CtlRequest, CtlResponse>>;

/// Serves one connection until the client goes away or the stream breaks.
async fn serve<S>(
    stream: S,
    peer: String,
    secret: Option<Secret>,
    services: ControlServices,
    stats: Arc<Stats>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut framed: ServerFramed<S> = Framed::new(stream, FrameCodec::new());
    if let Some(secret) = secret {
        if !authenticate(&mut framed, &secret, &peer).await {
            stats.refused.fetch_add(1, Relaxed);
            return;
        }
    }
    let (mut sink, mut frames) = framed.split();
    let (replies, mut queue) = mpsc::channel::<CtlResponse>(WRITER_QUEUE);
    let writer = tokio::spawn(async move {
        while let Some(response) = queue.recv().await {
            if sink.send(response).await.is_err() {
                break;
            }
        }
    });
    // Dropped (aborting every request and event stream) when the connection ends.
    let mut requests = JoinSet::new();
    loop {
        let frame = tokio::select! {
            frame = frames.next() => frame,
            Some(_) = requests.join_next(), if !requests.is_empty() => continue,
        };
        match frame {
            None => break,
            Some(Ok(Ok(request))) => {
                stats.requests.fetch_add(1, Relaxed);
                let (services, replies, peer) = (services.clone(), replies.clone(), peer.clone());
                requests.spawn(answer(request, peer, services, replies));
            }
            Some(Ok(Err(error))) => {
                stats.bad_frames.fetch_add(1, Relaxed);
                tracing::debug!(%peer, %error, "control frame refused");
                let body = CtlBody::Error(ctl_error(&error));
                if replies.send(CtlResponse { id: 0, body }).await.is_err() {
                    break;
                }
            }
            Some(Err(error)) => {
                stats.bad_frames.fetch_add(1, Relaxed);
                tracing::debug!(%peer, %error, "control connection closed: broken stream");
                if let FrameError::Oversized { .. } = error {
                    let body = CtlBody::Error(ctl_error(&error));
                    let _ = replies.send(CtlResponse { id: 0, body }).await;
                }
                break;
            }
        }
    }
    requests.abort_all();
    drop(replies);
    let _ = writer.await;
}

/// Sends the challenge and checks the answer; `false` (after telling the client) when it
/// is wrong or missing.
async fn authenticate<S>(framed: &mut ServerFramed<S>, secret: &Secret, peer: &str) -> bool
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let nonce = auth::challenge();
    let challenge = CtlResponse {
        id: 0,
        body: CtlBody::Challenge {
            nonce: nonce.clone(),
        },
    };
    if framed.send(challenge).await.is_err() {
        return false;
    }
    let answer = framed.next().await;
    let (id, accepted) = match answer {
        Some(Ok(Ok(CtlRequest {
            id,
            command: CtlCommand::Authenticate { mac },
        }))) => (id, auth::verify(secret, &nonce, &mac).is_ok()),
        Some(Ok(Ok(request))) => (request.id, false),
        _ => (0, false),
    };
    let body = if accepted {
        CtlBody::Authenticated
    } else {
        tracing::warn!(%peer, "control client refused: wrong or missing secret");
        CtlBody::Error(CtlError::Unauthenticated)
    };
    let sent = framed.send(CtlResponse { id, body }).await.is_ok();
    accepted && sent
}

fn ctl_error(error: &FrameError) -> CtlError {
    match error {
        FrameError::Version { got, expected } => CtlError::Version {
            got: *got,
            supported: *expected,
        },
        FrameError::Oversized { size, limit } => CtlError::Oversized {
            size: *size,
            limit: *limit,
        },
        other => CtlError::Malformed(other.to_string()),
    }
}

/// Answers one request (an `Events` request streams until the connection closes).
async fn answer(
    request: CtlRequest,
    peer: String,
    services: ControlServices,
    replies: mpsc::Sender<CtlResponse>,
) {
    let id = request.id;
    let body = match request.command {
        CtlCommand::List => CtlBody::Actors(services.observer.statuses()),
        CtlCommand::Groups => CtlBody::Groups(services.observer.resource_groups()),
        CtlCommand::Control { actor, command } => {
            // A person (or script) through `vortex ctl`: the autotuner holds a knob it
            // turned (see `Origin`). The peer is the socket's or TCP client's identity.
            let origin = vortex_messages::Origin::operator(peer.clone());
            let outcome = services
                .observer
                .control_from(&actor, command.clone(), origin)
                .await;
            if let Some(audit) = &services.audit {
                audit(ControlJournaled {
                    peer,
                    request: id,
                    actor,
                    command,
                    outcome: match &outcome {
                        Ok(_) => "ok".to_owned(),
                        Err(error) => error.to_string(),
                    },
                });
            }
            CtlBody::Control(outcome)
        }
        CtlCommand::Events => match &services.telemetry {
            Some(telemetry) => {
                let mut events = telemetry.subscribe();
                while let Some(event) = events.recv().await {
                    let body = CtlBody::Event(event);
                    if replies.send(CtlResponse { id, body }).await.is_err() {
                        return;
                    }
                }
                return;
            }
            None => CtlBody::Error(CtlError::Unavailable(
                "this run publishes no telemetry".to_owned(),
            )),
        },
        CtlCommand::Authenticate { .. } => {
            CtlBody::Error(CtlError::Malformed("already authenticated".to_owned()))
        }
        _ => CtlBody::Error(CtlError::Malformed("unknown command".to_owned())),
    };
    let _ = replies.send(CtlResponse { id, body }).await;
}
