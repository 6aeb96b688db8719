//! The runtime layer's errors. Send errors hand the message back; `Debug` never needs
//! `M: Debug`.

use std::fmt;

use vortex_messages::ControlError;

/// Why [`Addr::try_tell`](crate::Addr::try_tell) did not queue the message. Carries it back.
pub enum TrySendError<M> {
    /// The mailbox is full; try later or use `tell`, which waits.
    Full(M),
    /// The actor stopped or the runtime shut down; the mailbox takes nothing more.
    Closed(M),
}

impl<M> TrySendError<M> {
    /// The message that was not queued.
    pub fn into_inner(self) -> M {
        match self {
            TrySendError::Full(message) | TrySendError::Closed(message) => message,
        }
    }

    /// Whether the mailbox was full (as opposed to closed).
    pub fn is_full(&self) -> bool {
        matches!(self, TrySendError::Full(_))
    }
}

impl<M> fmt::Debug for TrySendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("Full(..)"),
            TrySendError::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

impl<M> fmt::Display for TrySendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("mailbox full"),
            TrySendError::Closed(_) => f.write_str("mailbox closed"),
        }
    }
}

impl<M> std::error::Error for TrySendError<M> {}

/// Why [`Addr::tell`](crate::Addr::tell) did not queue the message: the mailbox is closed.
/// Carries the message back.
pub struct SendError<M>(pub M);

impl<M> SendError<M> {
    /// The message that was not queued.
    pub fn into_inner(self) -> M {
        self.0
    }
}

impl<M> fmt::Debug for SendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SendError(..)")
    }
}

impl<M> fmt::Display for SendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("mailbox closed")
    }
}

impl<M> std::error::Error for SendError<M> {}

/// Why an [`Addr::ask`](crate::Addr::ask) got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AskError {
    /// The mailbox is closed; the request was not queued.
    #[error("mailbox closed")]
    Closed,
    /// No answer within the deadline. The request may still be handled later.
    #[error("no reply within the deadline")]
    Timeout,
    /// The request was taken but the reply was dropped unanswered: the handler failed,
    /// or the actor stopped first.
    #[error("the actor stopped or failed before replying")]
    Stopped,
}

/// Errors of the runtime itself: spawning, naming, lookup, shutdown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// Another actor, pool or supervisor in this runtime already has this name.
    #[error("an actor named `{0}` already exists in this runtime")]
    DuplicateName(String),
    /// Names must be 1–128 characters of `[A-Za-z0-9._-]`.
    #[error("invalid actor name `{0}`: use 1-128 characters of [A-Za-z0-9._-]")]
    InvalidName(String),
    /// No actor with this name.
    #[error("unknown actor `{0}`")]
    UnknownActor(String),
    /// The name exists but belongs to an actor of another type.
    #[error("actor `{name}` is not a `{expected}`")]
    WrongType {
        /// The name looked up.
        name: String,
        /// The type asked for.
        expected: &'static str,
    },
    /// The actor's `on_start` failed.
    #[error("actor `{name}` failed to start: {reason}")]
    StartFailed {
        /// The actor's name.
        name: String,
        /// What `on_start` returned or the panic message.
        reason: String,
    },
    /// No resource group with this name was declared.
    #[error("unknown resource group `{0}`")]
    UnknownResourceGroup(String),
    /// The runtime is shutting down or was shut down.
    #[error("the runtime is shut down")]
    ShutDown,
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// A control command failed.
    #[error(transparent)]
    Control(#[from] ControlError),
}
