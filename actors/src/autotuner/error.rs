//! The autotuner's errors.

/// Why autotuner settings were refused or the autotuner could not start.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum AutotunerError {
    /// A knob's bounds are empty or start at zero.
    #[error(
        "autotuner bounds of `{knob}` are invalid: min {min}, max {max} (need 1 <= min <= max)"
    )]
    InvalidBounds {
        /// The knob.
        knob: &'static str,
        /// The lower bound given.
        min: u32,
        /// The upper bound given.
        max: u32,
    },
    /// Another setting is out of range.
    #[error("autotuner setting `{name}` is invalid: {reason}")]
    InvalidSetting {
        /// The setting's name.
        name: &'static str,
        /// Why.
        reason: String,
    },
    /// The actor could not be spawned or its timer armed.
    #[error("autotuner `{name}` could not start: {reason}")]
    Start {
        /// The autotuner's name.
        name: String,
        /// Why.
        reason: String,
    },
}
