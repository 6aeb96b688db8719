//! `vortex run --metrics-addr` as a real process, with fault injection on, scraped over
//! real HTTP until every documented metric shows what its owner fed it.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vortex::actors::telemetry::metrics::{GPU_METRIC_NAMES, METRIC_NAMES};

/// Counters: some series must be above zero.
const COUNTERS: &[&str] = &[
    "vortex_messages_handled",
    "vortex_actor_restarts",
    "vortex_dead_letters",
    "vortex_control_commands_applied",
];
/// Histograms: some series must have a non-zero `_count`.
const HISTOGRAMS: &[&str] = &[
    "vortex_handler_batch_latency_seconds",
    "vortex_batch_latency_seconds",
    "vortex_preprocess_latency_seconds",
    "vortex_journal_fsync_latency_seconds",
    "vortex_timer_lag_seconds",
];
/// Gauges: some series must be present (any value).
const GAUGES: &[&str] = &[
    "vortex_mailbox_depth",
    "vortex_pool_size",
    "vortex_launcher_data_stall_ratio",
];
/// Fed by the GPU launcher's device sampling (NVML), not by a CPU-only `vortex run`.
const DEVICE_GAUGES: &[&str] = &[
    "vortex_device_utilisation_ratio",
    "vortex_device_memory_used_bytes",
    "vortex_device_memory_total_bytes",
    "vortex_device_temperature_celsius",
];

const DEADLINE: Duration = Duration::from_secs(120);

/// Kills the child when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw).ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_owned())
}

/// Series name (with labels) → value, for every sample line.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

fn series_of<'a>(
    samples: &'a BTreeMap<String, f64>,
    metric: &'a str,
) -> impl Iterator<Item = f64> + 'a {
    samples
        .iter()
        .filter(move |(series, _)| {
            series
                .strip_prefix(metric)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('{'))
        })
        .map(|(_, value)| *value)
}

/// What is still missing from one scrape (empty: all fed).
fn missing(text: &str) -> Vec<String> {
    let samples = samples(text);
    let mut missing = Vec::new();
    for name in COUNTERS {
        if !series_of(&samples, &format!("{name}_total")).any(|v| v > 0.0) {
            missing.push(format!("{name}_total > 0"));
        }
    }
    for name in HISTOGRAMS {
        if !series_of(&samples, &format!("{name}_count")).any(|v| v > 0.0) {
            missing.push(format!("{name}_count > 0"));
        }
    }
    for name in GAUGES {
        if series_of(&samples, name).next().is_none() {
            missing.push(format!("{name} present"));
        }
    }
    missing
}

/// Reads the child's JSON log lines until the exporter reports its bound address.
fn metrics_addr(child: &mut Child) -> SocketAddr {
    let stderr = child.stderr.take().expect("piped stderr");
    let (found, receive) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if sent {
                continue; // keep draining so the child never blocks on a full pipe
            }
            if let Some(rest) = line.split("\"local_addr\":\"").nth(1) {
                if let Some(addr) = rest.split('"').next().and_then(|a| a.parse().ok()) {
                    let _ = found.send(addr);
                    sent = true;
                }
            }
        }
    });
    receive
        .recv_timeout(DEADLINE)
        .expect("the exporter logs its address")
}

#[test]
fn every_documented_metric_is_fed_in_a_running_vortex() {
    // Every name this test checks is a documented name, and every documented name is
    // checked here or named as a device gauge.
    // The `vortex_gpu_*` names come from the NVML monitor, which finds no GPU here.
    let listed: Vec<&str> = [
        COUNTERS,
        HISTOGRAMS,
        GAUGES,
        DEVICE_GAUGES,
        GPU_METRIC_NAMES,
    ]
    .concat();
    let mut sorted_listed = listed.clone();
    sorted_listed.sort_unstable();
    let mut documented = METRIC_NAMES.to_vec();
    documented.sort_unstable();
    assert_eq!(sorted_listed, documented);

    let data_dir = tempfile::tempdir().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_vortex"))
        .args(["--log-json", "run", "--seconds", "300", "--workers", "1"])
        .args(["--metrics-addr", "127.0.0.1:0", "--scale-to", "2"])
        .args(["--poison-every", "50", "--fail-once", "exporter-http"])
        .arg("--data-dir")
        .arg(data_dir.path())
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start vortex run");
    let mut running = Running(child);
    let addr = metrics_addr(&mut running.0);

    let start = Instant::now();
    let mut last = vec!["no scrape yet".to_owned()];
    let mut http_restarted = false;
    while start.elapsed() < DEADLINE {
        assert!(
            running.0.try_wait().unwrap().is_none(),
            "vortex run exited early"
        );
        // `/status` asks every actor for its status: control commands the runtime counts.
        if let Some(status) = get(addr, "/status") {
            let json: serde_json::Value = serde_json::from_str(&status).expect("status is JSON");
            http_restarted |= json["actors"]
                .as_array()
                .expect("actors")
                .iter()
                .any(|a| a["name"] == "exporter-http" && a["restarts"].as_u64() >= Some(1));
        }
        if let Some(text) = get(addr, "/metrics") {
            last = missing(&text);
            if last.is_empty() && http_restarted {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(last.is_empty(), "not fed by the deadline: {last:?}");
    assert!(
        http_restarted,
        "the HTTP server actor was failed once and came back on {addr}"
    );
    assert!(
        std::fs::read_dir(data_dir.path().join("journal"))
            .unwrap()
            .next()
            .is_some(),
        "the journal lives in --data-dir"
    );
}
