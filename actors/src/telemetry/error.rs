//! The one error type of this crate.

use std::net::SocketAddr;

/// Everything that can go wrong in telemetry: receiving from the fan-out,
/// serving the exposition, installing `tracing`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TelemetryError {
    /// `try_recv` found no event waiting; the hub is still open.
    #[error("no telemetry event is waiting")]
    Empty,
    /// Every publisher handle has been dropped and the subscription is drained.
    #[error("the telemetry hub is closed")]
    Closed,
    /// The exporter could not bind its listening socket.
    #[error("cannot bind the metrics exporter to {addr}: {source}")]
    Bind {
        /// The address that was asked for.
        addr: SocketAddr,
        /// Why the bind failed.
        #[source]
        source: std::io::Error,
    },
    /// Socket I/O of the exporter failed.
    #[error("metrics exporter I/O failed: {0}")]
    Io(#[from] std::io::Error),
    /// Rendering the Prometheus text exposition failed.
    #[error("encoding the metrics exposition failed")]
    Encode(#[from] std::fmt::Error),
    /// `RUST_LOG` holds a filter that does not parse.
    #[error("invalid RUST_LOG filter: {0}")]
    Filter(String),
    /// A global `tracing` subscriber was already installed.
    #[error("cannot install the tracing subscriber: {0}")]
    TracingInit(String),
    /// The exporter's task panicked or was cancelled.
    #[error("the metrics exporter task failed: {0}")]
    Exporter(String),
}
