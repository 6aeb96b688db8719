//! The control socket: how `vortex ctl` (or any outside control plane) commands a running
//! pipeline by actor name.
//!
//! # Layout
//! * [`frame`] — [`FrameCodec`]: length-prefixed (tokio-util), version byte, bincode 2
//!   payload, size limit; bad payloads are items, broken streams are errors.
//! * [`auth`] — HMAC-SHA256 challenge–response over a shared [`Secret`] (file or
//!   environment variable), constant-time check. Reused by raft peers.
//! * [`server`] — [`ControlServer`]: a Unix socket (mode 0600) and an optional,
//!   authenticated TCP listener serving [`vortex_messages::ctl`] requests against a
//!   runtime's registry, its telemetry and an audit hook (the journal).
//! * [`client`] — [`ControlClient`]: what `vortex ctl` uses.
//! * [`error`] — [`ControlServerError`] and [`ClientError`].

pub mod auth;
pub mod client;
pub mod error;
pub mod frame;
pub mod server;

pub use auth::{AuthError, Secret};
pub use client::ControlClient;
pub use error::{ClientError, ControlServerError};
pub use frame::{FrameCodec, FrameError, MAX_FRAME_BYTES};
pub use server::{ControlServer, ControlServerConfig, ControlServices, TcpControl};
