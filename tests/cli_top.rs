//! `vortex top --once` as a real process against a real `vortex run`: one text frame
//! with every pipeline actor and its state, the launchers' devices and the resource
//! groups; a `vortex ctl` pause shows up as `paused` in the next frame.

mod cli_support;

use std::process::Command;

use cli_support::{ctl_ok, topology, Running};

fn top_once(socket: &std::path::Path) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_vortex"))
        .args(["top", "--once", "--interval-ms", "100", "--socket"])
        .arg(socket)
        .output()
        .expect("vortex top runs");
    assert!(
        output.status.success(),
        "vortex top --once failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8")
}

fn row<'a>(frame: &'a str, name: &str) -> &'a str {
    let cell = format!(" {name} ");
    frame
        .lines()
        .find(|line| line.contains(&cell) && (line.contains("actor") || line.contains("pool")))
        .unwrap_or_else(|| panic!("no row for {name}:\n{frame}"))
}

#[test]
fn top_once_shows_a_running_pipeline_and_a_pause() {
    let directory = tempfile::tempdir().unwrap();
    let file = topology(directory.path(), "");
    let mut run = Running::start(&[file.to_str().unwrap()]);
    let socket = std::path::PathBuf::from(run.wait_for_line("control socket:"));

    let frame = top_once(&socket);
    assert!(frame.starts_with("vortex top · "), "{frame}");
    for name in ["launcher-0", "launcher-1", "preprocess", "sink", "source"] {
        assert!(row(&frame, name).contains("running"), "{name}:\n{frame}");
    }
    for device in ["cpu:0", "cpu:1"] {
        assert!(frame.contains(device), "{frame}");
    }
    for group in ["cpu", "device-0", "device-1"] {
        assert!(frame.contains(&format!("│{group} ")), "{group}:\n{frame}");
    }
    // No blank filler: the last line is the status line.
    assert!(frame.trim_end().ends_with("q quit"), "{frame}");

    assert_eq!(
        ctl_ok(&socket, &["source", "pause"]).trim(),
        "source: paused"
    );
    let frame = top_once(&socket);
    assert!(row(&frame, "source").contains("paused"), "{frame}");
    ctl_ok(&socket, &["source", "resume"]);

    run.terminate();
    assert!(run.wait().success());
}
