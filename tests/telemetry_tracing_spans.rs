//! The span helpers emit the documented span names, seen by a capturing layer.

use std::sync::{Arc, Mutex};

use tracing::span::{Attributes, Id};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use vortex::actors::telemetry::spans::{self, SPAN_NAMES};

/// Records the name of every span created under it.
#[derive(Clone, Default)]
struct SpanNames(Arc<Mutex<Vec<&'static str>>>);

impl<S: Subscriber> Layer<S> for SpanNames {
    fn on_new_span(&self, attrs: &Attributes<'_>, _id: &Id, _ctx: Context<'_, S>) {
        self.0
            .lock()
            .expect("not poisoned")
            .push(attrs.metadata().name());
    }
}

#[test]
fn helpers_emit_every_documented_span_name() {
    let seen = SpanNames::default();
    let subscriber = tracing_subscriber::registry().with(seen.clone());
    // Thread-local default: no process-global state, tests stay parallel.
    tracing::subscriber::with_default(subscriber, || {
        spans::handle_span("a").in_scope(|| {});
        let _ = spans::restart_span("a", 1, "panicked");
        let _ = spans::control_span("a", "pause");
        let _ = spans::batch_span(7, 0);
        let _ = spans::journal_commit_span(3);
        let _ = spans::timer_fire_span(9, "a");
        let _ = spans::scrape_span();
    });
    let seen = seen.0.lock().expect("not poisoned").clone();
    assert_eq!(
        seen, SPAN_NAMES,
        "helpers emit exactly the documented names, in order"
    );
    assert!(SPAN_NAMES.iter().all(|name| name.starts_with("vortex.")));
    for required in ["vortex.handle", "vortex.restart", "vortex.control"] {
        assert!(seen.contains(&required));
    }
}
