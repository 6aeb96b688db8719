//! `vortex top` on ratatui's test backend, against a real runtime served over a real
//! control socket (in-process, as `vortex run` serves it): the frame shows every actor's
//! name and state, the launcher's device and the resource groups; keys select an actor
//! and a `p` pauses it (its state changes in the runtime and on screen), `r` resumes it,
//! `c` checkpoints it.

use std::sync::Arc;
use std::time::Duration;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use tokio::sync::mpsc;
use vortex::actors::control::{ControlClient, ControlServer, ControlServerConfig, ControlServices};
use vortex::actors::launcher::{ComputeDevice, CpuDevice, Launcher, LauncherConfig, MlpKernel};
use vortex::prelude::*;
use vortex::top::{Action, Top};

const WIDTH: u16 = 110;
const HEIGHT: u16 = 32;

#[derive(Default)]
struct Counter(u64);

impl Actor for Counter {
    type Message = u64;
    async fn handle(&mut self, n: u64, _: &mut Context<Self>) -> Result<(), ActorError> {
        self.0 += n;
        Ok(())
    }
    fn snapshot(&mut self) -> Option<Vec<u8>> {
        Some(self.0.to_le_bytes().to_vec())
    }
}

struct Node {
    rt: Runtime,
    server: ControlServer,
    client: ControlClient,
    _dir: tempfile::TempDir,
}

/// Two counters and a launcher on a CPU device (its own resource group), served on a
/// control socket in a temp dir, and a client connected to it.
async fn node() -> Node {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::builder()
        .resource_group("device-0", 1, None)
        .build()
        .unwrap();
    let alpha = rt.spawn("alpha", Counter::default).await.unwrap();
    rt.spawn("beta", Counter::default).await.unwrap();
    for n in 0..5 {
        alpha.tell(n).await.unwrap();
    }
    let group = rt.resource_group("device-0").unwrap();
    let device = ComputeDevice::Cpu(CpuDevice::new(
        0,
        group,
        64 << 20,
        Duration::from_millis(50),
    ));
    let kernel = Arc::new(MlpKernel::seeded(16, 8, 3, 1));
    let (sink, _finished) = mpsc::channel(16);
    Launcher::spawn(&rt, LauncherConfig::new("launcher-0", device, kernel), sink)
        .await
        .unwrap();
    let socket = dir.path().join("control.sock");
    let services = ControlServices {
        observer: rt.observer(),
        telemetry: None,
        audit: None,
    };
    let config = ControlServerConfig {
        socket: Some(socket.clone()),
        tcp: None,
    };
    let server = ControlServer::start(config, services).await.unwrap();
    let client = ControlClient::connect_unix(&socket).await.unwrap();
    Node {
        rt,
        server,
        client,
        _dir: dir,
    }
}

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

/// The frame's line that shows `name` in the actors table.
fn row<'a>(frame: &'a str, name: &str) -> &'a str {
    frame
        .lines()
        .find(|line| line.split_whitespace().any(|word| word == name) && line.contains("actor"))
        .unwrap_or_else(|| panic!("no row for {name} in:\n{frame}"))
}

fn state(rt: &Runtime, name: &str) -> ActorState {
    rt.observer().status(name).unwrap().state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_frame_shows_every_actor_with_its_state_the_device_and_the_groups() {
    let mut node = node().await;
    let mut top = Top::new("test-socket");
    top.refresh(&mut node.client).await.unwrap();
    let names: Vec<&str> = top
        .actors()
        .iter()
        .map(|row| row.status.name.as_str())
        .collect();
    assert_eq!(names, ["alpha", "beta", "launcher-0"]);
    let frame = top.render_text(WIDTH, HEIGHT);
    assert!(
        frame.contains("vortex top · test-socket · 3 actors · 1 devices"),
        "{frame}"
    );
    for name in ["alpha", "beta", "launcher-0"] {
        assert!(row(&frame, name).contains("running"), "{frame}");
    }
    // The selection marker is on the first actor.
    assert!(row(&frame, "alpha").contains("> alpha"), "{frame}");
    // The launcher's device row and the resource group.
    let device = frame
        .lines()
        .find(|line| line.contains("launcher-0") && line.contains("cpu:0"))
        .unwrap_or_else(|| panic!("no device row:\n{frame}"));
    assert!(device.contains(" in "), "{device}");
    assert!(frame.contains("device-0"), "{frame}");
    node.server.shutdown().await;
    node.rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_select_an_actor_and_pause_resume_and_checkpoint_it() {
    let mut node = node().await;
    let mut top = Top::new("test-socket");
    top.refresh(&mut node.client).await.unwrap();

    // Down selects beta; `p` is a Pause for beta, nothing is sent until it is applied.
    assert_eq!(top.on_key(key(KeyCode::Down)), None);
    assert_eq!(top.selected(), Some("beta"));
    let pause = top.on_key(key(KeyCode::Char('p'))).expect("an action");
    assert_eq!(
        pause,
        Action::Command {
            actor: "beta".into(),
            command: Control::Pause
        }
    );
    assert_eq!(state(&node.rt, "beta"), ActorState::Running);
    assert!(top.apply(&mut node.client, pause).await.unwrap());
    assert_eq!(state(&node.rt, "beta"), ActorState::Paused);
    assert_eq!(state(&node.rt, "alpha"), ActorState::Running);
    top.refresh(&mut node.client).await.unwrap();
    let frame = top.render_text(WIDTH, HEIGHT);
    assert!(row(&frame, "beta").contains("paused"), "{frame}");
    assert!(row(&frame, "alpha").contains("running"), "{frame}");
    assert!(frame.contains("beta: pause → Paused"), "{frame}");
    // The selection stays on beta across the refresh.
    assert!(row(&frame, "beta").contains("> beta"), "{frame}");

    // `c` checkpoints the selected actor; `r` resumes it.
    let checkpoint = top.on_key(key(KeyCode::Char('c'))).expect("an action");
    assert!(top.apply(&mut node.client, checkpoint).await.unwrap());
    assert!(
        top.message().starts_with("beta: checkpoint epoch 1"),
        "{}",
        top.message()
    );
    let resume = top.on_key(key(KeyCode::Char('r'))).expect("an action");
    assert!(top.apply(&mut node.client, resume).await.unwrap());
    assert_eq!(state(&node.rt, "beta"), ActorState::Running);
    top.refresh(&mut node.client).await.unwrap();
    assert!(row(&top.render_text(WIDTH, HEIGHT), "beta").contains("running"));

    // Up goes back to alpha; `q` quits, and applying it says so.
    top.on_key(key(KeyCode::Up));
    assert_eq!(top.selected(), Some("alpha"));
    let quit = top.on_key(key(KeyCode::Char('q'))).expect("quit");
    assert_eq!(quit, Action::Quit);
    assert!(!top.apply(&mut node.client, quit).await.unwrap());
    node.server.shutdown().await;
    node.rt.shutdown().await;
}
