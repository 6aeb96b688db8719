//! Resource groups: isolation, pinning, panic-safe counters, registry.
//!
//! Waits use channel and condition-variable deadlines; nothing sleeps.

use std::collections::BTreeSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::time::Duration;

use vortex::messages::{resource::ResourceGroupStatus, wire};
use vortex::runtime::resource_error::ResourceError;
use vortex::runtime::resource_group::{rayon::prelude::*, ResourceGroup, ResourceGroups};

const DEADLINE: Duration = Duration::from_secs(30);

fn current_thread_name() -> String {
    std::thread::current()
        .name()
        .unwrap_or("<unnamed>")
        .to_owned()
}

/// The calling thread's allowed CPUs, as the kernel reports them.
#[cfg(target_os = "linux")]
fn cpus_allowed_list() -> String {
    let status = std::fs::read_to_string("/proc/thread-self/status").expect("read status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))
        .expect("Cpus_allowed_list line")
        .trim()
        .to_owned()
}

fn names_from_spawned_tasks(group: &ResourceGroup, tasks: usize) -> BTreeSet<String> {
    let (sender, receiver) = mpsc::channel();
    for _ in 0..tasks {
        let sender = sender.clone();
        group.spawn(move || sender.send(current_thread_name()).expect("receiver alive"));
    }
    (0..tasks)
        .map(|_| receiver.recv_timeout(DEADLINE).expect("task reported"))
        .collect()
}

#[test]
fn tasks_run_only_on_their_own_group_threads() {
    let alpha = ResourceGroup::new("alpha", 2, None).expect("alpha");
    let beta = ResourceGroup::new("beta", 1, None).expect("beta");

    let alpha_names = names_from_spawned_tasks(&alpha, 200);
    let beta_names = names_from_spawned_tasks(&beta, 50);
    let allowed_alpha: BTreeSet<String> = ["alpha-0", "alpha-1"].map(String::from).into();
    assert!(alpha_names.is_subset(&allowed_alpha), "{alpha_names:?}");
    assert_eq!(beta_names, ["beta-0".to_owned()].into());

    // Nested parallel work started inside a group stays on that group.
    let nested: BTreeSet<String> = alpha.install(|| {
        (0..10_000)
            .into_par_iter()
            .map(|_| current_thread_name())
            .collect()
    });
    assert!(nested.is_subset(&allowed_alpha), "{nested:?}");

    let ran_on = beta.run(current_thread_name).expect("no panic");
    assert_eq!(ran_on, "beta-0");
    assert_eq!(
        alpha.broadcast(|_| current_thread_name()),
        ["alpha-0", "alpha-1"]
    );
}

#[cfg(target_os = "linux")]
#[test]
fn pinned_threads_run_on_their_requested_core_with_wrap_around() {
    let group = ResourceGroup::new("pinned", 3, Some(vec![1, 0])).expect("cores 0 and 1 exist");
    assert_eq!(group.cores(), Some(&[1, 0][..]));
    let seen = group.broadcast(|index| (index, current_thread_name(), cpus_allowed_list()));
    let expected = [
        (0, "pinned-0".to_owned(), "1".to_owned()),
        (1, "pinned-1".to_owned(), "0".to_owned()),
        (2, "pinned-2".to_owned(), "1".to_owned()),
    ];
    assert_eq!(seen, expected);
    // Tasks are pinned too, wherever they land in the group.
    let (sender, receiver) = mpsc::channel();
    for _ in 0..50 {
        let sender = sender.clone();
        group.spawn(move || {
            let index: usize = current_thread_name()["pinned-".len()..]
                .parse()
                .expect("index");
            let core = ["1", "0"][index % 2];
            sender
                .send(cpus_allowed_list() == core)
                .expect("receiver alive");
        });
    }
    for _ in 0..50 {
        assert!(receiver.recv_timeout(DEADLINE).expect("task reported"));
    }
}

#[test]
fn invalid_construction_is_a_typed_error() {
    let unknown = ResourceGroup::new("far", 1, Some(vec![0, 4096])).expect_err("core 4096");
    assert!(
        matches!(&unknown, ResourceError::UnknownCore { group, core: 4096, available }
            if group == "far" && available.contains(&0)),
        "{unknown:?}"
    );
    let empty = ResourceGroup::new("empty", 1, Some(Vec::new())).expect_err("empty list");
    assert_eq!(
        empty,
        ResourceError::EmptyCoreList {
            group: "empty".into()
        }
    );
    let zero = ResourceGroup::new("zero", 0, None).expect_err("zero threads");
    assert_eq!(
        zero,
        ResourceError::ZeroThreads {
            group: "zero".into()
        }
    );
}

#[test]
fn active_tasks_returns_to_zero_after_panicking_tasks() {
    let group = ResourceGroup::new("counted", 2, None).expect("group");
    for task in 0..1000_u32 {
        group.spawn(move || {
            if task % 100 == 7 {
                panic!("task {task} fails on purpose");
            }
            std::hint::black_box(task.wrapping_mul(task));
        });
    }
    assert!(
        group.wait_idle(DEADLINE),
        "still {} active",
        group.active_tasks()
    );
    assert_eq!(group.active_tasks(), 0);
    assert_eq!(group.completed_tasks(), 990);
    assert_eq!(group.panicked_tasks(), 10);
    // The pool survived the panics.
    assert_eq!(group.run(|| 42), Ok(42));
    assert_eq!(group.completed_tasks(), 991);
}

#[test]
fn run_turns_a_panic_into_an_error_and_install_resumes_it() {
    let group = ResourceGroup::new("fallible", 1, None).expect("group");
    let error = group
        .run(|| -> u32 { panic!("boom") })
        .expect_err("panicked");
    assert_eq!(
        error,
        ResourceError::TaskPanicked {
            group: "fallible".into(),
            message: "boom".into()
        }
    );
    let resumed = catch_unwind(AssertUnwindSafe(|| group.install(|| panic!("again"))));
    assert!(resumed.is_err());
    assert_eq!(group.panicked_tasks(), 2);
    assert_eq!(group.active_tasks(), 0);
}

#[tokio::test(flavor = "current_thread")]
async fn run_async_works_on_the_group_not_on_tokio() {
    let group = ResourceGroup::new("async", 2, None).expect("group");
    let tokio_thread = current_thread_name();
    let name = group
        .run_async(current_thread_name)
        .await
        .expect("no panic");
    assert!(name.starts_with("async-"), "{name}");
    assert_ne!(name, tokio_thread);

    let error = group
        .run_async(|| -> u8 { panic!("async boom") })
        .await
        .expect_err("panicked");
    assert!(
        matches!(error, ResourceError::TaskPanicked { ref message, .. } if message == "async boom")
    );
    assert_eq!((group.completed_tasks(), group.panicked_tasks()), (1, 1));
    assert_eq!(group.active_tasks(), 0);
}

#[test]
fn registry_rejects_duplicates_and_reports_status() {
    let mut groups = ResourceGroups::new();
    let decode = groups.create("decode", 1, None).expect("decode");
    groups.create("augment", 2, Some(vec![0])).expect("augment");
    let duplicate = groups.create("decode", 1, None).expect_err("duplicate");
    assert_eq!(
        duplicate,
        ResourceError::DuplicateGroup {
            name: "decode".into()
        }
    );
    let again = ResourceGroup::new("augment", 1, None).expect("group");
    assert!(matches!(
        groups.insert(again),
        Err(ResourceError::DuplicateGroup { .. })
    ));
    assert!(matches!(
        groups.lookup("gpu"),
        Err(ResourceError::UnknownGroup { .. })
    ));

    decode.run(|| ()).expect("ran");
    let statuses = groups.statuses();
    let expected = vec![
        ResourceGroupStatus {
            name: "augment".into(),
            threads: 2,
            cores: Some(vec![0]),
            active_tasks: 0,
            completed: 0,
            panicked: 0,
        },
        ResourceGroupStatus {
            name: "decode".into(),
            threads: 1,
            cores: None,
            active_tasks: 0,
            completed: 1,
            panicked: 0,
        },
    ];
    assert_eq!(statuses, expected);

    let bytes = wire::encode(&statuses).expect("encode");
    let decoded: Vec<ResourceGroupStatus> = wire::decode(&bytes).expect("decode");
    assert_eq!(decoded, expected);
    assert!(groups.remove("decode").is_some());
    assert_eq!(groups.len(), 1);
}

#[tokio::test]
async fn groups_are_declared_on_the_runtime_builder_and_reported() {
    use vortex::prelude::*;
    let rt = Runtime::builder()
        .resource_group("decode", 2, None)
        .resource_group("pinned", 1, Some(vec![0]))
        .build()
        .unwrap();
    let decode = rt.resource_group("decode").unwrap();
    let name = decode
        .run_async(|| std::thread::current().name().map(str::to_owned))
        .await
        .unwrap();
    assert!(name.unwrap().starts_with("decode-"));
    let statuses = rt.resource_groups();
    let names: Vec<_> = statuses
        .iter()
        .map(|s| (s.name.clone(), s.threads, s.cores.clone()))
        .collect();
    assert_eq!(
        names,
        vec![
            ("decode".to_string(), 2, None),
            ("pinned".to_string(), 1, Some(vec![0]))
        ]
    );
    assert_eq!(statuses[0].completed, 1);
    assert!(matches!(
        rt.resource_group("nope"),
        Err(RuntimeError::UnknownResourceGroup(_))
    ));
    let bad = Runtime::builder()
        .resource_group("bad", 1, Some(vec![9999]))
        .build();
    assert!(
        matches!(bad, Err(RuntimeError::InvalidConfig(ref text)) if text.contains("9999")),
        "{:?}",
        bad.err()
    );
    rt.shutdown().await;
}
