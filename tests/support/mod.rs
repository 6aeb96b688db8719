//! Helpers shared by the integration tests. Every wait has a deadline; nothing sleeps to
//! "wait for" something.
#![allow(dead_code, unreachable_pub)]

use std::{future::Future, time::Duration};

/// Polls `condition` (yielding to the scheduler between checks) until it holds or
/// `deadline` passes; panics with `what` on timeout.
pub async fn wait_until(what: &str, deadline: Duration, mut condition: impl FnMut() -> bool) {
    let waited = tokio::time::timeout(deadline, async {
        while !condition() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "timed out after {deadline:?} waiting for {what}"
    );
}

/// [`wait_until`] for tests on tokio's paused clock: between checks it sleeps one
/// *virtual* millisecond, which lets the runtime go idle so virtual time advances
/// (a `yield_now` loop would keep it busy and freeze the clock).
pub async fn wait_until_virtual(
    what: &str,
    deadline: Duration,
    mut condition: impl FnMut() -> bool,
) {
    let waited = tokio::time::timeout(deadline, async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "timed out after {deadline:?} (virtual) waiting for {what}"
    );
}

/// Like [`wait_until`] for an async condition.
pub async fn wait_until_async<F, Fut>(what: &str, deadline: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let waited = tokio::time::timeout(deadline, async {
        while !condition().await {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "timed out after {deadline:?} waiting for {what}"
    );
}

/// Silences the default panic hook's output for panics whose message contains `marker`
/// (poison messages in tests), keeping every other panic visible.
pub fn quiet_panics(marker: &'static str) {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let text = info
            .payload()
            .downcast_ref::<&str>()
            .map(|text| text.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        if !text.contains(marker) {
            previous(info);
        }
    }));
}
