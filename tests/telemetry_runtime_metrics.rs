//! A real HTTP GET against `/metrics` on an ephemeral loopback port returns the runtime's
//! series after a known workload, with exact counts.

mod support;

use std::{
    io::{Read, Write},
    net::TcpStream,
    time::Duration,
};

use vortex::actors::telemetry::{
    encode_text, metrics::METRIC_NAMES, ExporterConfig, MetricsSink, Registry, RuntimeExporter,
    RuntimeSampler,
};
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
    ] {
        assert!(
            body.lines().any(|l| l == line),
            "missing `{line}` in:\n{body}"
        );
    }
    // One sample per batch drain: at least one drain, at most one per message.
    let drains = value(
        &body,
        r#"vortex_handler_batch_latency_seconds_count{actor="counter"}"#,
    );
    assert!((1.0..=43.0).contains(&drains), "{drains}");
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

/// The value of the sample line starting with `series` (0 when absent).
fn value(body: &str, series: &str) -> f64 {
    body.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

fn exporter_config() -> ExporterConfig {
    ExporterConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        ..ExporterConfig::default()
    }
}

async fn scrape(addr: std::net::SocketAddr, path: &'static str) -> String {
    tokio::task::spawn_blocking(move || get(addr, path))
        .await
        .unwrap()
}

/// Sleeps as long as it is told, so that drains of one message have known times.
struct Sleeper;

impl Actor for Sleeper {
    type Message = (u64, Reply<()>);
    async fn handle(
        &mut self,
        (millis, reply): (u64, Reply<()>),
        _: &mut Context<Self>,
    ) -> Result<(), ActorError> {
        if millis > 0 {
            tokio::time::sleep(Duration::from_millis(millis)).await;
        }
        reply.send(());
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_latency_is_a_true_distribution_of_batch_drains() {
    let rt = Runtime::builder().build().unwrap();
    let sleeper = rt.spawn("sleeper", || Sleeper).await.unwrap();
    // One message at a time: each ask waits for its answer, then for its drain to be
    // recorded (the answer comes before the drain ends), so every drain is one message.
    let observer = rt.observer();
    let drains = || {
        observer
            .samples()
            .iter()
            .find(|s| s.status.name == "sleeper")
            .map_or(0, |s| s.handler_batches.count())
    };
    for (done, millis) in [0, 0, 0, 250, 250].into_iter().enumerate() {
        sleeper.ask(|reply| (millis, reply)).await.unwrap();
        support::wait_until("the drain recorded", Duration::from_secs(10), || {
            drains() == done as u64 + 1
        })
        .await;
    }
    let exporter = RuntimeExporter::start(&rt, exporter_config(), Duration::from_secs(3600))
        .await
        .unwrap();
    exporter.sample_now().await;
    let body = scrape(exporter.local_addr(), "/metrics").await;
    let bucket = |le: &str| {
        value(
            &body,
            &format!(r#"vortex_handler_batch_latency_seconds_bucket{{le="{le}",actor="sleeper"}}"#),
        )
    };
    assert_eq!(
        value(
            &body,
            r#"vortex_handler_batch_latency_seconds_count{actor="sleeper"}"#
        ),
        5.0
    );
    // Three fast drains (no sleep) within 100 ms, two slow ones above 250 ms. At their
    // mean (over 100 ms) all five would sit in one bucket above 0.1.
    assert_eq!(bucket("0.1"), 3.0, "{body}");
    assert_eq!(bucket("0.25"), 3.0, "{body}");
    assert_eq!(bucket("+Inf"), 5.0, "{body}");
    exporter.shutdown().await.unwrap();
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_keep_rising_when_a_name_is_reused_after_stop() {
    let rt = Runtime::builder().build().unwrap();
    let exporter = RuntimeExporter::start(&rt, exporter_config(), Duration::from_secs(3600))
        .await
        .unwrap();
    let first = rt.spawn("reused", || Counter).await.unwrap();
    for _ in 0..5 {
        first.tell(false).await.unwrap();
    }
    support::wait_until("five handled", Duration::from_secs(10), || {
        first.handled() == 5
    })
    .await;
    exporter.sample_now().await;
    rt.control("reused", Control::Stop).await.unwrap();
    support::wait_until("name released", Duration::from_secs(10), || {
        rt.status("reused").is_err()
    })
    .await;
    let second = rt.spawn("reused", || Counter).await.unwrap();
    for _ in 0..3 {
        second.tell(false).await.unwrap();
    }
    support::wait_until("three handled", Duration::from_secs(10), || {
        second.handled() == 3
    })
    .await;
    exporter.sample_now().await;
    let body = scrape(exporter.local_addr(), "/metrics").await;
    assert_eq!(
        value(&body, r#"vortex_messages_handled_total{actor="reused"}"#),
        8.0,
        "{body}"
    );
    // The runtime counted the commands: the Stop above, with its outcome.
    assert_eq!(
        value(
            &body,
            r#"vortex_control_commands_applied_total{actor="reused",command="stop",outcome="ok"}"#
        ),
        1.0,
        "{body}"
    );
    exporter.shutdown().await.unwrap();
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn series_of_vanished_actors_are_removed_after_the_grace_period() {
    let rt = Runtime::builder().build().unwrap();
    let gone = rt.spawn("gone", || Counter).await.unwrap();
    gone.tell(false).await.unwrap();
    support::wait_until("handled", Duration::from_secs(10), || gone.handled() == 1).await;
    let mut registry = Registry::default();
    let sink = MetricsSink::register(&mut registry);
    let grace = Duration::from_secs(60);
    let mut sampler = RuntimeSampler::new(sink).series_grace(grace);
    let observer = rt.observer();
    let t0 = tokio::time::Instant::now();
    rt.control("gone", Control::Pause).await.unwrap();
    sampler.apply(&observer.samples(), &observer.control_counts(), t0);
    let series = |registry: &Registry| {
        encode_text(registry)
            .unwrap()
            .lines()
            .filter(|line| line.contains(r#"actor="gone""#))
            .count()
    };
    assert!(series(&registry) > 0);
    rt.control("gone", Control::Stop).await.unwrap();
    support::wait_until("name released", Duration::from_secs(10), || {
        rt.status("gone").is_err()
    })
    .await;
    // Within the grace the last values stay; past it every series of `gone` goes.
    sampler.apply(&observer.samples(), &observer.control_counts(), t0 + grace);
    assert!(series(&registry) > 0);
    assert_eq!(sampler.tracked(), 1);
    sampler.apply(
        &observer.samples(),
        &observer.control_counts(),
        t0 + grace * 2 + Duration::from_secs(1),
    );
    assert_eq!(series(&registry), 0, "{}", encode_text(&registry).unwrap());
    assert_eq!(sampler.tracked(), 0);
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sampler_and_server_actors_come_back_on_the_same_address() {
    let rt = Runtime::builder().build().unwrap();
    let counter = rt.spawn("counter", || Counter).await.unwrap();
    for _ in 0..42 {
        counter.tell(false).await.unwrap();
    }
    support::wait_until("handled", Duration::from_secs(10), || {
        counter.handled() == 42
    })
    .await;
    let exporter = RuntimeExporter::start(&rt, exporter_config(), Duration::from_secs(3600))
        .await
        .unwrap();
    let addr = exporter.local_addr();
    exporter.sample_now().await;
    for name in exporter.actor_names() {
        rt.inject_failure(&name, "drill").await.unwrap();
        support::wait_until("restarted and running", Duration::from_secs(10), || {
            rt.status(&name)
                .is_ok_and(|s| s.restarts == 1 && s.state == ActorState::Running)
        })
        .await;
    }
    exporter.sample_now().await;
    let body = scrape(addr, "/metrics").await;
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    // The restarted sampler kept its baselines: nothing is counted twice.
    assert_eq!(
        value(&body, r#"vortex_messages_handled_total{actor="counter"}"#),
        42.0
    );
    assert_eq!(
        value(
            &body,
            r#"vortex_actor_restarts_total{actor="exporter-http"}"#
        ),
        1.0
    );
    // `/status`: every actor's report (with its describe detail) and the resource groups.
    let status = scrape(addr, "/status").await;
    let (head, json) = status.split_once("\r\n\r\n").unwrap();
    assert!(head.contains("application/json"), "{head}");
    let json: serde_json::Value = serde_json::from_str(json).unwrap();
    let actors = json["actors"].as_array().unwrap();
    let http = actors
        .iter()
        .find(|a| a["name"] == "exporter-http")
        .unwrap();
    assert_eq!(http["detail"], format!("addr={addr}"));
    assert!(actors
        .iter()
        .any(|a| a["name"] == "counter" && a["handled"] == 42));
    assert!(json["resource_groups"].is_array());
    exporter.shutdown().await.unwrap();
    assert!(
        TcpStream::connect(addr).is_err(),
        "the port is closed after shutdown"
    );
    rt.shutdown().await;
}
