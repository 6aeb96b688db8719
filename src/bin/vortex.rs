//! The `vortex` command.
//!
//! `vortex run` starts the built-in single-node pipeline — a source feeding the CPU
//! preprocessor pool (on a pinned resource group), a router spreading prepared batches
//! over one launcher per CPU compute device (each on its own pinned group, running the
//! MLP kernel), and a sink — runs it for a bounded time, then prints throughput, a
//! launcher table (batches, compute time, data-stall ratio) and a status table of every
//! actor and resource group. `vortex run --help` lists the knobs.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};
use vortex::demo::{self, DemoConfig};

#[derive(Parser)]
#[command(
    name = "vortex",
    version,
    about = "Nexa Vortex actor runtime for ML pipelines"
)]
struct Cli {
    /// Log as JSON lines (to stderr). The filter comes from `RUST_LOG` (default `info`).
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the built-in single-node pipeline (source → preprocessor pool → router →
    /// launchers on CPU devices → sink).
    Run {
        /// How long to feed the pipeline, in seconds.
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
        /// Preprocessor workers in the pool.
        #[arg(long, default_value_t = 2)]
        workers: u32,
        /// Bytes per image (one square RGB image of about this size).
        #[arg(long, default_value_t = 4096)]
        batch_bytes: usize,
        /// Images per batch at start (the source's batch-size knob).
        #[arg(long, default_value_t = 8)]
        batch_items: u32,
        /// CPU compute devices, one launcher each.
        #[arg(long, default_value_t = 2)]
        devices: u32,
        /// Batches each launcher may hold ahead (the prefetch-depth knob).
        #[arg(long, default_value_t = 2)]
        prefetch_depth: u32,
        /// Scale the pool to this many workers half-way through (live, no loss).
        #[arg(long)]
        scale_to: Option<u32>,
        /// Serve Prometheus metrics (`/metrics`, `/healthz`, `/status` JSON) here while
        /// running, e.g. 127.0.0.1:9464.
        #[arg(long)]
        metrics_addr: Option<std::net::SocketAddr>,
        /// Keep the journal in this directory (created if missing). Default: a fresh
        /// temporary directory, removed at the end.
        #[arg(long)]
        data_dir: Option<std::path::PathBuf>,
        /// Fault injection: the sink fails on every N-th batch it receives; that batch is
        /// dead-lettered (accounted for, not lost) and the sink is restarted.
        #[arg(long, value_name = "N")]
        poison_every: Option<u64>,
        /// Fault injection: fail the named actor once, one second into the run or when
        /// feeding ends if sooner (e.g.
        /// `sink`, `journal`, `scheduler`, `exporter-http`); its supervisor restarts it.
        #[arg(long, value_name = "ACTOR")]
        fail_once: Option<String>,
        /// Run the autotuner: it scales the preprocessor pool and sets the batch size
        /// from telemetry (decisions every 500 ms, shown at the end).
        #[arg(long)]
        autotune: bool,
        /// The autotuner's p99 latency target per batch, in milliseconds.
        #[arg(long, default_value_t = 100, requires = "autotune")]
        latency_target_ms: u64,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    vortex::actors::telemetry::init_tracing(cli.log_json).context("installing tracing")?;
    match cli.command {
        Command::Run {
            seconds,
            workers,
            batch_bytes,
            batch_items,
            devices,
            prefetch_depth,
            scale_to,
            metrics_addr,
            data_dir,
            poison_every,
            fail_once,
            autotune,
            latency_target_ms,
        } => {
            let autotune = autotune.then(|| vortex::actors::autotuner::AutotunerSettings {
                latency_target_ms,
                ..Default::default()
            });
            let config = DemoConfig {
                duration: Duration::from_secs_f64(seconds.max(0.0)),
                workers,
                batch_bytes,
                batch_items,
                devices,
                prefetch_depth,
                scale_to,
                metrics_addr,
                data_dir,
                faults: demo::Faults {
                    poison_every,
                    fail_once,
                },
                autotune,
                ..DemoConfig::default()
            };
            let tokio = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("vortex-worker")
                .build()
                .context("starting the tokio runtime")?;
            let started = Instant::now();
            let report = tokio.block_on(demo::run(config))?;
            println!("{}", report.render(started.elapsed()));
            if report.lost() != 0 {
                anyhow::bail!("{} batches were lost", report.lost());
            }
            Ok(())
        }
    }
}
