//! The runtime emits the documented span names while it works: `vortex.handle` (one per
//! drained batch), `vortex.control` (each control command), `vortex.restart` (each
//! supervised restart). A capturing layer records span names.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use tracing::span::{Attributes, Id};
use tracing_subscriber::{layer::Context as LayerContext, prelude::*, registry::Registry, Layer};
use vortex::actors::telemetry::spans::{SPAN_CONTROL, SPAN_HANDLE, SPAN_RESTART};
use vortex::prelude::*;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> Layer<S> for Capture {
    fn on_new_span(&self, attributes: &Attributes<'_>, _: &Id, _: LayerContext<'_, S>) {
        self.0
            .lock()
            .unwrap()
            .push(attributes.metadata().name().to_owned());
    }
}

struct Flaky;

impl Actor for Flaky {
    type Message = bool;
    async fn handle(&mut self, fail: bool, _: &mut Context<Self>) -> Result<(), ActorError> {
        if fail {
            return Err("requested failure".into());
        }
        Ok(())
    }
}

#[test]
fn runtime_work_emits_the_documented_spans() {
    let capture = Capture::default();
    let subscriber = Registry::default().with(capture.clone());
    let _guard = tracing::subscriber::set_default(subscriber);
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tokio.block_on(async {
        let rt = Runtime::builder()
            .root_backoff(Backoff::none())
            .build()
            .unwrap();
        let flaky = rt.spawn("flaky", || Flaky).await.unwrap();
        flaky.tell(false).await.unwrap();
        flaky.tell(true).await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while rt.status("flaky").unwrap().restarts == 0 {
            assert!(tokio::time::Instant::now() < deadline, "no restart");
            tokio::task::yield_now().await;
        }
        rt.control("flaky", Control::Status).await.unwrap();
        rt.shutdown().await;
    });
    let names = capture.0.lock().unwrap().clone();
    for expected in [SPAN_HANDLE, SPAN_CONTROL, SPAN_RESTART] {
        assert!(
            names.iter().any(|name| name == expected),
            "no `{expected}` span in {names:?}"
        );
    }
}
