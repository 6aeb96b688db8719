//! Real process kills: a child process appends durable records to a real directory and
//! prints each acknowledged seq; the test SIGKILLs it at a random moment, reopens the
//! journal and checks that every printed seq is there with its payload.
//!
//! The child is this very test binary, re-executed with `VORTEX_JOURNAL_CHILD=<dir>` and
//! filtered to the `journal_child_process` test, which only acts when that variable is set.

#[path = "journal_support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use support::all_records;
use vortex::actors::journal::{Durability, Journal, JournalConfig, JournalWriter};

const ROUNDS: usize = 20;
const CHILD_ENV: &str = "VORTEX_JOURNAL_CHILD";

fn config() -> JournalConfig {
    JournalConfig {
        segment_bytes: 16 << 10,
        ..JournalConfig::default()
    }
}

#[test]
fn every_printed_seq_survives_sigkill() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("journal");
    let mut rng = fastrand::Rng::with_seed(42);
    let mut printed: BTreeMap<u64, String> = BTreeMap::new();
    for round in 0..ROUNDS {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "journal_child_process",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &path)
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn the child");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let wanted = rng.usize(1..80);
        let mut seen = 0;
        while seen < wanted {
            let line = lines.next().expect("child printed").unwrap();
            seen += usize::from(record_line(&mut printed, &line));
        }
        // Kill at a random point a little later, likely mid-batch.
        for _ in 0..rng.usize(0..3) {
            if let Some(Ok(line)) = lines.next() {
                record_line(&mut printed, &line);
            }
        }
        child.kill().expect("SIGKILL");
        // Lines already in the pipe were acknowledged before the kill.
        for line in lines.map_while(Result::ok) {
            record_line(&mut printed, &line);
        }
        child.wait().unwrap();
        verify(&path, &printed, round);
    }
    assert!(printed.len() >= ROUNDS);
}

/// Records an `ACK seq tag` line; other lines (the test harness's own) are ignored.
fn record_line(printed: &mut BTreeMap<u64, String>, line: &str) -> bool {
    let Some(rest) = line.strip_prefix("ACK ") else {
        return false;
    };
    let (seq, tag) = rest.split_once(' ').expect("'ACK seq tag'");
    printed.insert(seq.parse().unwrap(), tag.to_owned());
    true
}

fn verify(path: &std::path::Path, printed: &BTreeMap<u64, String>, round: usize) {
    let (journal, _) = Journal::open(path, config()).expect("reopen after kill");
    let records = all_records(&journal);
    support::assert_contiguous(&records);
    for (seq, tag) in printed {
        let record = records
            .get(*seq as usize - 1)
            .unwrap_or_else(|| panic!("round {round}: printed seq {seq} missing"));
        assert!(
            record.payload.starts_with(tag.as_bytes()),
            "round {round}: seq {seq}"
        );
    }
}

/// The child: only does something when re-executed by the test above.
#[test]
fn journal_child_process() {
    let Some(directory) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let (journal, _report) = Journal::open(&directory, config()).expect("open");
    let writer = Arc::new(JournalWriter::spawn(journal).expect("spawn writer"));
    let threads: Vec<_> = (0..4)
        .map(|thread| {
            let writer = Arc::clone(&writer);
            std::thread::spawn(move || append_forever(&writer, thread))
        })
        .collect();
    for thread in threads {
        let _ = thread.join();
    }
    std::process::exit(1);
}

fn append_forever(writer: &JournalWriter, thread: usize) {
    let durability = Durability::Batch {
        max_delay: Duration::from_millis(1),
        max_bytes: 64 << 10,
    };
    for counter in 0u64.. {
        let tag = format!("{thread}:{counter}:");
        let mut payload = tag.clone().into_bytes();
        payload.resize(tag.len() + (counter as usize * 37) % 500, b'x');
        let seq = writer
            .append(1, payload, durability)
            .wait()
            .expect("append");
        let mut out = std::io::stdout().lock();
        if writeln!(out, "ACK {seq} {tag}")
            .and_then(|()| out.flush())
            .is_err()
        {
            return;
        }
    }
}
