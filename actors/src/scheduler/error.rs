//! The one error type of the timer core.

use thiserror::Error;

/// What can go wrong when arming or driving [`Timers`](crate::scheduler::core::Timers).
///
/// Both variants are caller mistakes that the table refuses without changing
/// anything, so the caller can correct the call and carry on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Error {
    /// [`Timers::advance_to`](crate::scheduler::core::Timers::advance_to) was asked to go
    /// back in time. Ticks come from a monotonic clock; nothing was fired.
    #[error(
        "time went backwards: asked to advance to tick {requested}, but the timers are at tick {now}"
    )]
    TimeWentBackwards {
        /// The tick the table had already reached.
        now: u64,
        /// The earlier tick that was asked for.
        requested: u64,
    },
    /// An interval was armed with a period of zero ticks, which would fire
    /// without end inside one tick. Nothing was armed.
    #[error("an interval needs a period of at least one tick")]
    ZeroPeriod,
}
