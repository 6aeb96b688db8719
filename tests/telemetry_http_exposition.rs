//! Real HTTP against the exporter on an ephemeral loopback port, with a raw
//! `TcpStream` client.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use vortex::actors::telemetry::metrics::METRIC_NAMES;
use vortex::actors::telemetry::Registry;
use vortex::actors::telemetry::{
    BatchFinished, ExporterConfig, JournalFsynced, MetricsServer, MetricsSink, TelemetryEvent,
    TelemetryHub, OPENMETRICS_CONTENT_TYPE,
};

const DEADLINE: Duration = Duration::from_secs(10);

struct Reply {
    status: u16,
    head: String,
    body: String,
}

/// Sends `request` bytes as they are and reads the whole response (the server closes).
async fn exchange(addr: SocketAddr, request: &[u8]) -> Reply {
    send(addr, request, false).await
}

/// Writes `request`, optionally closes the write side, reads the whole response.
async fn send(addr: SocketAddr, request: &[u8], half_close: bool) -> Reply {
    let io = async {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream.write_all(request).await.expect("write request");
        if half_close {
            stream.shutdown().await.expect("half-close");
        }
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.expect("read response");
        raw
    };
    let raw = timeout(DEADLINE, io)
        .await
        .expect("response within deadline");
    let text = String::from_utf8(raw).expect("utf-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
    // Header names are case-insensitive (hyper writes them in lower case).
    let head = head.to_ascii_lowercase();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("status code");
    Reply {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

async fn get(addr: SocketAddr, path: &str) -> Reply {
    exchange(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes(),
    )
    .await
}

async fn start() -> (MetricsServer, MetricsSink, TelemetryHub) {
    let mut registry = Registry::default();
    let sink = MetricsSink::register(&mut registry);
    let config = ExporterConfig {
        addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        ..ExporterConfig::default()
    };
    let server = MetricsServer::bind(config, Arc::new(registry))
        .await
        .expect("bind");
    assert_ne!(
        server.local_addr().port(),
        0,
        "port 0 reports the bound port"
    );
    (server, sink, TelemetryHub::new(1024))
}

#[tokio::test]
async fn metrics_report_an_exact_known_workload() {
    let (server, sink, hub) = start().await;
    let addr = server.local_addr();

    // Runtime side: lock-free handles, resolved once per actor and pool.
    let a = sink.actor("a");
    for _ in 0..42 {
        a.message_handled(Duration::from_micros(40));
    }
    a.set_mailbox_depth(7);
    let b = sink.actor("b");
    for _ in 0..3 {
        b.restarted();
    }
    b.dead_lettered();
    sink.pool("preprocess").set_size(4);

    // Event side: the telemetry actor's consumer feeds event-derived metrics.
    let consumer = tokio::spawn(sink.clone().consume(hub.subscribe()));
    for batch_id in 0..5 {
        hub.publish(TelemetryEvent::from(BatchFinished {
            at_micros: 1,
            batch_id,
            device: 1,
            items: 64,
            preprocess_micros: 300,
            execute_micros: 2_000,
            queue_wait_micros: 0,
            copy_micros: 0,
            bytes: 0,
        }));
    }
    hub.publish(
        JournalFsynced {
            at_micros: 1,
            segment: 3,
            bytes: 512,
            latency_micros: 800,
        }
        .into(),
    );
    drop(hub);
    timeout(DEADLINE, consumer)
        .await
        .expect("consumer drains")
        .expect("consumer task");

    let reply = get(addr, "/metrics").await;
    assert_eq!(reply.status, 200);
    assert!(
        reply
            .head
            .contains(&format!("content-type: {OPENMETRICS_CONTENT_TYPE}")),
        "{}",
        reply.head
    );
    assert!(reply
        .head
        .contains(&format!("content-length: {}", reply.body.len())));
    for line in [
        r#"vortex_messages_handled_total{actor="a"} 42"#,
        r#"vortex_handler_batch_latency_seconds_count{actor="a"} 42"#,
        r#"vortex_handler_batch_latency_seconds_bucket{le="0.00005",actor="a"} 42"#,
        r#"vortex_handler_batch_latency_seconds_bucket{le="0.000025",actor="a"} 0"#,
        r#"vortex_mailbox_depth{actor="a"} 7"#,
        r#"vortex_actor_restarts_total{actor="b"} 3"#,
        r#"vortex_actor_restarts_total{actor="a"} 0"#,
        r#"vortex_dead_letters_total{actor="b"} 1"#,
        r#"vortex_pool_size{pool="preprocess"} 4"#,
        r#"vortex_batch_latency_seconds_count{device="1"} 5"#,
        r#"vortex_batch_latency_seconds_sum{device="1"} 0.01"#,
        r#"vortex_preprocess_latency_seconds_count{device="1"} 5"#,
        r#"vortex_journal_fsync_latency_seconds_count 1"#,
        "# EOF",
    ] {
        assert!(
            reply.body.lines().any(|l| l == line),
            "missing `{line}` in:\n{}",
            reply.body
        );
    }
    // Only the crate's own names, all with the prefix.
    for line in reply.body.lines().filter(|l| l.starts_with("# TYPE ")) {
        let name = line.split_whitespace().nth(2).expect("name");
        assert!(METRIC_NAMES.contains(&name), "unexpected family {name}");
    }

    timeout(DEADLINE, server.shutdown())
        .await
        .expect("shutdown in time")
        .expect("clean shutdown");
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "listener closed after shutdown"
    );
}

#[tokio::test]
async fn health_unknown_paths_methods_and_bad_requests() {
    let (server, _sink, _hub) = start().await;
    let addr = server.local_addr();

    let health = get(addr, "/healthz").await;
    assert_eq!((health.status, health.body.as_str()), (200, "ok"));

    assert_eq!(get(addr, "/nope").await.status, 404);
    assert_eq!(get(addr, "/").await.status, 404);

    let post = exchange(addr, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n").await;
    assert_eq!(post.status, 405);
    assert!(post.head.contains("allow: get, head"), "{}", post.head);

    let head = exchange(addr, b"HEAD /metrics HTTP/1.1\r\n\r\n").await;
    assert_eq!((head.status, head.body.as_str()), (200, ""));

    for malformed in [
        &b"BLAH\r\n\r\n"[..],
        b"GET /metrics\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\n\xff\xfe: x\r\n\r\n",
    ] {
        let reply = exchange_half_closed(addr, malformed).await;
        assert_eq!(
            reply.status,
            400,
            "{:?}",
            String::from_utf8_lossy(malformed)
        );
    }

    // A head cut off by the client's EOF owes no answer: the server just closes.
    let mut cut = TcpStream::connect(addr).await.unwrap();
    cut.write_all(b"GET /metrics HTTP/1.1\r\nHost: x")
        .await
        .unwrap();
    cut.shutdown().await.unwrap();
    let mut raw = Vec::new();
    timeout(DEADLINE, cut.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    assert!(raw.is_empty(), "{}", String::from_utf8_lossy(&raw));

    // 64 KiB of headers against an 8 KiB limit: refused without reading it all.
    let mut huge = b"GET /metrics HTTP/1.1\r\n".to_vec();
    while huge.len() < 64 * 1024 {
        huge.extend_from_slice(
            b"X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n",
        );
    }
    huge.extend_from_slice(b"\r\n");
    assert_eq!(exchange(addr, &huge).await.status, 431);

    // The server is still healthy after all of that.
    assert_eq!(get(addr, "/healthz").await.status, 200);
    timeout(DEADLINE, server.shutdown())
        .await
        .expect("shutdown in time")
        .expect("clean shutdown");
}

/// Like `exchange`, but closes the write side after the request so that a head
/// without its blank line ends at EOF instead of waiting for the header timeout.
async fn exchange_half_closed(addr: SocketAddr, request: &[u8]) -> Reply {
    send(addr, request, true).await
}

#[tokio::test(start_paused = true)]
async fn a_silent_client_is_disconnected_after_the_header_timeout() {
    let (server, _sink, _hub) = start().await;
    // Paused time auto-advances while every task is idle, so the 5 s timeout
    // elapses without a real wait; the server closes without an answer.
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\n")
        .await
        .unwrap();
    let mut raw = Vec::new();
    let read = timeout(Duration::from_secs(60), stream.read_to_end(&mut raw)).await;
    assert!(read.is_ok(), "closed by the header timeout");
    assert!(!String::from_utf8_lossy(&raw).contains("200 OK"));
}

#[tokio::test]
async fn an_absolute_form_target_is_routed_by_its_path() {
    let (server, _sink, _hub) = start().await;
    let addr = server.local_addr();
    let request = format!("GET http://{addr}/healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let reply = exchange(addr, request.as_bytes()).await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "ok"));
    let request = format!("GET http://{addr}/metrics?x=1 HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    assert_eq!(exchange(addr, request.as_bytes()).await.status, 200);
    // Without a runtime to ask there is no `/status`.
    assert_eq!(get(addr, "/status").await.status, 404);
}

/// Idle clients that never send a head hold no slot a scraper needs: at the limit the
/// oldest of them is shed. The header timeout is far away, so only shedding can let
/// the scrapes through in time.
#[tokio::test]
async fn idle_clients_cannot_exhaust_the_connection_limit() {
    let config = ExporterConfig {
        addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        max_connections: 2,
        header_timeout: Duration::from_secs(3600),
        ..ExporterConfig::default()
    };
    let mut registry = Registry::default();
    let _sink = MetricsSink::register(&mut registry);
    let server = MetricsServer::bind(config, Arc::new(registry))
        .await
        .unwrap();
    let addr = server.local_addr();
    let mut idle = Vec::new();
    for _ in 0..6 {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    for _ in 0..3 {
        let reply = get(addr, "/healthz").await;
        assert_eq!((reply.status, reply.body.as_str()), (200, "ok"));
    }
    // A slow client that sends its head in pieces is answered too.
    let mut slow = TcpStream::connect(addr).await.unwrap();
    for piece in [&b"GET /hea"[..], b"lthz HTTP/1.1\r\nHo", b"st: x\r\n\r\n"] {
        slow.write_all(piece).await.unwrap();
        tokio::task::yield_now().await;
    }
    let mut raw = Vec::new();
    timeout(DEADLINE, slow.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&raw).starts_with("HTTP/1.1 200"));
    drop(idle);
    timeout(DEADLINE, server.shutdown()).await.unwrap().unwrap();
}
