//! Helpers for tests that run the built `vortex` binary as a real process. Every wait has
//! a deadline and waits on an event (a line, an exit), never on a sleep.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The binary under test.
pub const VORTEX: &str = env!("CARGO_BIN_EXE_vortex");

/// How long any single wait may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// A running `vortex run` whose stdout is read line by line on a thread.
pub struct Running {
    child: Option<Child>,
    lines: mpsc::Receiver<String>,
    /// Every stdout line seen so far.
    pub seen: Vec<String>,
    exited: Option<mpsc::Receiver<std::io::Result<ExitStatus>>>,
}

impl Running {
    /// Starts `vortex run` with `args` (stderr is inherited so failures show).
    pub fn start(args: &[&str]) -> Running {
        let mut child = Command::new(VORTEX)
            .arg("run")
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("vortex starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Running {
            child: Some(child),
            lines,
            seen: Vec::new(),
            exited: None,
        }
    }

    /// Waits for a stdout line starting with `prefix`; returns the rest of it.
    pub fn wait_for_line(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return rest.trim().to_owned();
                    }
                }
                Err(error) => panic!(
                    "no line starting with {prefix:?} ({error}); saw:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let pid = rustix::process::Pid::from_raw(self.pid() as i32).expect("a pid");
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("kill");
    }

    /// Waits (bounded) for the process to exit, collecting the rest of stdout.
    pub fn wait(&mut self) -> ExitStatus {
        let receiver = self.exited.take().unwrap_or_else(|| {
            let mut child = self.child.take().expect("running");
            let (sender, receiver) = mpsc::channel();
            std::thread::spawn(move || {
                let _ = sender.send(child.wait());
            });
            receiver
        });
        let status = receiver
            .recv_timeout(DEADLINE)
            .expect("vortex exits in time")
            .expect("wait");
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(line);
        }
        status
    }

    /// All stdout seen, one string.
    pub fn stdout(&self) -> String {
        self.seen.join("\n")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs `vortex ctl --socket SOCKET args…` to completion.
pub fn ctl(socket: &Path, args: &[&str]) -> Output {
    Command::new(VORTEX)
        .arg("ctl")
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .expect("vortex ctl runs")
}

/// Runs `vortex ctl` and expects success; returns its stdout.
pub fn ctl_ok(socket: &Path, args: &[&str]) -> String {
    let output = ctl(socket, args);
    assert!(
        output.status.success(),
        "vortex ctl {args:?}: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8")
}

/// Writes a topology with `data_dir` and `extra` TOML into `directory`.
pub fn topology(directory: &Path, extra: &str) -> PathBuf {
    let path = directory.join("topology.toml");
    let data = directory.join("data");
    let text = format!(
        "name = \"test\"\ndata_dir = {:?}\n[devices]\ncount = 2\n[launchers]\nhidden = 16\n{extra}",
        data.display().to_string()
    );
    std::fs::write(&path, text).expect("topology written");
    path
}
