//! The control-socket protocol: what `vortex ctl` (or any outside control plane) sends to a
//! running `vortex run`, and what it gets back.
//!
//! Every frame on the socket carries one of these, bincode 2 encoded behind a version byte
//! (see `vortex_actors::control::frame`). A client sends [`CtlRequest`]s, each with its own
//! `id`; the server answers each with one or more [`CtlResponse`]s carrying the same `id`,
//! in any order across requests (a slow actor never holds up the answer to another).
//!
//! Over TCP the server first sends [`CtlBody::Challenge`] (request id 0); the client must
//! answer with [`CtlCommand::Authenticate`] before anything else
//! (see `vortex_actors::control::auth`).

use serde::{Deserialize, Serialize};

use crate::control::{Control, ControlError, ControlReply, StatusReport};
use crate::telemetry::TelemetryEvent;

/// The protocol version carried in every frame's first byte.
pub const CTL_PROTOCOL_VERSION: u8 = 1;

/// One request from a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CtlRequest {
    /// Chosen by the client; every response to this request carries it.
    pub id: u64,
    /// What to do.
    pub command: CtlCommand,
}

/// What a client asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum CtlCommand {
    /// Answer the server's challenge (TCP only): HMAC-SHA256 of the nonce under the
    /// shared secret.
    Authenticate {
        /// The MAC (32 bytes).
        mac: Vec<u8>,
    },
    /// List every registered actor, pool and supervisor with its status.
    List,
    /// Send a control command to the actor named `actor`.
    Control {
        /// The registered name.
        actor: String,
        /// The command.
        command: Control,
    },
    /// Stream telemetry events until the connection closes.
    Events,
}

/// One response from the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CtlResponse {
    /// The id of the request this answers (0 for the server's challenge).
    pub id: u64,
    /// The answer.
    pub body: CtlBody,
}

/// What the server answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum CtlBody {
    /// The server's challenge (TCP only): a fresh random nonce to MAC.
    Challenge {
        /// The nonce (32 bytes).
        nonce: Vec<u8>,
    },
    /// The client's answer to the challenge was right; requests are served from now on.
    Authenticated,
    /// Every registered actor's status, sorted by name.
    Actors(Vec<StatusReport>),
    /// The actor's answer to a control command, or why it could not be carried out.
    Control(Result<ControlReply, ControlError>),
    /// One telemetry event of an `Events` stream.
    Event(TelemetryEvent),
    /// The request could not be served (bad frame, not authenticated, …).
    Error(CtlError),
}

/// Why the server could not serve a request. Travels in replies, so it is data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[non_exhaustive]
pub enum CtlError {
    /// The frame's payload is not a valid request.
    #[error("malformed request: {0}")]
    Malformed(String),
    /// The frame carries a protocol version this server does not speak.
    #[error("protocol version {got} is not supported (this server speaks {supported})")]
    Version {
        /// The version byte received.
        got: u8,
        /// The version this server speaks.
        supported: u8,
    },
    /// The frame is larger than the server accepts (the connection is closed).
    #[error("frame of {size} bytes exceeds the limit of {limit} bytes")]
    Oversized {
        /// The frame's announced size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A TCP client sent a request before authenticating, or a wrong MAC (the connection
    /// is closed).
    #[error("not authenticated")]
    Unauthenticated,
    /// The server cannot serve this request here (e.g. `Events` without telemetry).
    #[error("unavailable: {0}")]
    Unavailable(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire;

    #[test]
    fn requests_and_responses_round_trip() {
        let request = CtlRequest {
            id: 7,
            command: CtlCommand::Control {
                actor: "source".into(),
                command: Control::Scale { n: 3 },
            },
        };
        let bytes = wire::encode(&request).unwrap();
        assert_eq!(wire::decode::<CtlRequest>(&bytes).unwrap(), request);
        let response = CtlResponse {
            id: 7,
            body: CtlBody::Control(Err(ControlError::UnknownActor("nope".into()))),
        };
        let bytes = wire::encode(&response).unwrap();
        assert_eq!(wire::decode::<CtlResponse>(&bytes).unwrap(), response);
    }
}
