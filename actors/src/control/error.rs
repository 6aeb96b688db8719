//! Errors of the control server and client.

use std::path::PathBuf;

use vortex_messages::ctl::CtlError;

use crate::control::{AuthError, FrameError};

/// Why the control server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlServerError {
    /// The socket path does not fit in `sockaddr_un` (it would be truncated).
    #[error("control socket path {path} is {len} bytes; the platform allows at most {max}")]
    SocketPathTooLong {
        /// The path.
        path: PathBuf,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Another process already serves this socket.
    #[error("control socket {0} is in use by another process")]
    SocketInUse(PathBuf),
    /// Binding, permissions or renaming failed.
    #[error("control socket {path}: {source}")]
    Socket {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The TCP listener could not bind.
    #[error("control listener {addr}: {source}")]
    Tcp {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Why a control client request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Connecting failed.
    #[error("cannot connect to {target}: {source}")]
    Connect {
        /// The socket path or address.
        target: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The server refused our answer to its challenge (wrong secret).
    #[error("the server refused the secret")]
    Refused,
    /// The server expected authentication (or did not) and the client did the other.
    #[error("handshake failed: {0}")]
    Handshake(String),
    /// The secret could not be loaded.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// A frame could not be read or written.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The server answered with an error.
    #[error("server error: {0}")]
    Server(CtlError),
    /// The server closed the connection before answering.
    #[error("the server closed the connection")]
    Closed,
    /// The server answered with something this request does not expect.
    #[error("unexpected answer: {0}")]
    Unexpected(String),
}
