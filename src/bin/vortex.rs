//! The `vortex` command.
//!
//! * `vortex run [FILE] [--seconds S | --batches N]` starts the pipeline a topology file
//!   describes (without one, the built-in single-node topology): a source feeding the CPU
//!   preprocessor pool, a router spreading prepared batches over one launcher per compute
//!   device, and a sink. Neither `--seconds` nor `--batches`: it runs until Ctrl-C or
//!   SIGTERM, which drain it gracefully and exit 0. It shows a live progress line and
//!   prints a summary: throughput, a launcher table and a status table of every actor.
//! * `vortex topology check FILE` validates a topology and prints the resolved plan.
//! * `vortex ctl … <actor> pause|resume|checkpoint|scale N|status|stop`, `vortex ctl
//!   list` and `vortex ctl events` command a running `vortex run` over its control socket
//!   (or its authenticated TCP listener). An unknown actor exits with code 2.
//!
//! `vortex <command> --help` lists every option.

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use clap::{Args, Parser, Subcommand};
use vortex::actors::control::{ClientError, ControlClient, Secret, TcpControl};
use vortex::demo::{self, ControlSettings, RunEvent};
use vortex::prelude::*;
use vortex::session::SOCKET_FILE;
use vortex::topology::Topology;

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
    /// Run a topology (default: the built-in single node: source → preprocessor pool →
    /// router → launchers on CPU devices → sink).
    Run(RunArgs),
    /// Work with topology files.
    #[command(subcommand)]
    Topology(TopologyCommand),
    /// Command a running `vortex run` through its control socket.
    Ctl(CtlArgs),
}

#[derive(Args)]
struct RunArgs {
    /// The topology file (TOML). Without one, the built-in single-node topology.
    file: Option<PathBuf>,
    /// Feed the pipeline for this many seconds, then drain and stop.
    #[arg(long, conflicts_with = "batches")]
    seconds: Option<f64>,
    /// Feed this many batches, then drain and stop.
    #[arg(long)]
    batches: Option<u64>,
    /// The data directory (journal, checkpoints, control socket, manifest); overrides
    /// the topology's `data_dir`.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The control socket path (default `<data_dir>/control.sock`).
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Preprocessor workers in the pool (overrides the topology).
    #[arg(long)]
    workers: Option<u32>,
    /// Bytes per image (overrides the topology).
    #[arg(long)]
    batch_bytes: Option<usize>,
    /// Images per batch at start (overrides the topology).
    #[arg(long)]
    batch_items: Option<u32>,
    /// Compute devices, one launcher each (overrides the topology).
    #[arg(long)]
    devices: Option<u32>,
    /// Batches each launcher may hold ahead (overrides the topology).
    #[arg(long)]
    prefetch_depth: Option<u32>,
    /// Scale the pool to this many workers half-way through (live, no loss).
    #[arg(long)]
    scale_to: Option<u32>,
    /// Serve Prometheus metrics (`/metrics`, `/healthz`) here, e.g. 127.0.0.1:9464.
    #[arg(long)]
    metrics_addr: Option<SocketAddr>,
    /// Seconds between progress reports.
    #[arg(long, default_value_t = 1.0)]
    progress_every: f64,
}

#[derive(Subcommand)]
enum TopologyCommand {
    /// Validate a topology file and print the plan it resolves to.
    Check {
        /// The topology file.
        file: PathBuf,
    },
}

#[derive(Args)]
struct CtlArgs {
    /// The control socket of the run (`--data-dir` wins over `VORTEX_SOCKET`).
    #[arg(long, env = "VORTEX_SOCKET")]
    socket: Option<PathBuf>,
    /// The run's data directory (its socket is `<data_dir>/control.sock`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The run's TCP control listener (needs `--secret-file` or `--secret-env`).
    #[arg(long)]
    addr: Option<SocketAddr>,
    /// A file holding the shared secret.
    #[arg(long)]
    secret_file: Option<PathBuf>,
    /// An environment variable holding the shared secret.
    #[arg(long)]
    secret_env: Option<String>,
    /// Print JSON (one object per line) for scripts.
    #[arg(long)]
    json: bool,
    /// `events` only: stop after this many events.
    #[arg(long)]
    count: Option<u64>,
    /// `list`, `events`, or `<actor> pause|resume|checkpoint|scale N|status|stop`.
    #[arg(required = true, num_args = 1..=3)]
    request: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(error) = vortex::actors::telemetry::init_tracing(cli.log_json) {
        eprintln!("error: installing tracing: {error}");
        return ExitCode::FAILURE;
    }
    let outcome = match cli.command {
        Command::Run(args) => run(args).map(|()| ExitCode::SUCCESS),
        Command::Topology(TopologyCommand::Check { file }) => check(&file),
        Command::Ctl(args) => ctl(args),
    };
    outcome.unwrap_or_else(|error| {
        eprintln!("error: {error:#}");
        ExitCode::FAILURE
    })
}

fn tokio_runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("vortex-worker")
        .build()
        .context("starting the tokio runtime")
}

fn check(file: &Path) -> Result<ExitCode> {
    match Topology::load(file) {
        Ok(topology) => {
            println!("{}", topology.plan());
            println!("ok: {} is valid", file.display());
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            eprintln!("error: {error}");
            Ok(ExitCode::from(2))
        }
    }
}

fn secret(file: Option<&Path>, env: Option<&str>) -> Result<Option<Secret>> {
    Ok(match (file, env) {
        (Some(file), _) => Some(Secret::from_file(file)?),
        (None, Some(name)) => Some(Secret::from_env(name)?),
        (None, None) => None,
    })
}

fn run(args: RunArgs) -> Result<()> {
    let topology = match &args.file {
        Some(file) => Topology::load(file)?,
        None => Topology::default(),
    };
    let mut config = topology.demo_config();
    config.topology_name = topology.name.clone();
    config.topology_file = args.file.clone();
    config.duration = match args.seconds {
        Some(seconds) => Duration::from_secs_f64(seconds.max(0.0)),
        None => Duration::MAX,
    };
    config.batches = args.batches;
    config.progress_every = Duration::from_secs_f64(args.progress_every.max(0.01));
    override_knobs(&mut config, &args);
    if args.data_dir.is_some() {
        config.data_dir = args.data_dir.clone();
    }
    if topology.control.enabled {
        let tcp = match topology.control.tcp {
            Some(addr) => {
                let secret = secret(
                    topology.control.secret_file.as_deref(),
                    topology.control.secret_env.as_deref(),
                )?
                .context("control.tcp needs a secret")?;
                Some(TcpControl { addr, secret })
            }
            None => None,
        };
        config.control = Some(ControlSettings {
            socket: args.socket.clone().or(topology.control.socket.clone()),
            tcp,
        });
    }
    if let Some(notice) = topology.device_notice() {
        println!("{notice}");
    }
    let tokio = tokio_runtime()?;
    let started = Instant::now();
    let report = tokio.block_on(async {
        let stop = shutdown_signal()?;
        let mut progress = ProgressLine::new();
        let report = demo::run_until(config, stop, |event| match event {
            RunEvent::Started(started) => {
                println!(
                    "vortex run: topology `{}`, data dir {} (run {})",
                    topology.name,
                    started.data_dir.display(),
                    started.run
                );
                for (actor, epoch) in &started.restored {
                    println!("restored {actor} from checkpoint epoch {epoch}");
                }
                if let Some(socket) = &started.control_socket {
                    println!("control socket: {}", socket.display());
                }
                if let Some(addr) = started.control_tcp {
                    println!("control tcp: {addr}");
                }
            }
            RunEvent::Progress(snapshot) => progress.show(&snapshot.line()),
            _ => {}
        })
        .await;
        progress.finish();
        anyhow::Ok(report?)
    })?;
    println!("{}", report.render(started.elapsed()));
    if report.lost() != 0 {
        bail!("{} batches were lost", report.lost());
    }
    Ok(())
}

fn override_knobs(config: &mut demo::DemoConfig, args: &RunArgs) {
    if let Some(workers) = args.workers {
        config.workers = workers;
    }
    if let Some(bytes) = args.batch_bytes {
        config.batch_bytes = bytes;
    }
    if let Some(items) = args.batch_items {
        config.batch_items = items;
    }
    if let Some(devices) = args.devices {
        config.devices = devices;
    }
    if let Some(depth) = args.prefetch_depth {
        config.prefetch_depth = depth;
    }
    if args.scale_to.is_some() {
        config.scale_to = args.scale_to;
    }
    if args.metrics_addr.is_some() {
        config.metrics_addr = args.metrics_addr;
    }
}

/// Completes on the first Ctrl-C or SIGTERM. Installed before the pipeline starts, so
/// an early signal is not lost.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate()).context("installing SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("installing SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => eprintln!("SIGTERM: draining and stopping"),
            _ = interrupt.recv() => eprintln!("interrupted: draining and stopping"),
        }
    })
}

/// A live line on a terminal (indicatif), plain periodic lines otherwise.
struct ProgressLine {
    bar: Option<indicatif::ProgressBar>,
}

impl ProgressLine {
    fn new() -> Self {
        let bar = std::io::stdout().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            bar
        });
        ProgressLine { bar }
    }

    fn show(&mut self, line: &str) {
        match &self.bar {
            Some(bar) => {
                bar.set_message(line.to_owned());
                bar.tick();
            }
            None => println!("progress {line}"),
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

/// What `vortex ctl` was asked to do.
enum CtlRequest {
    List,
    Events,
    Control { actor: String, command: Control },
}

fn parse_request(words: &[String]) -> Result<CtlRequest> {
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    Ok(match words.as_slice() {
        ["list"] => CtlRequest::List,
        ["events"] => CtlRequest::Events,
        [actor, verb, rest @ ..] => {
            let command = match (*verb, rest) {
                ("pause", []) => Control::Pause,
                ("resume", []) => Control::Resume,
                ("checkpoint", []) => Control::Checkpoint,
                ("status", []) => Control::Status,
                ("stop", []) => Control::Stop,
                ("scale", [n]) => Control::Scale {
                    n: n.parse().with_context(|| format!("scale: `{n}` is not a number"))?,
                },
                ("scale", []) => bail!("scale needs a worker count: `vortex ctl {actor} scale N`"),
                _ => bail!(
                    "unknown command `{}`: expected pause, resume, checkpoint, scale N, status or stop",
                    words[1..].join(" ")
                ),
            };
            CtlRequest::Control {
                actor: (*actor).to_owned(),
                command,
            }
        }
        [actor] => {
            bail!("`{actor}` needs a command: pause, resume, checkpoint, scale N, status or stop")
        }
        [] => bail!("nothing to do: list, events or <actor> <command>"),
    })
}

fn ctl(args: CtlArgs) -> Result<ExitCode> {
    let request = match parse_request(&args.request) {
        Ok(request) => request,
        Err(error) => {
            eprintln!("error: {error:#}");
            return Ok(ExitCode::from(2));
        }
    };
    tokio_runtime()?.block_on(async move {
        let mut client = connect(&args).await?;
        match request {
            CtlRequest::List => {
                let actors = client.list().await?;
                print_list(&actors, args.json)?;
                Ok(ExitCode::SUCCESS)
            }
            CtlRequest::Events => {
                client.subscribe_events().await?;
                let mut seen = 0u64;
                while !matches!(args.count, Some(count) if seen >= count) {
                    let Some(event) = client.next_event().await? else {
                        break;
                    };
                    seen += 1;
                    if args.json {
                        println!("{}", serde_json::to_string(&event)?);
                    } else {
                        // `kind {fields}`: the event's fields without the outer tag.
                        let value = serde_json::to_value(&event)?;
                        let fields = value
                            .as_object()
                            .and_then(|tagged| tagged.values().next())
                            .unwrap_or(&value);
                        println!("{} {fields}", event.kind());
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
            CtlRequest::Control { actor, command } => {
                let outcome = client.control(&actor, command).await?;
                print_control(&actor, outcome, args.json)
            }
        }
    })
}

async fn connect(args: &CtlArgs) -> Result<ControlClient> {
    let client = match args.addr {
        Some(addr) => {
            let secret = secret(args.secret_file.as_deref(), args.secret_env.as_deref())?
                .context("--addr needs --secret-file or --secret-env")?;
            ControlClient::connect_tcp(addr, &secret).await
        }
        None => {
            let socket = match (&args.data_dir, &args.socket) {
                (Some(dir), _) => dir.join(SOCKET_FILE),
                (None, Some(socket)) => socket.clone(),
                (None, None) => {
                    bail!("which run? pass --socket PATH, --data-dir DIR or --addr HOST:PORT (or set VORTEX_SOCKET)")
                }
            };
            ControlClient::connect_unix(&socket).await
        }
    };
    client.map_err(|error| match error {
        ClientError::Refused => anyhow::anyhow!("the server refused the secret"),
        other => other.into(),
    })
}

fn print_list(actors: &[StatusReport], json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(actors)?);
        return Ok(());
    }
    println!(
        "{:<12} {:<10} {:<10} {:>8} {:>10} {:>8}",
        "NAME", "KIND", "STATE", "WORKERS", "HANDLED", "DEPTH"
    );
    for status in actors {
        println!(
            "{:<12} {:<10} {:<10} {:>8} {:>10} {:>8}",
            status.name,
            status.kind.to_string(),
            status.state.to_string(),
            status.workers,
            status.handled,
            status.mailbox_depth
        );
    }
    Ok(())
}

fn print_control(
    actor: &str,
    outcome: Result<ControlReply, ControlError>,
    json: bool,
) -> Result<ExitCode> {
    let code = match &outcome {
        Ok(_) => ExitCode::SUCCESS,
        Err(ControlError::UnknownActor(_)) => ExitCode::from(2),
        Err(_) => ExitCode::FAILURE,
    };
    if json {
        let value = match &outcome {
            Ok(reply) => serde_json::json!({ "actor": actor, "ok": reply }),
            Err(error) => serde_json::json!({ "actor": actor, "error": error.to_string() }),
        };
        println!("{value}");
        return Ok(code);
    }
    match outcome {
        Ok(ControlReply::Status(status)) => println!(
            "{}: {} {}, workers {}, handled {}, depth {}/{}, restarts {}, dead letters {}{}",
            status.name,
            status.kind,
            status.state,
            status.workers,
            status.handled,
            status.mailbox_depth,
            status.mailbox_capacity,
            status.restarts,
            status.dead_letters,
            if status.detail.is_empty() {
                String::new()
            } else {
                format!(" ({})", status.detail)
            }
        ),
        Ok(ControlReply::Checkpointed(checkpoint)) => println!(
            "{actor}: checkpoint epoch {} ({} bytes)",
            checkpoint.epoch,
            checkpoint.bytes.len()
        ),
        Ok(ControlReply::Scaled { from, to }) => println!("{actor}: scaled {from} -> {to}"),
        Ok(ControlReply::Paused) => println!("{actor}: paused"),
        Ok(ControlReply::Resumed) => println!("{actor}: resumed"),
        Ok(ControlReply::Stopping) => println!("{actor}: stopping"),
        Ok(ControlReply::Custom(text)) => println!("{actor}: {text}"),
        Ok(other) => println!("{actor}: {other:?}"),
        Err(error) => eprintln!("error: {error}"),
    }
    Ok(code)
}
