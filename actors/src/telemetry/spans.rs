//! `tracing` span names the runtime emits, the helpers that emit them, and
//! [`init_tracing`].
//!
//! Span names are stable constants (dashboards and log queries match on them) and
//! are listed in [`SPAN_NAMES`]. Per-message and per-batch spans are `DEBUG`, so
//! the default `info` filter costs one disabled-callsite check for them; lifecycle
//! and control spans are `INFO`.

use tracing::Span;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

use crate::telemetry::error::TelemetryError;

/// One message handled by one actor (`DEBUG`; fields `actor`).
pub const SPAN_HANDLE: &str = "vortex.handle";
/// A supervisor restarting an actor (`INFO`; fields `actor`, `attempt`, `reason`).
pub const SPAN_RESTART: &str = "vortex.restart";
/// A control command being applied (`INFO`; fields `actor`, `command`).
pub const SPAN_CONTROL: &str = "vortex.control";
/// One batch on a device (`DEBUG`; fields `batch_id`, `device`).
pub const SPAN_BATCH: &str = "vortex.batch";
/// One journal group commit (`DEBUG`; fields `segment`).
pub const SPAN_JOURNAL_COMMIT: &str = "vortex.journal.commit";
/// One timer firing (`DEBUG`; fields `timer_id`, `target`).
pub const SPAN_TIMER_FIRE: &str = "vortex.timer.fire";
/// One `/metrics` scrape served by the exporter (`DEBUG`).
pub const SPAN_SCRAPE: &str = "vortex.scrape";

/// Every span name above.
pub const SPAN_NAMES: &[&str] = &[
    SPAN_HANDLE,
    SPAN_RESTART,
    SPAN_CONTROL,
    SPAN_BATCH,
    SPAN_JOURNAL_COMMIT,
    SPAN_TIMER_FIRE,
    SPAN_SCRAPE,
];

/// The span around one handler call.
pub fn handle_span(actor: &str) -> Span {
    tracing::debug_span!(target: "vortex", SPAN_HANDLE, actor)
}

/// The span around one restart.
pub fn restart_span(actor: &str, attempt: u32, reason: &str) -> Span {
    tracing::info_span!(target: "vortex", SPAN_RESTART, actor, attempt, reason)
}

/// The span around applying one control command.
pub fn control_span(actor: &str, command: &str) -> Span {
    tracing::info_span!(target: "vortex", SPAN_CONTROL, actor, command)
}

/// The span around one batch's launch and completion.
pub fn batch_span(batch_id: u64, device: u32) -> Span {
    tracing::debug_span!(target: "vortex", SPAN_BATCH, batch_id, device)
}

/// The span around one journal group commit.
pub fn journal_commit_span(segment: u64) -> Span {
    tracing::debug_span!(target: "vortex", SPAN_JOURNAL_COMMIT, segment)
}

/// The span around delivering one timer.
pub fn timer_fire_span(timer_id: u64, target: &str) -> Span {
    tracing::debug_span!(target: "vortex", SPAN_TIMER_FIRE, timer_id, target)
}

/// The span around rendering one scrape.
pub fn scrape_span() -> Span {
    tracing::debug_span!(target: "vortex", SPAN_SCRAPE)
}

/// Installs the process-wide `tracing` subscriber: an [`EnvFilter`] read from
/// `RUST_LOG` (default `info`), and a human-readable formatter, or one JSON object
/// per line when `json` is true.
///
/// Call it once, from `main`. Errors if `RUST_LOG` does not parse or a global
/// subscriber is already installed; libraries and tests should not call it.
pub fn init_tracing(json: bool) -> Result<(), TelemetryError> {
    let filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .from_env()
        .map_err(|error| TelemetryError::Filter(error.to_string()))?;
    let registry = tracing_subscriber::registry().with(filter);
    let installed = if json {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr),
            )
            .try_init()
    } else {
        registry
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
            .try_init()
    };
    installed.map_err(|error| TelemetryError::TracingInit(error.to_string()))
}
