//! The autotuner's settings: what a topology file's `[autotuner]` table holds.

use std::time::Duration;

use serde::Deserialize;

use crate::autotuner::error::AutotunerError;

/// Inclusive bounds of one knob. The autotuner never asks for a value outside them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bounds {
    /// The smallest value (at least 1).
    pub min: u32,
    /// The largest value (at least `min`).
    pub max: u32,
}

impl Bounds {
    /// `min..=max`.
    pub const fn new(min: u32, max: u32) -> Self {
        Bounds { min, max }
    }

    /// `value` moved into the bounds.
    pub fn clamp(&self, value: u32) -> u32 {
        value.clamp(self.min, self.max.max(self.min))
    }

    fn check(&self, knob: &'static str) -> Result<(), AutotunerError> {
        if self.min == 0 || self.min > self.max {
            return Err(AutotunerError::InvalidBounds {
                knob,
                min: self.min,
                max: self.max,
            });
        }
        Ok(())
    }
}

/// The bounds of every knob the autotuner turns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KnobBounds {
    /// Preprocessor workers. The CPU budget (the cores of the pool's resource group) caps
    /// `max` further.
    pub workers: Bounds,
    /// Items per batch (the source's `SetBatchSize`).
    pub batch_size: Bounds,
    /// Batches a launcher holds ahead (`SetPrefetchDepth`).
    pub prefetch_depth: Bounds,
}

impl Default for KnobBounds {
    fn default() -> Self {
        KnobBounds {
            workers: Bounds::new(1, 64),
            batch_size: Bounds::new(1, 4096),
            prefetch_depth: Bounds::new(1, 8),
        }
    }
}

/// Rounds of agreeing evidence a controller needs before it acts (Ray Serve's
/// upscale/downscale delays, counted in rounds): up quickly, down slowly. A round that
/// points the other way, or nowhere, resets the count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HysteresisSettings {
    /// Consecutive rounds asking for more before acting (at least 1).
    pub up_rounds: u32,
    /// Consecutive rounds asking for less before acting (at least 1).
    pub down_rounds: u32,
}

impl Default for HysteresisSettings {
    fn default() -> Self {
        HysteresisSettings {
            up_rounds: 1,
            down_rounds: 3,
        }
    }
}

/// The autotuner's settings. In a topology file:
///
/// ```
/// # use vortex_actors::autotuner::AutotunerSettings;
/// let settings: AutotunerSettings = serde_json::from_str(r#"{
///     "enabled": true,
///     "latency_target_ms": 50,
///     "interval_ms": 500,
///     "bounds": { "workers": { "min": 1, "max": 8 } }
/// }"#).unwrap();
/// assert_eq!(settings.latency_target(), std::time::Duration::from_millis(50));
/// assert_eq!(settings.bounds.batch_size.max, 4096); // the default
/// settings.validate().unwrap();
/// ```
///
/// Unknown fields are an error, so a typo never silently falls back to a default.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AutotunerSettings {
    /// Whether the autotuner runs at all.
    pub enabled: bool,
    /// The p99 latency a batch may take from routing to finished, in milliseconds.
    /// The batch-size controller grows only while p99 stays under
    /// `latency_headroom × target` and cuts on a violation.
    pub latency_target_ms: u64,
    /// The fraction of the target below which the batch size may grow (default 0.85).
    pub latency_headroom: f64,
    /// One round every this many milliseconds.
    pub interval_ms: u64,
    /// How long a knob someone else turned (a person through `vortex ctl`, the cluster
    /// log, code) is left alone, in milliseconds.
    pub hold_ms: u64,
    /// Bounds per knob.
    pub bounds: KnobBounds,
    /// Hysteresis of the parallelism controller.
    pub hysteresis: HysteresisSettings,
    /// Items added per batch-size increase once growth has met its first limit (at
    /// most half the batch: a small batch grows by half). Large enough that the
    /// throughput change it makes stands out of the noise (default 16).
    pub batch_step: u32,
    /// Fraction the batch size is cut to on a latency violation (0 < cut < 1).
    pub batch_cut: f64,
    /// The smallest relative throughput gain that counts as "improved" (default 0.02).
    pub min_gain: f64,
    /// Rounds with fewer finished batches than this teach the batch controller nothing.
    pub min_batches: u64,
    /// Decisions the `Status` detail and the journal history keep.
    pub history: usize,
}

impl Default for AutotunerSettings {
    fn default() -> Self {
        AutotunerSettings {
            enabled: true,
            latency_target_ms: 100,
            latency_headroom: 0.85,
            interval_ms: 500,
            hold_ms: 30_000,
            bounds: KnobBounds::default(),
            hysteresis: HysteresisSettings::default(),
            batch_step: 16,
            batch_cut: 0.7,
            min_gain: 0.02,
            min_batches: 4,
            history: 16,
        }
    }
}

impl AutotunerSettings {
    /// The latency target.
    pub fn latency_target(&self) -> Duration {
        Duration::from_millis(self.latency_target_ms)
    }

    /// The round interval.
    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.interval_ms)
    }

    /// How long a knob turned by someone else is left alone.
    pub fn hold(&self) -> Duration {
        Duration::from_millis(self.hold_ms)
    }

    /// Checks every field; the first problem is the error.
    pub fn validate(&self) -> Result<(), AutotunerError> {
        self.bounds.workers.check("workers")?;
        self.bounds.batch_size.check("batch-size")?;
        self.bounds.prefetch_depth.check("prefetch-depth")?;
        let fraction = |name: &'static str, value: f64| {
            if value > 0.0 && value < 1.0 {
                Ok(())
            } else {
                Err(AutotunerError::InvalidSetting {
                    name,
                    reason: format!("{value} is not strictly between 0 and 1"),
                })
            }
        };
        fraction("latency_headroom", self.latency_headroom)?;
        fraction("batch_cut", self.batch_cut)?;
        fraction("min_gain", self.min_gain)?;
        let positive = |name: &'static str, value: u64| {
            if value == 0 {
                Err(AutotunerError::InvalidSetting {
                    name,
                    reason: "must be at least 1".into(),
                })
            } else {
                Ok(())
            }
        };
        positive("latency_target_ms", self.latency_target_ms)?;
        positive("interval_ms", self.interval_ms)?;
        positive("batch_step", u64::from(self.batch_step))?;
        positive("hysteresis.up_rounds", u64::from(self.hysteresis.up_rounds))?;
        positive(
            "hysteresis.down_rounds",
            u64::from(self.hysteresis.down_rounds),
        )?;
        positive("history", self.history as u64)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_and_bad_values_are_refused() {
        let typo = serde_json::from_str::<AutotunerSettings>(r#"{ "latency_target": 5 }"#);
        assert!(typo.unwrap_err().to_string().contains("unknown field"));
        let nested = serde_json::from_str::<AutotunerSettings>(
            r#"{ "bounds": { "workers": { "min": 1, "max": 2, "step": 1 } } }"#,
        );
        assert!(nested.is_err());
        let table: Vec<(AutotunerSettings, &str)> = vec![
            (
                AutotunerSettings {
                    bounds: KnobBounds {
                        workers: Bounds::new(0, 4),
                        ..KnobBounds::default()
                    },
                    ..AutotunerSettings::default()
                },
                "bounds of `workers`",
            ),
            (
                AutotunerSettings {
                    bounds: KnobBounds {
                        batch_size: Bounds::new(9, 8),
                        ..KnobBounds::default()
                    },
                    ..AutotunerSettings::default()
                },
                "bounds of `batch-size`",
            ),
            (
                AutotunerSettings {
                    batch_cut: 1.5,
                    ..AutotunerSettings::default()
                },
                "`batch_cut`",
            ),
            (
                AutotunerSettings {
                    interval_ms: 0,
                    ..AutotunerSettings::default()
                },
                "`interval_ms`",
            ),
        ];
        for (settings, words) in table {
            let error = settings.validate().unwrap_err().to_string();
            assert!(error.contains(words), "`{error}` lacks `{words}`");
        }
        AutotunerSettings::default().validate().unwrap();
    }

    #[test]
    fn bounds_clamp() {
        let bounds = Bounds::new(2, 8);
        assert_eq!(
            [0, 2, 5, 8, 9].map(|value| bounds.clamp(value)),
            [2, 2, 5, 8, 8]
        );
    }
}
