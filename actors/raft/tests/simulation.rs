//! The deterministic simulation of raft peers (see `sim/mod.rs` for the model): 3 and 5
//! nodes, a faulty network, power-loss disks, crashes and restarts; invariants checked
//! at every step and at the end.
//!
//! * `cargo test -p vortex-raft --test simulation` — the CI seeds.
//! * `VORTEX_RAFT_SEED=<seed> [VORTEX_RAFT_NODES=5] [VORTEX_RAFT_STEPS=<n>] cargo test -p
//!   vortex-raft --test simulation replay -- --nocapture` replays one seed (a failure
//!   prints this command with its values filled in).
//! * `cargo test --release -p vortex-raft --test simulation soak -- --ignored --nocapture`
//!   — the long soak: `VORTEX_RAFT_SOAK_SEEDS` seeds (default 300) per cluster size.

mod sim;

use sim::{Faults, Report, Sim};

/// Steps per seed in the CI run.
const CI_STEPS: u64 = 2500;

fn run(seed: u64, nodes: u64, steps: u64) -> Report {
    let report = Sim::new(seed, nodes, Faults::default()).run(steps);
    println!("{report:?}");
    report
}

#[test]
fn three_nodes_ci_seeds() {
    let mut total = Report::default();
    for seed in 1..=12 {
        let report = run(seed, 3, CI_STEPS);
        total.acknowledged += report.acknowledged;
        total.crashes += report.crashes;
        total.partitions += report.partitions;
    }
    // The faults really happened, and work still got done.
    assert!(total.acknowledged > 100, "{total:?}");
    assert!(total.crashes > 5, "{total:?}");
    assert!(total.partitions > 5, "{total:?}");
}

#[test]
fn five_nodes_ci_seeds() {
    for seed in 101..=108 {
        let report = run(seed, 5, CI_STEPS);
        assert!(report.acknowledged > 0, "{report:?}");
    }
}

#[test]
fn a_seed_replays_exactly() {
    let first = run(7, 3, 300);
    let second = run(7, 3, 300);
    assert_eq!(first, second);
}

#[test]
fn replay() {
    let Ok(seed) = std::env::var("VORTEX_RAFT_SEED") else {
        return;
    };
    let seed: u64 = seed.parse().expect("VORTEX_RAFT_SEED is a number");
    let nodes = std::env::var("VORTEX_RAFT_NODES").map_or(3, |n| n.parse().expect("a number"));
    let steps =
        std::env::var("VORTEX_RAFT_STEPS").map_or(CI_STEPS, |n| n.parse().expect("a number"));
    run(seed, nodes, steps);
}

#[test]
#[ignore = "long soak: run with --ignored (see the module documentation)"]
fn soak() {
    let seeds: u64 =
        std::env::var("VORTEX_RAFT_SOAK_SEEDS").map_or(300, |n| n.parse().expect("a number"));
    for seed in 0..seeds {
        run(10_000 + seed, 3, 3000);
        run(20_000 + seed, 5, 3000);
    }
}
