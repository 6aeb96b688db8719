//! `vortex run` and `vortex ctl` as real processes: a run on a temporary topology is
//! listed, paused, resumed, checkpointed, scaled and watched over its control socket,
//! then stopped with SIGTERM (exit 0, journal holding every command, summary and
//! manifest agreeing); a second run on the same data directory restores the source.

mod cli_support;

use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};

use cli_support::{ctl, ctl_ok, topology, Running};
use vortex::actors::journal::{Journal, JournalConfig};
use vortex::messages::journal::ControlJournaled;
use vortex::session::{read_manifest, KIND_CONTROL_JOURNALED};

#[test]
fn a_run_is_commanded_stopped_by_sigterm_and_resumed() {
    let directory = tempfile::tempdir().unwrap();
    let file = topology(directory.path(), "");
    let file = file.to_str().unwrap();
    let data = directory.path().join("data");

    let mut run = Running::start(&[file, "--progress-every", "0.2"]);
    let socket = std::path::PathBuf::from(run.wait_for_line("control socket:"));
    assert_eq!(socket, data.join("control.sock"));
    let meta = std::fs::metadata(&socket).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);

    let list: serde_json::Value =
        serde_json::from_str(&ctl_ok(&socket, &["--json", "list"])).unwrap();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|status| status["name"].as_str().unwrap())
        .collect();
    for name in ["launcher-0", "launcher-1", "preprocess", "sink", "source"] {
        assert!(names.contains(&name), "{names:?}");
    }
    assert!(ctl_ok(&socket, &["list"]).starts_with("NAME"));

    assert_eq!(
        ctl_ok(&socket, &["source", "pause"]).trim(),
        "source: paused"
    );
    let status: serde_json::Value =
        serde_json::from_str(&ctl_ok(&socket, &["--json", "source", "status"])).unwrap();
    assert_eq!(status["ok"]["Status"]["state"], "Paused", "{status}");
    assert_eq!(
        ctl_ok(&socket, &["source", "resume"]).trim(),
        "source: resumed"
    );
    assert!(ctl_ok(&socket, &["source", "checkpoint"]).starts_with("source: checkpoint epoch"));
    assert_eq!(
        ctl_ok(&socket, &["preprocess", "scale", "3"]).trim(),
        "preprocess: scaled 2 -> 3"
    );

    let unknown = ctl(&socket, &["nobody", "pause"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unknown actor `nobody`"));
    let refused = ctl(&socket, &["source", "scale", "2"]);
    assert_eq!(
        refused.status.code(),
        Some(1),
        "scale on a single actor is refused"
    );

    let events = ctl_ok(&socket, &["--json", "--count", "3", "events"]);
    assert_eq!(events.lines().count(), 3, "{events}");
    for line in events.lines() {
        serde_json::from_str::<serde_json::Value>(line).expect("one JSON event per line");
    }

    run.wait_for_line("progress");
    run.terminate();
    let status = run.wait();
    let stdout = run.stdout();
    assert!(status.success(), "exit {status:?}\n{stdout}");
    assert!(stdout.contains("lost 0"), "{stdout}");
    assert!(stdout.contains("run 1 on"), "{stdout}");
    assert!(
        stdout.contains("(stopped), 7 control commands served"),
        "{stdout}"
    );
    assert!(!socket.exists(), "the socket is removed at the end");

    let manifest = read_manifest(&data).expect("a manifest");
    let results = manifest.results.expect("results");
    assert_eq!(manifest.run, 1);
    assert_eq!(results.ended_by, "stopped");
    assert_eq!(results.lost, 0);
    assert_eq!(results.control_commands, 7);
    assert!(stdout.contains(&format!(
        "sent {} received {}",
        results.sent, results.received
    )));

    let (journal, _) = Journal::open(data.join("journal"), JournalConfig::default()).unwrap();
    let commands: Vec<String> = journal
        .replay(1)
        .map(|record| record.unwrap())
        .filter(|record| record.kind == KIND_CONTROL_JOURNALED)
        .map(|record| {
            let entry: ControlJournaled = record.decode().unwrap();
            format!("{} {} {}", entry.actor, entry.command, entry.outcome)
        })
        .collect();
    assert_eq!(
        commands[..6],
        [
            "source pause ok",
            "source status ok",
            "source resume ok",
            "source checkpoint ok",
            "preprocess scale 3 ok",
            "nobody pause unknown actor `nobody`",
        ]
        .map(String::from),
    );
    assert_eq!(commands.len(), 7, "{commands:?}");
    assert!(
        commands[6].starts_with("source scale 2 `scale` is not supported by `source`"),
        "{commands:?}"
    );
    drop(journal);

    // The same data directory again: the source is restored, the run counted.
    let mut again = Running::start(&[file, "--batches", "8"]);
    let restored = again.wait_for_line("restored source from checkpoint epoch");
    assert!(restored.parse::<u64>().unwrap() >= 2, "{restored}");
    let status = again.wait();
    assert!(status.success(), "{}", again.stdout());
    assert!(again.stdout().contains("run 2 on"), "{}", again.stdout());
    assert!(
        again.stdout().contains("sent 8 received 8"),
        "{}",
        again.stdout()
    );
    let manifest = read_manifest(&data).unwrap();
    assert_eq!(manifest.run, 2);
    assert_eq!(manifest.restored[0].0, "source");
}

#[test]
fn a_socket_path_over_the_platform_limit_is_a_clear_error() {
    let directory = tempfile::tempdir().unwrap();
    let long = directory.path().join("d".repeat(120)).join("control.sock");
    let file = topology(directory.path(), "");
    let output = std::process::Command::new(cli_support::VORTEX)
        .args(["run", file.to_str().unwrap(), "--batches", "1", "--socket"])
        .arg(&long)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("the platform allows at most 107"),
        "{stderr}"
    );
}

#[test]
fn the_tcp_listener_serves_the_right_secret_and_refuses_a_wrong_one() {
    let directory = tempfile::tempdir().unwrap();
    let secret = directory.path().join("secret");
    std::fs::write(&secret, "correct horse\n").unwrap();
    let wrong = directory.path().join("wrong");
    std::fs::write(&wrong, "battery staple\n").unwrap();
    let extra = format!(
        "[control]\ntcp = \"127.0.0.1:0\"\nsecret_file = {:?}\n",
        secret.display().to_string()
    );
    let file = topology(directory.path(), &extra);
    let mut run = Running::start(&[file.to_str().unwrap()]);
    let addr = run.wait_for_line("control tcp:");
    let tcp = |secret: &std::path::Path, args: &[&str]| {
        std::process::Command::new(cli_support::VORTEX)
            .args(["ctl", "--addr", &addr, "--secret-file"])
            .arg(secret)
            .args(args)
            .output()
            .unwrap()
    };
    let listed = tcp(&secret, &["list"]);
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    assert!(String::from_utf8_lossy(&listed.stdout).contains("source"));
    let refused = tcp(&wrong, &["list"]);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("refused the secret"), "{stderr}");
    assert!(!stderr.contains("battery"), "the secret is never printed");
    let paused = tcp(&secret, &["source", "pause"]);
    assert!(paused.status.success());
    // Stopped while the source is paused: it is resumed to drain, and the run exits 0.
    run.terminate();
    let status = run.wait();
    assert!(status.success(), "{}", run.stdout());
    assert!(run.stdout().contains("lost 0"), "{}", run.stdout());
}

#[test]
fn a_second_run_on_a_data_directory_in_use_is_refused_and_a_bad_file_fails() {
    let directory = tempfile::tempdir().unwrap();
    let file = topology(directory.path(), "");
    let file = file.to_str().unwrap();
    let mut first = Running::start(&[file]);
    first.wait_for_line("control socket:");
    let second = std::process::Command::new(cli_support::VORTEX)
        .args(["run", file, "--batches", "1"])
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("is in use by another run"), "{stderr}");
    first.terminate();
    assert!(first.wait().success(), "{}", first.stdout());

    let bad = directory.path().join("bad.toml");
    std::fs::write(&bad, "[devices]\ncount = 0\n").unwrap();
    let failed = std::process::Command::new(cli_support::VORTEX)
        .arg("run")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(failed.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        stderr.contains("devices.count: must be at least 1"),
        "{stderr}"
    );
}
