//! `init_tracing` installs the global subscriber once. Its own test binary (its own
//! process), because the global subscriber cannot be uninstalled.

use vortex::actors::telemetry::{init_tracing, TelemetryError};

#[test]
fn init_tracing_installs_once() {
    init_tracing(true).expect("first install succeeds");
    tracing::info!(check = "json", "installed");
    assert!(matches!(
        init_tracing(false),
        Err(TelemetryError::TracingInit(_))
    ));
}
