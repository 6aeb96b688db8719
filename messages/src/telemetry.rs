//! Typed telemetry events: plain data, `serde` + `Clone` + `Debug`.
//!
//! This module has no runtime dependency (no tokio, no metrics) so that it can
//! move unchanged into `vortex_messages::telemetry`. Names are past tense
//! (`BatchFinished`, `ActorRestarted`): an event says what already happened.
//!
//! Every event carries `at_micros`, microseconds since the UNIX epoch, taken by
//! whoever produced it ([`now_micros`]).
//!
//! Cloning is cheap by construction: the fan-out clones an event once per
//! subscriber, so text fields are [`Name`] (`Arc<str>`, a reference-count bump)
//! and every other field is a plain number. The enum is externally tagged (serde's
//! default) so that non-self-describing formats such as bincode 2 can carry it.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// A shared, immutable name (actor, pool, command, reason). Cloning it is a
/// reference-count increment, never an allocation.
pub type Name = Arc<str>;

/// A compute device's index as the GPU launcher numbers them.
pub type DeviceId = u32;

/// Microseconds since the UNIX epoch, saturating; `0` if the clock is before 1970.
pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// One telemetry event. Match on it; new variants may be added.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum TelemetryEvent {
    /// A batch was handed to a device.
    BatchLaunched(BatchLaunched),
    /// A device finished a batch.
    BatchFinished(BatchFinished),
    /// A periodic sample of one actor's data-mailbox depth.
    MailboxDepthSampled(MailboxDepthSampled),
    /// An actor ran `on_start` successfully.
    ActorStarted(ActorStarted),
    /// An actor stopped for good (no restart follows).
    ActorStopped(ActorStopped),
    /// A supervisor restarted an actor.
    ActorRestarted(ActorRestarted),
    /// A message could not be delivered or handled and went to the dead-letter sink.
    DeadLettered(DeadLettered),
    /// A control command was applied to an actor.
    ControlApplied(ControlApplied),
    /// A timer fired later than its deadline.
    TimerLagged(TimerLagged),
    /// The journal finished one group-commit `fsync`.
    JournalFsynced(JournalFsynced),
    /// A journal was opened (or reopened after a failure) and recovered.
    JournalRecovered(JournalRecovered),
    /// A periodic health sample of one device.
    DeviceSampled(DeviceSampled),
    /// A periodic sample of how well one device launcher is fed.
    LauncherSampled(LauncherSampled),
    /// A periodic NVML health sample of one GPU (power, clocks, throttling, energy).
    GpuSampled(GpuSampled),
    /// An autotuner decided about one knob in one round (changed it, kept it, or left
    /// it alone because a person turned it).
    AutotunerDecided(AutotunerDecided),
}

impl TelemetryEvent {
    /// When the event happened, in microseconds since the UNIX epoch.
    pub fn at_micros(&self) -> u64 {
        match self {
            Self::BatchLaunched(e) => e.at_micros,
            Self::BatchFinished(e) => e.at_micros,
            Self::MailboxDepthSampled(e) => e.at_micros,
            Self::ActorStarted(e) => e.at_micros,
            Self::ActorStopped(e) => e.at_micros,
            Self::ActorRestarted(e) => e.at_micros,
            Self::DeadLettered(e) => e.at_micros,
            Self::ControlApplied(e) => e.at_micros,
            Self::TimerLagged(e) => e.at_micros,
            Self::JournalFsynced(e) => e.at_micros,
            Self::JournalRecovered(e) => e.at_micros,
            Self::DeviceSampled(e) => e.at_micros,
            Self::LauncherSampled(e) => e.at_micros,
            Self::GpuSampled(e) => e.at_micros,
            Self::AutotunerDecided(e) => e.at_micros,
        }
    }

    /// The stable snake-case name of the variant, for logs and filters.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::BatchLaunched(_) => "batch_launched",
            Self::BatchFinished(_) => "batch_finished",
            Self::MailboxDepthSampled(_) => "mailbox_depth_sampled",
            Self::ActorStarted(_) => "actor_started",
            Self::ActorStopped(_) => "actor_stopped",
            Self::ActorRestarted(_) => "actor_restarted",
            Self::DeadLettered(_) => "dead_lettered",
            Self::ControlApplied(_) => "control_applied",
            Self::TimerLagged(_) => "timer_lagged",
            Self::JournalFsynced(_) => "journal_fsynced",
            Self::JournalRecovered(_) => "journal_recovered",
            Self::DeviceSampled(_) => "device_sampled",
            Self::LauncherSampled(_) => "launcher_sampled",
            Self::GpuSampled(_) => "gpu_sampled",
            Self::AutotunerDecided(_) => "autotuner_decided",
        }
    }
}

/// A batch was handed to a device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchLaunched {
    /// Microseconds since the UNIX epoch.
    pub at_micros: u64,
    /// The batch's sequence number.
    pub batch_id: u64,
    /// The device it was launched on.
    pub device: DeviceId,
    /// Items (samples) in the batch.
    pub items: u32,
    /// Payload bytes copied to the device.
    pub bytes: u64,
}

/// A device finished a batch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchFinished {
    /// Microseconds since the UNIX epoch.
    pub at_micros: u64,
    /// The batch's sequence number.
    pub batch_id: u64,
    /// The device that ran it.
    pub device: DeviceId,
    /// Items (samples) in the batch.
    pub items: u32,
    /// Time the CPU preprocessor spent on the batch, in microseconds.
    pub preprocess_micros: u64,
    /// Time from launch to completion on the device, in microseconds.
    pub execute_micros: u64,
    /// Time the batch waited for its launcher (routed to taken), in microseconds.
    #[serde(default)]
    pub queue_wait_micros: u64,
    /// Host→device plus device→host copy time, in microseconds.
    #[serde(default)]
    pub copy_micros: u64,
    /// Bytes copied to the device.
    #[serde(default)]
    pub bytes: u64,
}

/// A periodic sample of one actor's data-mailbox depth.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailboxDepthSampled {
    /// Microseconds since the UNIX epoch.
    pub at_micros: u64,
    /// The actor (or pool) owning the mailbox.
    pub actor: Name,
    /// Messages waiting.
    pub depth: u64,
    /// The mailbox bound.
    pub capacity: u64,
}

/// An actor ran `on_start` successfully.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActorStarted {
    /// Microseconds since the UNIX epoch.
    pub at_micros: u64,
    /// The actor's registered name.
    pub actor: Name,
}

/// An actor stopped for good.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActorStopped {
    /// Microseconds since the UNIX epoch.
    pub at_micros: u64,
    /// The actor's registered name.
    pub actor: Name,
    /// Why it stopped ("normal", "stop command", a panic message, ...).
    pub reason: Name,
}

/// A supervisor restarted an actor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActorRestarted {
    /// Microseconds since the UNIX epoch.
    pub at_micros: u64,
    /// The actor's registered name.
    pub actor: Name,
    /// Why the previous incarnation failed.
    pub reason: Name,
    /// Restarts of this actor inside the current intensity window, this one included.
    pub attempt: u32,
    /// Back-off waited before this restart, in microseconds.
    pub backoff_micros: u64,
}

/// A message went to the dead-letter sink.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLettered {
    /// Microseconds since the UNIX epoch.
    pub at_micros: u64,
    /// The actor the message was addressed to.
    pub actor: Name,
    /// Why it was not handled ("handler panicked", "mailbox closed", ...).
    pub reason: Name,
}

/// A control command was applied to an actor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlApplied {
    /// Microseconds since the UNIX epoch.
    pub at_micros: u64,
    /// The actor the command addressed.
    pub actor: Name,
    /// The command's stable name ("pause", "resume", "checkpoint", "scale", "status", "stop").
    pub command: Name,
    /// Whether the actor accepted it.
    pub succeeded: bool,
}

/// A timer fired later than its deadline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimerLagged {
    /// Microseconds since the UNIX epoch.
    pub at_micros: u64,
    /// The timer's id.
    pub timer_id: u64,
    /// The actor the timer delivers to.
    pub target: Name,
    /// How late it fired, in microseconds.
    pub lag_micros: u64,
}

/// The journal finished one group-commit `fsync`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalFsynced {
    /// Microseconds since the UNIX epoch.
    pub at_micros: u64,
    /// The segment file that was synced.
    pub segment: u64,
    /// Bytes made durable by this sync.
    pub bytes: u64,
    /// How long the `fsync` took, in microseconds.
    pub latency_micros: u64,
}

/// A journal was opened (or reopened after a failure) and recovered: what recovery kept
/// and what it cut (the full report is in the journal's logs and `Status` detail).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalRecovered {
    /// Microseconds since the UNIX epoch.
    pub at_micros: u64,
    /// The journal: the owning actor's name, or the journal directory.
    pub journal: Name,
    /// How many times this journal has been opened by its owner (1 = first open).
    pub opens: u64,
    /// Segments kept.
    pub segments: u64,
    /// Records kept.
    pub records: u64,
    /// Sequence number of the last record kept.
    pub last_seq: u64,
    /// Bytes cut from the log (torn tail and corruption cut), kept in quarantine files.
    pub bytes_cut: u64,
    /// Well-formed frames that lay in the cut bytes.
    pub frames_cut: u64,
    /// Segment files moved into quarantine whole.
    pub segments_quarantined: u64,
}

/// A periodic health sample of one device.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceSampled {
    /// Microseconds since the UNIX epoch.
    pub at_micros: u64,
    /// The device.
    pub device: DeviceId,
    /// Compute utilisation, 0–100 %.
    pub utilisation_percent: f32,
    /// Device memory in use, bytes.
    pub memory_used_bytes: u64,
    /// Device memory in total, bytes.
    pub memory_total_bytes: u64,
    /// Temperature in degrees Celsius.
    pub temperature_celsius: f32,
}

/// A periodic sample of how well one device launcher is fed ("is the GPU fed?").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LauncherSampled {
    /// Microseconds since the UNIX epoch.
    pub at_micros: u64,
    /// The launcher's device.
    pub device: DeviceId,
    /// The launcher's registered name.
    pub launcher: Name,
    /// Fraction of its time (since its first batch) the launcher waited for input, 0–1.
    pub data_stall_ratio: f64,
    /// Batches it holds ahead of the one running.
    pub queued: u64,
    /// Whether the router may send it batches (false after too many device faults).
    pub in_rotation: bool,
}

/// A periodic NVML health sample of one GPU. Readings the GPU does not support are NaN
/// (floats) or `None`; memory comes from NVML's `memory_info`, while
/// `memory_bus_busy_percent` is NVML's `utilization.memory` — how busy the memory bus was,
/// not how much memory is used.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GpuSampled {
    /// Microseconds since the UNIX epoch.
    pub at_micros: u64,
    /// The GPU's NVML index.
    pub device: DeviceId,
    /// The GPU's UUID (`GPU-…`), stable across reboots and index changes.
    pub uuid: Name,
    /// Kernel-busy time over NVML's last sample period, 0–100 %.
    pub utilisation_percent: f32,
    /// Memory-bus busy time over NVML's last sample period, 0–100 %.
    pub memory_bus_busy_percent: f32,
    /// Device memory allocated, bytes (`memory_info.used`).
    pub memory_used_bytes: u64,
    /// Device memory free, bytes (`memory_info.free`).
    pub memory_free_bytes: u64,
    /// Device memory in total, bytes (`memory_info.total`).
    pub memory_total_bytes: u64,
    /// GPU die temperature, °C.
    pub temperature_celsius: f32,
    /// Power draw, watts.
    pub power_watts: f32,
    /// Enforced power limit, watts.
    pub power_limit_watts: f32,
    /// SM clock, MHz.
    pub sm_clock_mhz: f32,
    /// Memory clock, MHz.
    pub memory_clock_mhz: f32,
    /// NVML's throttle-reason bits (`nvmlClocksThrottleReason*`); `None` when unsupported.
    pub throttle_reasons: Option<u64>,
    /// Energy used since the driver loaded, millijoules (a counter); `None` when unsupported.
    pub energy_millijoules: Option<u64>,
}

/// An autotuner's decision about one knob in one round.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutotunerDecided {
    /// Microseconds since the UNIX epoch.
    pub at_micros: u64,
    /// The autotuner's registered name.
    pub autotuner: Name,
    /// The autotuner's round number (1 = first round).
    pub round: u64,
    /// The knob: `workers`, `batch-size` or `prefetch-depth`.
    pub knob: Name,
    /// The actor the knob belongs to (the pool, the source, a launcher).
    pub target: Name,
    /// The knob's value before the decision.
    pub from: u32,
    /// The value decided (equal to `from` when the knob was kept or held).
    pub to: u32,
    /// Why, in words a person reads in `vortex ctl <autotuner> status`.
    pub reason: Name,
    /// Whether a command was sent (and accepted) to change the knob.
    pub applied: bool,
}

macro_rules! impl_from_event {
    ($($variant:ident),* $(,)?) => {
        $(impl From<$variant> for TelemetryEvent {
            fn from(event: $variant) -> Self {
                Self::$variant(event)
            }
        })*
    };
}

impl_from_event!(
    BatchLaunched,
    BatchFinished,
    MailboxDepthSampled,
    ActorStarted,
    ActorStopped,
    ActorRestarted,
    DeadLettered,
    ControlApplied,
    TimerLagged,
    JournalFsynced,
    JournalRecovered,
    DeviceSampled,
    LauncherSampled,
    GpuSampled,
    AutotunerDecided,
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_through_json_and_keep_their_timestamp() {
        let events: Vec<TelemetryEvent> = vec![
            ActorRestarted {
                at_micros: 7,
                actor: "gpu-launcher-0".into(),
                reason: "panicked".into(),
                attempt: 2,
                backoff_micros: 400,
            }
            .into(),
            DeviceSampled {
                at_micros: 9,
                device: 1,
                utilisation_percent: 87.5,
                memory_used_bytes: 1 << 30,
                memory_total_bytes: 1 << 34,
                temperature_celsius: 64.0,
            }
            .into(),
        ];
        for event in events {
            let text = serde_json::to_string(&event).expect("serialize");
            let back: TelemetryEvent = serde_json::from_str(&text).expect("deserialize");
            assert_eq!(back, event);
            assert!(back.at_micros() > 0);
        }
    }

    #[test]
    fn now_is_after_2020() {
        assert!(now_micros() > 1_577_836_800_000_000);
    }
}
