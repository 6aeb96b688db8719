//! Fault test with real processes: three `raft-node` processes on loopback ports with
//! their own data directories. Commands commit through the leader; the leader is killed
//! with SIGKILL; a new leader must take over within the largest election timeout plus a
//! vote round, and every committed command is applied exactly once on the survivors;
//! the killed node restarts from its directory and catches up without applying anything
//! twice.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

const TICK_MS: u64 = 25;

fn election_ticks(id: u64) -> u64 {
    8 + 2 * id
}

/// One running `raft-node` process and everything it printed.
struct Node {
    id: u64,
    child: Child,
    stdin: ChildStdin,
    lines: Arc<(Mutex<Vec<String>>, Condvar)>,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Node {
    fn start(id: u64, addrs: &BTreeMap<u64, SocketAddr>, data: &Path, secret: &Path) -> Node {
        let mut command = Command::new(env!("CARGO_BIN_EXE_raft-node"));
        command
            .arg("--id")
            .arg(id.to_string())
            .arg("--listen")
            .arg(addrs[&id].to_string())
            .arg("--data")
            .arg(data.join(format!("node-{id}")))
            .arg("--secret-file")
            .arg(secret)
            .arg("--tick-ms")
            .arg(TICK_MS.to_string())
            .arg("--election-ticks")
            .arg(election_ticks(id).to_string());
        for (peer, addr) in addrs {
            if *peer != id {
                command.arg("--peer").arg(format!("{peer}={addr}"));
            }
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start raft-node");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let lines = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                sink.0.lock().unwrap().push(line);
                sink.1.notify_all();
            }
        });
        let node = Node {
            id,
            child,
            stdin,
            lines,
        };
        node.wait_line(Duration::from_secs(30), |line| line.starts_with("ready"));
        node
    }

    fn send(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
    }

    /// Waits until a line printed after the first `from` lines matches; returns it.
    fn wait_from(
        &self,
        from: usize,
        deadline: Duration,
        matches: impl Fn(&str) -> bool,
    ) -> Option<String> {
        let end = Instant::now() + deadline;
        let (lines, changed) = &*self.lines;
        let mut lines = lines.lock().unwrap();
        loop {
            if let Some(line) = lines.iter().skip(from).find(|line| matches(line)) {
                return Some(line.clone());
            }
            let now = Instant::now();
            if now >= end {
                return None;
            }
            lines = changed.wait_timeout(lines, end - now).unwrap().0;
        }
    }

    fn wait_line(&self, deadline: Duration, matches: impl Fn(&str) -> bool) -> String {
        self.wait_from(0, deadline, matches).unwrap_or_else(|| {
            panic!(
                "node {} printed no expected line: {:?}",
                self.id,
                self.printed()
            )
        })
    }

    fn printed(&self) -> Vec<String> {
        self.lines.0.lock().unwrap().clone()
    }

    fn status(&mut self) -> String {
        let from = self.printed().len();
        self.send("status");
        self.wait_from(from, Duration::from_secs(10), |line| {
            line.starts_with("status ")
        })
        .expect("a status line")
    }

    fn is_leader(&mut self) -> bool {
        self.status().contains("role=leader")
    }

    /// The `apply` lines printed after `ready` (before it: the restart bringing the
    /// worker to the desired-state table).
    fn applied(&self) -> Vec<u32> {
        self.printed()
            .iter()
            .skip_while(|line| !line.starts_with("ready"))
            .filter_map(|line| line.strip_prefix("apply "))
            .map(|items| items.parse().unwrap())
            .collect()
    }
}

fn free_ports(n: usize) -> Vec<SocketAddr> {
    let listeners: Vec<_> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners.iter().map(|l| l.local_addr().unwrap()).collect()
}

fn leader(nodes: &mut [Node], deadline: Duration) -> usize {
    let end = Instant::now() + deadline;
    loop {
        for (at, node) in nodes.iter_mut().enumerate() {
            if node.is_leader() {
                return at;
            }
        }
        assert!(Instant::now() < end, "no leader within {deadline:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Proposes `items` (request `(1, items)`) on the leader until it commits.
fn commit(nodes: &mut [Node], items: u32) {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let at = leader(nodes, Duration::from_secs(30));
        let node = &mut nodes[at];
        let from = node.printed().len();
        node.send(&format!("propose 1 {items} {items}"));
        let prefix = format!("outcome 1 {items} ");
        let line = node
            .wait_from(from, Duration::from_secs(10), |line| {
                line.starts_with(&prefix)
            })
            .expect("an outcome line");
        if line.contains("committed") {
            return;
        }
        assert!(Instant::now() < end, "{items} never committed: {line}");
    }
}

fn wait_applied(node: &Node, expected: &[u32]) {
    let end = Instant::now() + Duration::from_secs(30);
    while node.applied().len() < expected.len() {
        assert!(
            Instant::now() < end,
            "node {} applied {:?}, expected {expected:?}",
            node.id,
            node.applied()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        node.applied(),
        expected,
        "node {}: every command exactly once, in order",
        node.id
    );
}

#[test]
fn kill_the_leader_then_restart_it_from_disk() {
    let directory = tempfile::tempdir().unwrap();
    let secret: PathBuf = directory.path().join("cluster.secret");
    std::fs::write(&secret, "a cluster secret\n").unwrap();
    let ports = free_ports(3);
    let addrs: BTreeMap<u64, SocketAddr> = (1..=3).zip(ports).collect();
    let mut nodes: Vec<Node> = (1..=3)
        .map(|id| Node::start(id, &addrs, directory.path(), &secret))
        .collect();

    for items in 1..=5 {
        commit(&mut nodes, items);
    }
    let first: Vec<u32> = (1..=5).collect();
    for node in &nodes {
        wait_applied(node, &first);
    }

    // SIGKILL the leader; time until a survivor leads.
    let at = leader(&mut nodes, Duration::from_secs(10));
    let mut killed = nodes.remove(at);
    let killed_id = killed.id;
    let killed_before = killed.applied();
    killed.child.kill().unwrap(); // SIGKILL
    killed.child.wait().unwrap();
    let down = Instant::now();
    let new_leader = leader(&mut nodes, Duration::from_secs(10));
    let failover = down.elapsed();
    let max_timeout = Duration::from_millis((election_ticks(3) + 1) * TICK_MS);
    let vote_round = Duration::from_millis(500);
    eprintln!("fail-over took {failover:?} (max election timeout {max_timeout:?})");
    assert!(
        failover < max_timeout + vote_round,
        "a new leader took {failover:?}, more than {max_timeout:?} + a vote round"
    );
    assert_ne!(nodes[new_leader].id, killed_id);

    for items in 6..=8 {
        commit(&mut nodes, items);
    }
    let all: Vec<u32> = (1..=8).collect();
    for node in &nodes {
        wait_applied(node, &all);
    }

    // Restart the killed node from its directory: it is brought to the table (batch
    // size 5, printed before `ready`) and then applies only 6..=8.
    drop(killed);
    let restarted = Node::start(killed_id, &addrs, directory.path(), &secret);
    assert_eq!(killed_before, first);
    wait_applied(&restarted, &[6, 7, 8]);
    let before_ready: Vec<String> = restarted
        .printed()
        .into_iter()
        .take_while(|line| !line.starts_with("ready"))
        .collect();
    assert_eq!(
        before_ready,
        vec!["apply 5".to_owned()],
        "brought to the table once"
    );
    nodes.push(restarted);

    // One more command: everyone, the restarted node included, applies it once.
    commit(&mut nodes, 9);
    let all: Vec<u32> = (1..=9).collect();
    for node in &nodes {
        if node.id == killed_id {
            wait_applied(node, &[6, 7, 8, 9]);
        } else {
            wait_applied(node, &all);
        }
    }
}
