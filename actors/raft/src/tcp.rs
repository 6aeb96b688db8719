//! Raft between processes: [`TcpNode`], a TCP transport on loopback or a real network.
//!
//! * **Frames**: tokio-util length-delimited frames with a version byte
//!   ([`RAFT_PROTOCOL_VERSION`]), each one bincode-2 [`PeerFrame`] — the control socket's
//!   [`FrameCodec`] with its own version byte and a [`MAX_RAFT_FRAME_BYTES`] limit. A raft
//!   message travels in issue 20's [`RaftEnvelope`] ([`seal`] / [`open`]).
//! * **One actor per peer connection**: [`PeerLink`], spawned on the node's runtime, owns
//!   the outgoing connection to one peer. Its mailbox *is* the bounded outgoing queue
//!   ([`TcpOptions::queue`]): when it is full the message is dropped (raft tolerates lost
//!   messages) and counted. A connection is one-way (the dialer sends), so each pair of
//!   peers has two.
//! * **Authentication**: the listener sends a fresh nonce; the dialer answers with the
//!   HMAC-SHA256 of the nonce, its id and the listener's id under the shared cluster
//!   [`Secret`] (the control socket's challenge–response, [`auth`]). A wrong answer is
//!   refused, the connection closed, and [`TcpCounters::refused`] counted; the secret is
//!   never sent or logged. Every raft message on an authenticated connection must come
//!   from the authenticated id.
//! * **Failure**: a link that cannot connect (or whose write fails) reports the peer
//!   unreachable to its raft peer (`RaftPeerMessage::Unreachable`, at most once per failed
//!   attempt), drops what it cannot send, and retries with exponential back-off between
//!   [`TcpOptions::backoff_min`] and [`TcpOptions::backoff_max`]. A snapshot message that
//!   is written is reported `SnapshotStatus::Finish`; one that is dropped or whose write
//!   fails, `SnapshotStatus::Failure` (raft-rs pauses the follower until it hears one).
//!
//! ```no_run
//! # async fn example(rt: vortex_runtime::Runtime, options: vortex_raft::PeerOptions)
//! # -> Result<(), Box<dyn std::error::Error>> {
//! use std::collections::BTreeMap;
//! use std::sync::Arc;
//! use vortex_actors::control::auth::Secret;
//! use vortex_raft::tcp::{TcpNode, TcpOptions};
//! use vortex_raft::RaftPeer;
//!
//! let peers = BTreeMap::from([(2, "127.0.0.1:7102".parse()?), (3, "127.0.0.1:7103".parse()?)]);
//! let secret = Secret::new(b"cluster secret".to_vec())?;
//! let node = TcpNode::bind(&rt, "127.0.0.1:7101".parse()?, TcpOptions::new(1, peers, secret)).await?;
//! let transport = node.clone();
//! let options = vortex_raft::PeerOptions {
//!     transport: Arc::new(move || Box::new(transport.transport())),
//!     ..options
//! };
//! let peer = RaftPeer::spawn(&rt, "raft", options).await?;
//! node.attach(peer); // inbound messages now reach the peer
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use raft::prelude::{Message, MessageType};
use raft::SnapshotStatus;
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;
use tokio::time::{timeout, Instant};
use tokio_util::codec::Framed;
use vortex_actors::control::auth::{self, Secret};
use vortex_actors::control::frame::{FrameCodec, FrameError};
use vortex_messages::raft::RaftEnvelope;
use vortex_runtime::{Actor, ActorError, ActorSpec, Addr, Context, Runtime, RuntimeError};

use crate::actor::{RaftPeer, RaftPeerMessage};
use crate::transport::{open, seal, Transport};

/// The version byte of raft peer frames (distinct from the control protocol's).
pub const RAFT_PROTOCOL_VERSION: u8 = 0x52;

/// The largest raft frame accepted or sent: 16 MiB (raft messages carry at most 1 MiB
/// of entries, see `PeerConfig`).
pub const MAX_RAFT_FRAME_BYTES: usize = 16 << 20;

/// What travels on a peer connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerFrame {
    /// Listener → dialer, first: prove you hold the secret.
    Challenge {
        /// A fresh nonce for this connection.
        nonce: Vec<u8>,
    },
    /// Dialer → listener: who I am, and the proof.
    Hello {
        /// The dialer's raft id.
        from: u64,
        /// The raft id the dialer believes it reached.
        to: u64,
        /// `HMAC(secret, nonce ‖ "raft" ‖ from ‖ to)`.
        answer: Vec<u8>,
    },
    /// Listener → dialer: authenticated, send raft messages.
    Accepted,
    /// Dialer → listener: one raft message.
    Raft(RaftEnvelope),
}

type PeerCodec = FrameCodec<PeerFrame, PeerFrame>;

fn codec() -> PeerCodec {
    FrameCodec::with_limit(MAX_RAFT_FRAME_BYTES, RAFT_PROTOCOL_VERSION)
}

/// The bytes the HMAC covers: the nonce bound to both ends of this connection, so an
/// answer for one pair of peers proves nothing for another.
fn bound(nonce: &[u8], from: u64, to: u64) -> Vec<u8> {
    let mut bytes = nonce.to_vec();
    bytes.extend_from_slice(b"raft");
    bytes.extend_from_slice(&from.to_be_bytes());
    bytes.extend_from_slice(&to.to_be_bytes());
    bytes
}

/// Why a [`TcpNode`] could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TcpError {
    /// The listening address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A peer link actor could not be spawned.
    #[error("cannot spawn a peer link: {0}")]
    Spawn(#[from] RuntimeError),
    /// The options are not usable.
    #[error("invalid transport options: {0}")]
    Options(String),
}

/// How a [`TcpNode`] connects to its peers.
#[derive(Debug, Clone)]
pub struct TcpOptions {
    /// This node's raft id.
    pub id: u64,
    /// The other peers: raft id → listening address.
    pub peers: BTreeMap<u64, SocketAddr>,
    /// The shared cluster secret.
    pub secret: Secret,
    /// Outgoing messages queued per peer before new ones are dropped (default 4096).
    pub queue: usize,
    /// First reconnect delay after a failure (default 50 ms); doubles per failure.
    pub backoff_min: Duration,
    /// Longest reconnect delay (default 1 s).
    pub backoff_max: Duration,
    /// Limit for connecting and authenticating, and for one write (default 1 s).
    pub io_timeout: Duration,
}

impl TcpOptions {
    /// Options with the defaults.
    pub fn new(id: u64, peers: BTreeMap<u64, SocketAddr>, secret: Secret) -> Self {
        TcpOptions {
            id,
            peers,
            secret,
            queue: 4096,
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(1),
            io_timeout: Duration::from_secs(1),
        }
    }
}

/// The transport's counters (see [`TcpNode::counters`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpCounters {
    /// Raft messages written to a peer connection.
    pub sent: u64,
    /// Raft messages received from authenticated peers and handed to the local peer.
    pub received: u64,
    /// Outgoing messages dropped because a peer's queue was full.
    pub dropped_full: u64,
    /// Outgoing messages dropped because the peer could not be reached.
    pub dropped_unreachable: u64,
    /// Incoming messages dropped (no local peer attached yet, or its mailbox full).
    pub dropped_inbound: u64,
    /// Incoming connections refused: a wrong or missing answer to the challenge.
    pub refused: u64,
    /// Frames that did not decode, or raft messages whose sender is not the
    /// authenticated peer.
    pub bad_frames: u64,
    /// Outgoing connections established (first connects and reconnects).
    pub connects: u64,
    /// Outgoing connection attempts that failed (connect, handshake or refusal).
    pub connect_failures: u64,
    /// Established outgoing connections lost on a failed or timed-out write.
    pub write_failures: u64,
    /// Messages to or from a peer cut off with [`TcpNode::block`], dropped.
    pub filtered: u64,
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    received: AtomicU64,
    dropped_full: AtomicU64,
    dropped_unreachable: AtomicU64,
    dropped_inbound: AtomicU64,
    refused: AtomicU64,
    bad_frames: AtomicU64,
    connects: AtomicU64,
    connect_failures: AtomicU64,
    write_failures: AtomicU64,
    filtered: AtomicU64,
}

struct Shared {
    id: u64,
    secret: Secret,
    local: Mutex<Option<Addr<RaftPeer>>>,
    counters: Counters,
    tasks: Mutex<Vec<AbortHandle>>,
    blocked: Mutex<BTreeSet<u64>>,
}

impl Shared {
    fn local(&self) -> Option<Addr<RaftPeer>> {
        self.local
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Tells the local raft peer (never blocks; a full mailbox loses the report, and
    /// raft-rs learns the same from the next failure).
    fn report(&self, message: RaftPeerMessage) {
        if let Some(local) = self.local() {
            let _ = local.try_tell(message);
        }
    }

    /// True (and counted) when messages to or from `peer` are cut off.
    fn filtered(&self, peer: u64) -> bool {
        let blocked = self
            .blocked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&peer);
        if blocked {
            self.counters.filtered.fetch_add(1, Relaxed);
        }
        blocked
    }

    fn track(&self, task: AbortHandle) {
        let mut tasks = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        tasks.retain(|task| !task.is_finished());
        tasks.push(task);
    }
}

/// One node's end of the TCP transport: the listener, and one [`PeerLink`] actor per
/// peer. Cheap to clone.
#[derive(Clone)]
pub struct TcpNode {
    shared: Arc<Shared>,
    links: Arc<BTreeMap<u64, Addr<PeerLink>>>,
    local_addr: SocketAddr,
}

impl std::fmt::Debug for TcpNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpNode")
            .field("id", &self.shared.id)
            .field("local_addr", &self.local_addr)
            .field("peers", &self.links.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl TcpNode {
    /// Listens on `listen` (port 0 picks a free one, see [`TcpNode::local_addr`]) and
    /// spawns one link actor per peer on `rt` (named `raft-link-<peer>`).
    pub async fn bind(
        rt: &Runtime,
        listen: SocketAddr,
        options: TcpOptions,
    ) -> Result<TcpNode, TcpError> {
        if options.queue == 0 {
            return Err(TcpError::Options("queue must be at least 1".into()));
        }
        if options.peers.contains_key(&options.id) {
            return Err(TcpError::Options(format!(
                "peer {} is this node itself",
                options.id
            )));
        }
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|source| TcpError::Bind {
                addr: listen,
                source,
            })?;
        Self::with_listener(rt, listener, options).await
    }

    /// [`TcpNode::bind`] on a listener bound already (for example a std listener bound
    /// to port 0 before the peers' addresses were handed out; convert it with
    /// `TcpListener::from_std` after `set_nonblocking(true)`).
    pub async fn with_listener(
        rt: &Runtime,
        listener: TcpListener,
        options: TcpOptions,
    ) -> Result<TcpNode, TcpError> {
        if options.queue == 0 {
            return Err(TcpError::Options("queue must be at least 1".into()));
        }
        let listen = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let local_addr = listener.local_addr().map_err(|source| TcpError::Bind {
            addr: listen,
            source,
        })?;
        let shared = Arc::new(Shared {
            id: options.id,
            secret: options.secret.clone(),
            local: Mutex::new(None),
            counters: Counters::default(),
            tasks: Mutex::new(Vec::new()),
            blocked: Mutex::new(BTreeSet::new()),
        });
        let mut links = BTreeMap::new();
        for (&peer, &addr) in &options.peers {
            let (shared, link_options) = (Arc::clone(&shared), options.clone());
            let spec = ActorSpec::new(format!("raft-link-{peer}"), move || PeerLink {
                peer,
                addr,
                shared: Arc::clone(&shared),
                connection: None,
                backoff: link_options.backoff_min,
                retry_at: None,
                options: link_options.clone(),
            })
            .capacity(options.queue);
            links.insert(peer, rt.spawn_actor(spec).await?);
        }
        let accept = rt
            .handle()
            .spawn(accept_loop(listener, Arc::clone(&shared)));
        shared.track(accept.abort_handle());
        Ok(TcpNode {
            shared,
            links: Arc::new(links),
            local_addr,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Hands incoming raft messages (and link reports) to `peer` from now on. Before,
    /// incoming messages are dropped and counted.
    pub fn attach(&self, peer: Addr<RaftPeer>) {
        *self
            .shared
            .local
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(peer);
    }

    /// The transport to give the raft peer (see `PeerOptions::transport`).
    pub fn transport(&self) -> TcpTransport {
        TcpTransport {
            shared: Arc::clone(&self.shared),
            links: Arc::clone(&self.links),
        }
    }

    /// The counters so far.
    pub fn counters(&self) -> TcpCounters {
        let c = &self.shared.counters;
        TcpCounters {
            sent: c.sent.load(Relaxed),
            received: c.received.load(Relaxed),
            dropped_full: c.dropped_full.load(Relaxed),
            dropped_unreachable: c.dropped_unreachable.load(Relaxed),
            dropped_inbound: c.dropped_inbound.load(Relaxed),
            refused: c.refused.load(Relaxed),
            bad_frames: c.bad_frames.load(Relaxed),
            connects: c.connects.load(Relaxed),
            connect_failures: c.connect_failures.load(Relaxed),
            write_failures: c.write_failures.load(Relaxed),
            filtered: c.filtered.load(Relaxed),
        }
    }

    /// The transport filter for partition tests: while `blocked`, every message to or
    /// from `peer` is dropped (counted in [`TcpCounters::filtered`]), as a cut cable
    /// would lose it; the connections stay up.
    pub fn block(&self, peer: u64, blocked: bool) {
        let mut set = self
            .shared
            .blocked
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if blocked {
            set.insert(peer);
        } else {
            set.remove(&peer);
        }
    }

    /// Stops listening and closes every incoming connection (the link actors stop with
    /// their runtime). Used to take a node off the network in one process.
    pub fn close(&self) {
        for task in self
            .shared
            .tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
        {
            task.abort();
        }
        *self
            .shared
            .local
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
    }
}

/// The raft peer's side of a [`TcpNode`]: queues each message on its peer's link.
pub struct TcpTransport {
    shared: Arc<Shared>,
    links: Arc<BTreeMap<u64, Addr<PeerLink>>>,
}

impl std::fmt::Debug for TcpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpTransport")
            .field("id", &self.shared.id)
            .finish_non_exhaustive()
    }
}

impl Transport for TcpTransport {
    fn send(&mut self, message: Message) -> Result<(), Box<Message>> {
        if self.shared.filtered(message.to) {
            return Ok(());
        }
        let Some(link) = self.links.get(&message.to) else {
            // No address for this peer: unreachable.
            return Err(Box::new(message));
        };
        if let Err(error) = link.try_tell(Box::new(message)) {
            // Full (or stopping): raft tolerates a lost message; count it.
            self.shared.counters.dropped_full.fetch_add(1, Relaxed);
            let message = error.into_inner();
            if message.msg_type == MessageType::MsgSnapshot {
                self.shared.report(RaftPeerMessage::SnapshotStatus {
                    peer: message.to,
                    status: SnapshotStatus::Failure,
                });
            }
        }
        Ok(())
    }
}

/// The actor that owns the outgoing connection to one peer; its mailbox is the bounded
/// outgoing queue. See the module docs.
pub struct PeerLink {
    peer: u64,
    addr: SocketAddr,
    shared: Arc<Shared>,
    options: TcpOptions,
    connection: Option<Framed<TcpStream, PeerCodec>>,
    backoff: Duration,
    retry_at: Option<Instant>,
}

impl PeerLink {
    async fn connect(&self) -> Result<Framed<TcpStream, PeerCodec>, String> {
        let stream = TcpStream::connect(self.addr)
            .await
            .map_err(|error| format!("connect: {error}"))?;
        let _ = stream.set_nodelay(true);
        let mut framed = Framed::new(stream, codec());
        let nonce = match framed.next().await {
            Some(Ok(Ok(PeerFrame::Challenge { nonce }))) => nonce,
            other => return Err(format!("expected a challenge, got {other:?}")),
        };
        let (from, to) = (self.shared.id, self.peer);
        let answer = auth::respond(&self.shared.secret, &bound(&nonce, from, to));
        framed
            .send(PeerFrame::Hello { from, to, answer })
            .await
            .map_err(|error| format!("hello: {error}"))?;
        match framed.next().await {
            Some(Ok(Ok(PeerFrame::Accepted))) => Ok(framed),
            None => Err("refused (wrong cluster secret?)".into()),
            other => Err(format!("expected acceptance, got {other:?}")),
        }
    }

    fn failed(&mut self, why: &str) {
        self.connection = None;
        self.retry_at = Some(Instant::now() + self.backoff);
        tracing::debug!(peer = self.peer, addr = %self.addr, why, backoff = ?self.backoff, "raft peer unreachable");
        self.backoff = (self.backoff * 2).min(self.options.backoff_max);
        self.shared.report(RaftPeerMessage::Unreachable(self.peer));
    }

    fn drop_message(&self, message: &Message) {
        self.shared
            .counters
            .dropped_unreachable
            .fetch_add(1, Relaxed);
        if message.msg_type == MessageType::MsgSnapshot {
            self.shared.report(RaftPeerMessage::SnapshotStatus {
                peer: self.peer,
                status: SnapshotStatus::Failure,
            });
        }
    }
}

impl Actor for PeerLink {
    type Message = Box<Message>;

    async fn handle(
        &mut self,
        message: Box<Message>,
        ctx: &mut Context<Self>,
    ) -> Result<(), ActorError> {
        if self.connection.is_none() {
            if self.retry_at.is_some_and(|at| Instant::now() < at) {
                self.drop_message(&message);
                return Ok(());
            }
            match timeout(self.options.io_timeout, self.connect()).await {
                Ok(Ok(connection)) => {
                    self.shared.counters.connects.fetch_add(1, Relaxed);
                    self.connection = Some(connection);
                    self.backoff = self.options.backoff_min;
                    self.retry_at = None;
                }
                outcome => {
                    self.shared.counters.connect_failures.fetch_add(1, Relaxed);
                    let why = match outcome {
                        Ok(Err(why)) => why,
                        _ => "timed out".to_owned(),
                    };
                    self.failed(&why);
                    self.drop_message(&message);
                    return Ok(());
                }
            }
        }
        let snapshot = message.msg_type == MessageType::MsgSnapshot;
        let envelope = seal(&message)?;
        let Some(connection) = self.connection.as_mut() else {
            return Ok(());
        };
        // Feed without flushing while more messages wait: one write for a burst.
        let more = ctx.addr().mailbox_len() > 0;
        let write = async {
            connection.feed(PeerFrame::Raft(envelope)).await?;
            if !more || snapshot {
                connection.flush().await?;
            }
            Ok::<(), FrameError>(())
        };
        match timeout(self.options.io_timeout, write).await {
            Ok(Ok(())) => {
                self.shared.counters.sent.fetch_add(1, Relaxed);
                if snapshot {
                    self.shared.report(RaftPeerMessage::SnapshotStatus {
                        peer: self.peer,
                        status: SnapshotStatus::Finish,
                    });
                }
            }
            outcome => {
                let why = match outcome {
                    Ok(Err(error)) => error.to_string(),
                    _ => "write timed out".to_owned(),
                };
                self.shared.counters.write_failures.fetch_add(1, Relaxed);
                self.failed(&why);
                self.drop_message(&message);
            }
        }
        Ok(())
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        match listener.accept().await {
            Ok((stream, remote)) => {
                let _ = stream.set_nodelay(true);
                let task = tokio::spawn(serve(stream, remote, Arc::clone(&shared)));
                shared.track(task.abort_handle());
            }
            Err(error) => {
                tracing::warn!(%error, "raft listener: accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// One incoming connection: challenge, verify, then hand raft messages to the local
/// peer.
async fn serve(stream: TcpStream, remote: SocketAddr, shared: Arc<Shared>) {
    let mut framed = Framed::new(stream, codec());
    let nonce = auth::challenge();
    let handshake = async {
        framed
            .send(PeerFrame::Challenge {
                nonce: nonce.clone(),
            })
            .await
            .ok()?;
        match framed.next().await {
            Some(Ok(Ok(PeerFrame::Hello { from, to, answer }))) => Some((from, to, answer)),
            _ => None,
        }
    };
    let hello = timeout(Duration::from_secs(5), handshake)
        .await
        .ok()
        .flatten();
    let from = match hello {
        Some((from, to, answer))
            if to == shared.id
                && from != shared.id
                && auth::verify(&shared.secret, &bound(&nonce, from, to), &answer).is_ok() =>
        {
            from
        }
        _ => {
            shared.counters.refused.fetch_add(1, Relaxed);
            tracing::warn!(%remote, "raft peer refused: wrong or missing answer to the challenge");
            return;
        }
    };
    if framed.send(PeerFrame::Accepted).await.is_err() {
        return;
    }
    while let Some(frame) = framed.next().await {
        let envelope = match frame {
            Ok(Ok(PeerFrame::Raft(envelope))) => envelope,
            Ok(_) => {
                shared.counters.bad_frames.fetch_add(1, Relaxed);
                continue;
            }
            // Out of step (oversized, truncated, i/o): close; the peer reconnects.
            Err(_) => break,
        };
        if shared.filtered(from) {
            continue;
        }
        if envelope.from != from || envelope.to != shared.id {
            shared.counters.bad_frames.fetch_add(1, Relaxed);
            continue;
        }
        let Ok(message) = open(&envelope) else {
            shared.counters.bad_frames.fetch_add(1, Relaxed);
            continue;
        };
        let delivered = shared.local().is_some_and(|local| {
            local
                .try_tell(RaftPeerMessage::Raft(Box::new(message)))
                .is_ok()
        });
        if delivered {
            shared.counters.received.fetch_add(1, Relaxed);
        } else {
            shared.counters.dropped_inbound.fetch_add(1, Relaxed);
        }
    }
}
