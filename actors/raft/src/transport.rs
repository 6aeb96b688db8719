//! How raft messages travel between peers: the [`Transport`] trait, and
//! [`LocalNetwork`] / [`LocalTransport`], in-process delivery through the peers'
//! mailboxes (tests, and several peers in one process), and [`seal`] / [`open`], which
//! put a raft message in its wire envelope and take it out. TCP between processes is
//! [`crate::tcp`].

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};

use protobuf::Message as _;
use raft::prelude::Message;
use vortex_messages::raft::RaftEnvelope;
use vortex_runtime::Addr;

use crate::actor::{RaftPeer, RaftPeerMessage};
use crate::error::{RaftError, RaftResult};

/// Wraps a raft message for the wire (see [`RaftEnvelope`]).
pub fn seal(message: &Message) -> RaftResult<RaftEnvelope> {
    let bytes = message
        .write_to_bytes()
        .map_err(|error| RaftError::Corrupt(format!("cannot encode a raft message: {error}")))?;
    Ok(RaftEnvelope {
        from: message.from,
        to: message.to,
        message: bytes,
    })
}

/// Opens an envelope from the wire. A message whose header disagrees with its envelope
/// is refused (a peer must not be able to speak for another).
pub fn open(envelope: &RaftEnvelope) -> RaftResult<Message> {
    let message = Message::parse_from_bytes(&envelope.message)
        .map_err(|error| RaftError::Corrupt(format!("a raft message does not decode: {error}")))?;
    if message.from != envelope.from || message.to != envelope.to {
        return Err(RaftError::Corrupt(format!(
            "envelope {} → {} carries a message {} → {}",
            envelope.from, envelope.to, message.from, message.to
        )));
    }
    Ok(message)
}

/// Sends raft messages to other peers. Delivery may fail or lose messages — raft
/// tolerates both — but a send must never block.
pub trait Transport: Send + 'static {
    /// Sends `message` to peer `message.to`. `Err` hands it back when the peer cannot be
    /// reached now; the raft peer then reports the peer unreachable to raft-rs.
    fn send(&mut self, message: Message) -> Result<(), Box<Message>>;
}

#[derive(Default)]
struct Network {
    peers: BTreeMap<u64, Addr<RaftPeer>>,
    isolated: BTreeSet<u64>,
}

/// The peers of one process, by raft id: register each peer's address once spawned.
#[derive(Clone, Default)]
pub struct LocalNetwork {
    inner: Arc<Mutex<Network>>,
}

impl std::fmt::Debug for LocalNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let network = self.lock();
        f.debug_struct("LocalNetwork")
            .field("peers", &network.peers.keys().collect::<Vec<_>>())
            .field("isolated", &network.isolated)
            .finish()
    }
}

impl LocalNetwork {
    /// An empty network.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Network> {
        // Every change is one insert or remove: a poisoned lock still holds a
        // consistent map.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes peer `id` reachable at `addr` (replacing an earlier address).
    pub fn register(&self, id: u64, addr: Addr<RaftPeer>) {
        self.lock().peers.insert(id, addr);
    }

    /// Cuts peer `id` off (`true`) or reconnects it: messages from and to an isolated
    /// peer are lost.
    pub fn isolate(&self, id: u64, isolated: bool) {
        let mut network = self.lock();
        if isolated {
            network.isolated.insert(id);
        } else {
            network.isolated.remove(&id);
        }
    }

    /// The transport for peer `id`.
    pub fn transport(&self, id: u64) -> LocalTransport {
        LocalTransport {
            from: id,
            network: self.clone(),
        }
    }
}

/// One peer's side of a [`LocalNetwork`].
#[derive(Debug, Clone)]
pub struct LocalTransport {
    from: u64,
    network: LocalNetwork,
}

impl Transport for LocalTransport {
    fn send(&mut self, message: Message) -> Result<(), Box<Message>> {
        let target = {
            let network = self.network.lock();
            if network.isolated.contains(&self.from) || network.isolated.contains(&message.to) {
                // A cut cable loses the message silently, as a real network does.
                return Ok(());
            }
            network.peers.get(&message.to).cloned()
        };
        let Some(target) = target else {
            return Err(Box::new(message));
        };
        target
            .try_tell(RaftPeerMessage::Raft(Box::new(message)))
            .map_err(|error| match error.into_inner() {
                RaftPeerMessage::Raft(message) => message,
                // The mailbox hands back the message it was given, a `Raft` one.
                _ => Box::default(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::prelude::{Entry, MessageType};

    #[test]
    fn a_message_survives_the_envelope_and_a_forged_one_is_refused() {
        let message = Message {
            msg_type: MessageType::MsgAppend,
            from: 1,
            to: 2,
            term: 7,
            entries: vec![Entry {
                index: 3,
                term: 7,
                data: b"pause".to_vec().into(),
                ..Entry::default()
            }]
            .into(),
            ..Message::default()
        };
        let envelope = seal(&message).unwrap();
        let bytes = vortex_messages::wire::encode(&envelope).unwrap();
        let back: RaftEnvelope = vortex_messages::wire::decode(&bytes).unwrap();
        assert_eq!(open(&back).unwrap(), message);
        let forged = RaftEnvelope {
            from: 3,
            ..back.clone()
        };
        assert!(matches!(open(&forged), Err(RaftError::Corrupt(_))));
        let garbage = RaftEnvelope {
            message: vec![0xff; 9],
            ..back
        };
        assert!(matches!(open(&garbage), Err(RaftError::Corrupt(_))));
    }
}
