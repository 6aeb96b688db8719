//! A real HTTP GET against `/metrics` on an ephemeral loopback port returns the runtime's
//! series after a known workload, with exact counts.

mod support;

use std::{
    io::{Read, Write},
    net::TcpStream,
    time::Duration,
};

use vortex::actors::telemetry::{metrics::METRIC_NAMES, ExporterConfig, RuntimeExporter};
use vortex::prelude::*;

struct Counter;

impl Actor for Counter {
    type Message = bool; // true = fail
    async fn handle(&mut self, fail: bool, _: &mut Context<Self>) -> Result<(), ActorError> {
        if fail {
            return Err("requested failure".into());
        }
        Ok(())
    }
}

fn get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_endpoint_reports_exact_counts_after_a_known_workload() {
    let rt = Runtime::builder()
        .root_backoff(Backoff::none())
        .build()
        .unwrap();
    let counter = rt.spawn("counter", || Counter).await.unwrap();
    let pool = rt.spawn_pool("workers", 3, || Counter).await.unwrap();
    for _ in 0..42 {
        counter.tell(false).await.unwrap();
    }
    counter.tell(true).await.unwrap(); // one failure: a dead letter and a restart
    for _ in 0..7 {
        pool.tell(false).await.unwrap();
    }
    support::wait_until("workload done", Duration::from_secs(10), || {
        counter.handled() == 42
            && pool.handled() == 7
            && rt.status("counter").unwrap().restarts == 1
    })
    .await;
    let config = ExporterConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        ..ExporterConfig::default()
    };
    let exporter = RuntimeExporter::start(&rt, config, Duration::from_secs(3600))
        .await
        .unwrap();
    exporter.sample_now().await;
    let addr = exporter.local_addr();
    let body = tokio::task::spawn_blocking(move || get(addr, "/metrics"))
        .await
        .unwrap();
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    for line in [
        r#"vortex_messages_handled_total{actor="counter"} 42"#,
        r#"vortex_messages_handled_total{actor="workers"} 7"#,
        r#"vortex_actor_restarts_total{actor="counter"} 1"#,
        r#"vortex_dead_letters_total{actor="counter"} 1"#,
        r#"vortex_pool_size{pool="workers"} 3"#,
        r#"vortex_mailbox_depth{actor="counter"} 0"#,
        r#"vortex_handler_latency_seconds_count{actor="counter"} 42"#,
    ] {
        assert!(
            body.lines().any(|l| l == line),
            "missing `{line}` in:\n{body}"
        );
    }
    for name in [
        "vortex_messages_handled",
        "vortex_actor_restarts",
        "vortex_pool_size",
    ] {
        assert!(METRIC_NAMES.contains(&name));
        assert!(
            body.contains(&format!("# TYPE {name} ")),
            "missing family {name}"
        );
    }
    // Sampling is idempotent: counters do not double.
    exporter.sample_now().await;
    let again = tokio::task::spawn_blocking(move || get(addr, "/metrics"))
        .await
        .unwrap();
    assert!(again
        .lines()
        .any(|l| l == r#"vortex_messages_handled_total{actor="counter"} 42"#));
    let health = tokio::task::spawn_blocking(move || get(addr, "/healthz"))
        .await
        .unwrap();
    assert!(
        health.starts_with("HTTP/1.1 200") && health.ends_with("ok"),
        "{health}"
    );
    exporter.shutdown().await.unwrap();
    rt.shutdown().await;
}
