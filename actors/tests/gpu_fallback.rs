//! What happens without a GPU — the path every machine without NVIDIA hardware takes, and
//! CI's: NVML absence is reported as "no GPUs" (also in `Status`), and device discovery
//! falls back to CPU devices, saying so once with its reason.
//!
//! The NVML tests load NVML from a path that does not exist, so they exercise the absence
//! path on GPU machines too.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use tracing_subscriber::layer::SubscriberExt;
use vortex_actors::{
    launcher::{
        cuda_devices, cuda_or_cpu, ComputeDevice, CpuDevice, NoCudaDevice, DEFAULT_CHUNK_ROWS,
    },
    nvml::{GpuQueryError, GpuRef, NvmlConfig, NvmlHandle},
};
use vortex_messages::{Control, ControlReply};
use vortex_runtime::{resource_group::ResourceGroup, Runtime};

const MISSING_LIBRARY: &str = "/nonexistent/vortex-test/libnvidia-ml.so.1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nvml_absence_answers_no_gpus_and_status_says_so() {
    let rt = Runtime::builder().build().unwrap();
    let nvml = NvmlHandle::spawn(&rt, NvmlConfig::new("nvml").library(MISSING_LIBRARY))
        .await
        .unwrap();
    let inventory = nvml.inventory().await;
    assert!(
        matches!(&inventory, Err(GpuQueryError::Unavailable(_))),
        "{inventory:?}"
    );
    assert!(inventory.unwrap_err().to_string().starts_with("no GPUs"));
    assert!(matches!(
        nvml.sample(GpuRef::Index(0)).await,
        Err(GpuQueryError::Unavailable(_))
    ));
    assert!(matches!(
        nvml.cpu_affinity(GpuRef::Uuid("GPU-0".into())).await,
        Err(GpuQueryError::Unavailable(_))
    ));
    let reply = tokio::time::timeout(Duration::from_secs(5), rt.control("nvml", Control::Status))
        .await
        .expect("status in time")
        .unwrap();
    let ControlReply::Status(status) = reply else {
        panic!("not a status reply: {reply:?}");
    };
    assert!(
        status.detail.starts_with("no GPUs (NVML unavailable"),
        "{}",
        status.detail
    );
    // The monitor carries on: it still answers after the failure.
    assert!(nvml.inventory().await.is_err());
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_nvml_lists_gpus_or_reports_unavailable() {
    let rt = Runtime::builder().build().unwrap();
    let nvml = NvmlHandle::spawn(&rt, NvmlConfig::new("nvml").sample_every(None))
        .await
        .unwrap();
    match nvml.inventory().await {
        Err(GpuQueryError::Unavailable(why)) => eprintln!("no NVML here: {why}"),
        Ok(inventory) => {
            for gpu in &inventory.gpus {
                let sample = nvml.sample(GpuRef::Uuid(gpu.uuid.clone())).await.unwrap();
                assert_eq!(sample.device, gpu.index);
                assert_eq!(sample.memory_total_bytes, gpu.memory_total_bytes);
                assert!(sample.memory_used_bytes <= sample.memory_total_bytes);
                eprintln!("{}: {sample:?}", gpu.name);
            }
            assert!(matches!(
                nvml.sample(GpuRef::Uuid("GPU-not-a-gpu".into())).await,
                Err(GpuQueryError::UnknownGpu(_))
            ));
        }
        Err(other) => panic!("{other}"),
    }
    rt.shutdown().await;
}

/// Counts WARN events whose message mentions "falling back".
struct FallbackCounter(Arc<AtomicUsize>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for FallbackCounter {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Message(bool);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" && format!("{value:?}").contains("falling back") {
                    self.0 = true;
                }
            }
        }
        let mut message = Message(false);
        event.record(&mut message);
        if message.0 && *event.metadata().level() == tracing::Level::WARN {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[test]
fn discovery_without_cuda_falls_back_to_cpu_devices_and_says_so_once() {
    let discovered = cuda_devices(4, DEFAULT_CHUNK_ROWS, None);
    if let Ok(devices) = &discovered {
        eprintln!(
            "SKIPPED: {} CUDA device(s) present, no fallback to test",
            devices.len()
        );
        return;
    }
    let reason = discovered.as_ref().unwrap_err().clone();
    if cfg!(feature = "cuda-backend") {
        assert!(
            matches!(
                reason,
                NoCudaDevice::Unavailable(_) | NoCudaDevice::NoDevices
            ),
            "{reason}"
        );
    } else {
        assert_eq!(reason, NoCudaDevice::NotBuilt);
        assert!(reason.to_string().contains("--features cuda"));
    }
    let warnings = Arc::new(AtomicUsize::new(0));
    let subscriber = tracing_subscriber::registry().with(FallbackCounter(Arc::clone(&warnings)));
    let group = Arc::new(ResourceGroup::new("fallback", 1, None).unwrap());
    let devices = tracing::subscriber::with_default(subscriber, || {
        cuda_or_cpu(discovered, 3, |index| {
            ComputeDevice::Cpu(CpuDevice::new(
                index,
                Arc::clone(&group),
                1 << 20,
                Duration::from_millis(100),
            ))
        })
    });
    let labels: Vec<&str> = devices.iter().map(ComputeDevice::label).collect();
    assert_eq!(labels, ["cpu:0", "cpu:1", "cpu:2"]);
    assert_eq!(
        warnings.load(Ordering::SeqCst),
        1,
        "the fallback is said exactly once"
    );
}
