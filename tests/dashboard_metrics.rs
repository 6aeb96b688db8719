//! `deploy/grafana-dashboard.json` queries only metrics the runtime exposes: every
//! `vortex_*` series in a panel or variable query is a family in `METRIC_NAMES`, with the
//! sample suffix its type has in the exposition (`_total` for counters, `_bucket`,
//! `_sum` or `_count` for histograms, none for gauges), grouped only by labels the
//! runtime attaches. And the dashboard covers what the README promises it shows.

use std::collections::{BTreeMap, BTreeSet};

use std::time::Duration;
use vortex::actors::telemetry::metrics::{self, METRIC_NAMES};

use vortex::actors::telemetry::{encode_text, MetricsSink, Registry};
use vortex::messages::telemetry::{
    BatchFinished, DeviceSampled, GpuSampled, JournalFsynced, LauncherSampled, TelemetryEvent,
    TimerLagged,
};

const DASHBOARD: &str = include_str!("../deploy/grafana-dashboard.json");

/// Every string under a key named `expr`, `query` or `definition`, anywhere.
fn queries(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("expr" | "query" | "definition", serde_json::Value::String(text)) => {
                        out.push(text.clone())
                    }
                    _ => queries(value, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|item| queries(item, out)),
        _ => {}
    }
}

/// The `vortex_*` identifiers in a PromQL expression.
fn series(expr: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = expr;
    while let Some(start) = rest.find("vortex_") {
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        found.push(tail[..end].to_owned());
        rest = &tail[end..];
    }
    found
}

/// Labels named in `by (...)` clauses.
fn grouping_labels(expr: &str) -> Vec<String> {
    let mut labels = Vec::new();
    let mut rest = expr;
    while let Some(start) = rest.find("by (") {
        let tail = &rest[start + 4..];
        let end = tail.find(')').expect("closed by clause");
        labels.extend(tail[..end].split(',').map(|label| label.trim().to_owned()));
        rest = &tail[end..];
    }
    labels
}

/// Gives every family a series (an empty family prints no `# TYPE` line).
fn touch_every_metric(sink: &MetricsSink) {
    let actor = sink.actor("a");
    actor.message_handled(Duration::from_micros(30));
    actor.set_mailbox_depth(3);
    actor.restarted();
    actor.dead_lettered();
    sink.pool("preprocess").set_size(4);
    // The runtime's control counts feed this counter (through the sampler).
    sink.control_applied("a", "pause", true).inc();
    let events: [TelemetryEvent; 6] = [
        BatchFinished {
            at_micros: 1,
            batch_id: 1,
            device: 0,
            items: 32,
            preprocess_micros: 200,
            execute_micros: 900,
            queue_wait_micros: 50,
            copy_micros: 30,
            bytes: 4096,
        }
        .into(),
        JournalFsynced {
            at_micros: 1,
            segment: 0,
            bytes: 4096,
            latency_micros: 700,
        }
        .into(),
        TimerLagged {
            at_micros: 1,
            timer_id: 9,
            target: "a".into(),
            lag_micros: 1_500,
        }
        .into(),
        GpuSampled {
            at_micros: 1,
            device: 0,
            uuid: "GPU-1".into(),
            utilisation_percent: 75.0,
            memory_bus_busy_percent: 25.0,
            memory_used_bytes: 3 << 30,
            memory_free_bytes: 1 << 30,
            memory_total_bytes: 4 << 30,
            temperature_celsius: 61.0,
            power_watts: 250.5,
            power_limit_watts: 700.0,
            sm_clock_mhz: 1980.0,
            memory_clock_mhz: 2619.0,
            throttle_reasons: Some(0x4),
            energy_millijoules: Some(1_500),
        }
        .into(),
        DeviceSampled {
            at_micros: 1,
            device: 0,
            utilisation_percent: 50.0,
            memory_used_bytes: 10,
            memory_total_bytes: 20,
            temperature_celsius: 60.0,
        }
        .into(),
        LauncherSampled {
            at_micros: 1,
            device: 0,
            launcher: "launcher-0".into(),
            data_stall_ratio: 0.25,
            queued: 2,
            in_rotation: true,
        }
        .into(),
    ];
    for event in &events {
        sink.observe(event);
    }
}

/// Family name → type, from the `# TYPE` lines of a real exposition.
fn exposed_types() -> BTreeMap<String, String> {
    let mut registry = Registry::default();
    let sink = MetricsSink::register(&mut registry);
    touch_every_metric(&sink);
    let text = encode_text(&registry).expect("encode");
    text.lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .map(|rest| {
            let mut words = rest.split_whitespace();
            let name = words.next().expect("name").to_owned();
            (name, words.next().expect("type").to_owned())
        })
        .collect()
}

#[test]
fn every_queried_metric_is_a_documented_metric_with_its_exposed_suffix() {
    let dashboard: serde_json::Value = serde_json::from_str(DASHBOARD).expect("valid JSON");
    let mut exprs = Vec::new();
    queries(&dashboard, &mut exprs);
    assert!(exprs.len() >= 15, "only {} queries found", exprs.len());
    let types = exposed_types();
    let allowed_labels: BTreeSet<&str> = [
        "actor", "pool", "device", "command", "outcome", "le", "instance", "job",
    ]
    .into();
    let mut used = BTreeSet::new();
    for expr in &exprs {
        for name in series(expr) {
            let (family, suffix) = METRIC_NAMES
                .iter()
                .filter_map(|family| name.strip_prefix(family).map(|suffix| (*family, suffix)))
                .max_by_key(|(family, _)| family.len())
                .unwrap_or_else(|| panic!("`{name}` in `{expr}` is not in METRIC_NAMES"));
            let kind = types
                .get(family)
                .unwrap_or_else(|| panic!("{family} is not exposed"));
            let ok = match kind.as_str() {
                "counter" => suffix == "_total",
                "histogram" => ["_bucket", "_sum", "_count"].contains(&suffix),
                "gauge" => suffix.is_empty(),
                other => panic!("unexpected type {other} for {family}"),
            };
            assert!(
                ok,
                "`{name}` in `{expr}`: a {kind} has no sample `{suffix}`"
            );
            used.insert(family);
        }
        for label in grouping_labels(expr) {
            assert!(
                allowed_labels.contains(label.as_str()),
                "`{expr}` groups by `{label}`, a label the runtime never attaches"
            );
        }
    }
    // What the dashboard promises to show.
    for family in [
        metrics::BATCH_LATENCY_SECONDS, // throughput (its count's rate) and latency
        metrics::MESSAGES_HANDLED,
        metrics::LAUNCHER_DATA_STALL_RATIO,
        metrics::MAILBOX_DEPTH,
        metrics::ACTOR_RESTARTS,
        metrics::DEAD_LETTERS,
        metrics::JOURNAL_FSYNC_LATENCY_SECONDS,
        metrics::TIMER_LAG_SECONDS,
    ] {
        assert!(
            used.contains(family),
            "the dashboard does not show {family}"
        );
    }
}

#[test]
fn the_checker_rejects_an_unknown_metric_and_a_wrong_suffix() {
    // The helpers the test above relies on find what they must.
    assert_eq!(
        series("sum(rate(vortex_dead_letters_total{a=\"b\"}[1m])) / vortex_pool_size"),
        vec!["vortex_dead_letters_total", "vortex_pool_size"]
    );
    assert_eq!(
        grouping_labels("sum by (le, actor) (x)"),
        vec!["le".to_owned(), "actor".to_owned()]
    );
    assert!(!METRIC_NAMES
        .iter()
        .any(|family| "vortex_no_such_metric".starts_with(family)));
    let types = exposed_types();
    assert_eq!(types.len(), METRIC_NAMES.len(), "{types:?}");
    assert_eq!(types[metrics::DEAD_LETTERS], "counter");
    assert_eq!(types[metrics::TIMER_LAG_SECONDS], "histogram");
    assert_eq!(types[metrics::MAILBOX_DEPTH], "gauge");
}
