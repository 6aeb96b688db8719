//! Fixtures for the launcher tests: CPU devices on their own small groups, kernels that
//! fail, panic or wait on command, a two-launcher rig behind a router, and a collector
//! that waits (with a deadline) until every batch is finished or dead-lettered.
#![allow(dead_code, unreachable_pub)]

use std::{
    sync::{
        atomic::{AtomicBool, Ordering::SeqCst},
        mpsc as std_mpsc, Arc, Mutex,
    },
    time::Duration,
};

use tokio::sync::mpsc;
use vortex::actors::launcher::{
    ComputeDevice, CpuDevice, CpuLaunch, FaultBudget, Kernel, KernelError, Launcher,
    LauncherConfig, LauncherHandle, MlpKernel, Router, ScoreWeights,
};
use vortex::messages::pipeline::{DType, FinishedBatch, PreparedBatch};
use vortex::runtime::{resource_group::ResourceGroup, Runtime};

/// Features per item of every test batch.
pub const FEATURES: usize = 16;

/// A CPU device on its own one-thread group.
pub fn cpu_device(index: u32) -> ComputeDevice {
    let group = ResourceGroup::new(format!("test-device-{index}"), 1, None).expect("group");
    ComputeDevice::Cpu(CpuDevice::new(
        index,
        Arc::new(group),
        64 << 20,
        Duration::from_millis(50),
    ))
}

/// A prepared batch of two items of [`FEATURES`] f32 values.
pub fn batch(id: u64) -> PreparedBatch {
    let values: Vec<f32> = (0..2 * FEATURES)
        .map(|i| (i as f32 + id as f32) / 40.0)
        .collect();
    PreparedBatch {
        id,
        items: 2,
        dtype: DType::F32,
        shape: vec![2, FEATURES as u32],
        data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        created_at_micros: 0,
    }
}

/// The MLP, except that it fails while `fail` is set and panics once when `panic` is set.
pub struct FlakyKernel {
    mlp: MlpKernel,
    pub fail: Arc<AtomicBool>,
    pub panic: Arc<AtomicBool>,
}

impl FlakyKernel {
    pub fn new(failing: bool) -> Self {
        FlakyKernel {
            mlp: MlpKernel::seeded(FEATURES, 8, 3, 1),
            fail: Arc::new(AtomicBool::new(failing)),
            panic: Arc::new(AtomicBool::new(false)),
        }
    }
}

impl Kernel for FlakyKernel {
    fn name(&self) -> &str {
        "flaky"
    }
    fn input_features(&self) -> usize {
        self.mlp.input_features()
    }
    fn output_features(&self) -> usize {
        self.mlp.output_features()
    }
    fn run_cpu(&self, launch: CpuLaunch<'_>) -> Result<(), KernelError> {
        if self.panic.swap(false, SeqCst) {
            panic!("test kernel panicked on purpose");
        }
        if self.fail.load(SeqCst) {
            return Err(KernelError::Failed {
                kernel: "flaky".into(),
                reason: "injected launch failure".into(),
            });
        }
        self.mlp.run_cpu(launch)
    }
}

/// The MLP, but each launch first waits for one permit from the test.
pub struct GatedKernel {
    mlp: MlpKernel,
    permits: Mutex<std_mpsc::Receiver<()>>,
}

impl GatedKernel {
    pub fn new() -> (Self, std_mpsc::Sender<()>) {
        let (permit, permits) = std_mpsc::channel();
        let kernel = GatedKernel {
            mlp: MlpKernel::seeded(FEATURES, 8, 3, 1),
            permits: Mutex::new(permits),
        };
        (kernel, permit)
    }
}

impl Kernel for GatedKernel {
    fn name(&self) -> &str {
        "gated"
    }
    fn input_features(&self) -> usize {
        self.mlp.input_features()
    }
    fn output_features(&self) -> usize {
        self.mlp.output_features()
    }
    fn run_cpu(&self, launch: CpuLaunch<'_>) -> Result<(), KernelError> {
        // A closed channel (the test ended) lets the launch through.
        let _ = self
            .permits
            .lock()
            .expect("permits")
            .recv_timeout(Duration::from_secs(30));
        self.mlp.run_cpu(launch)
    }
}

/// Launchers behind a router, finishing into a channel.
pub struct Rig {
    pub rt: Runtime,
    pub launchers: Vec<LauncherHandle>,
    pub router: Arc<Router>,
    pub finished: mpsc::Receiver<FinishedBatch>,
    pub outputs: Vec<FinishedBatch>,
}

/// One launcher per kernel (`launcher-<i>` on `cpu:<i>`), a router over them.
pub async fn rig(kernels: Vec<Arc<dyn Kernel>>, budget: FaultBudget, prefetch: u32) -> Rig {
    let rt = Runtime::builder().build().expect("runtime");
    let (sink, finished) = mpsc::channel(4096);
    let mut launchers = Vec::new();
    for (index, kernel) in kernels.into_iter().enumerate() {
        let index = index as u32;
        let config = LauncherConfig::new(format!("launcher-{index}"), cpu_device(index), kernel)
            .fault_budget(budget)
            .prefetch_depth(prefetch);
        launchers.push(
            Launcher::spawn(&rt, config, sink.clone())
                .await
                .expect("launcher"),
        );
    }
    let router = Arc::new(Router::new(
        "router",
        launchers.clone(),
        ScoreWeights::default(),
        rt.dead_letters().clone(),
    ));
    Rig {
        rt,
        launchers,
        router,
        finished,
        outputs: Vec::new(),
    }
}

impl Rig {
    /// Waits until `total` batches are finished or dead-lettered (30 s deadline).
    pub async fn settle(&mut self, total: u64) {
        let deadline = Duration::from_secs(30);
        let (finished, outputs, dead) = (
            &mut self.finished,
            &mut self.outputs,
            self.rt.dead_letters(),
        );
        let waited = tokio::time::timeout(deadline, async {
            while outputs.len() as u64 + dead.count() < total {
                tokio::select! {
                    Some(batch) = finished.recv() => outputs.push(batch),
                    () = tokio::task::yield_now() => {}
                }
            }
        })
        .await;
        assert!(
            waited.is_ok(),
            "timed out: {} finished + {} dead-lettered of {total}",
            outputs.len(),
            dead.count()
        );
    }

    /// Finished batches per device so far.
    pub fn finished_on(&self, device: u32) -> usize {
        self.outputs
            .iter()
            .filter(|batch| batch.device == device)
            .count()
    }

    /// The status detail of `name`.
    pub async fn detail(&self, name: &str) -> String {
        match self
            .rt
            .control(name, vortex::messages::Control::Status)
            .await
        {
            Ok(vortex::messages::ControlReply::Status(report)) => report.detail,
            other => panic!("no status for {name}: {other:?}"),
        }
    }
}
