//! The crash-simulating test double itself: what survives a crash, and injected faults.

use std::path::Path;

use vortex::actors::journal::io::{FileSystem, MemoryFileSystem};

const EIO: i32 = 5;
const ENOSPC: i32 = 28;

#[test]
fn crash_keeps_synced_data_and_names_only() {
    let fs = MemoryFileSystem::new();
    let directory = Path::new("/d");
    let path = directory.join("a");
    let mut file = fs.create(&path).unwrap();
    file.write_at(0, b"durable").unwrap();
    file.sync_data().unwrap();
    assert!(fs.crash(1).read_file(&path).is_none(), "name not synced");
    fs.sync_dir(directory).unwrap();
    file.write_at(7, &[7; 10_000]).unwrap();
    for seed in 0..50 {
        let after = fs.crash(seed).read_file(&path).unwrap();
        assert_eq!(&after[..7], b"durable");
        assert!(
            after.len() == 7 || after.len() == 10_007 || after.len().is_multiple_of(512),
            "{}",
            after.len()
        );
    }
}

#[test]
fn injected_faults_fire() {
    let fs = MemoryFileSystem::new();
    let mut file = fs.create(Path::new("/d/a")).unwrap();
    fs.fail_fsync_number(2);
    file.sync_data().unwrap();
    assert_eq!(file.sync_data().unwrap_err().raw_os_error(), Some(EIO));
    fs.limit_space(Some(3));
    let error = file.write_at(0, b"hello").unwrap_err();
    assert_eq!(error.raw_os_error(), Some(ENOSPC));
    assert_eq!(fs.read_file(Path::new("/d/a")).unwrap(), b"hel");
}

#[test]
fn names_are_durable_only_after_their_directory_is_synced() {
    let fs = MemoryFileSystem::new();
    let directory = Path::new("/d");
    let (old, new, created) = (
        directory.join("old"),
        directory.join("new"),
        directory.join("c"),
    );
    let mut file = fs.create(&old).unwrap();
    file.write_at(0, b"bytes").unwrap();
    file.sync_data().unwrap();
    fs.sync_dir(directory).unwrap();
    fs.rename(&old, &new).unwrap();
    fs.create(&created).unwrap();
    let (after, cases) = fs.crash_counted(3);
    assert_eq!(after.paths(), vec![old.clone()], "rename and create lost");
    assert_eq!(after.read_file(&old).unwrap(), b"bytes");
    assert_eq!((cases.lost_renames, cases.lost_creates), (1, 1));
    fs.sync_dir(directory).unwrap();
    fs.remove(&new).unwrap();
    let (after, cases) = fs.crash_counted(4);
    assert_eq!(after.paths(), vec![created.clone(), new.clone()]);
    assert_eq!(cases.lost_removes, 1);
}

#[test]
fn unsynced_pages_persist_independently_and_tear_at_sectors() {
    let fs = MemoryFileSystem::new();
    let path = Path::new("/d/a");
    let mut file = fs.create(path).unwrap();
    fs.sync_dir(Path::new("/d")).unwrap();
    file.allocate(4 * 4096).unwrap();
    file.sync_data().unwrap();
    file.write_at(0, &[9; 4 * 4096]).unwrap();
    let mut total = vortex::actors::journal::io::CrashCases::default();
    let mut later_only = false;
    for seed in 0..100 {
        let (after, cases) = fs.crash_counted(seed);
        total.add(&cases);
        let bytes = after.read_file(path).unwrap();
        assert_eq!(bytes.len(), 4 * 4096);
        for sector in bytes.chunks(512) {
            assert!(sector.iter().all(|&b| b == sector[0]), "sectors are atomic");
        }
        later_only |= bytes[0] == 0 && bytes[3 * 4096] == 9;
    }
    assert!(later_only, "a later page survived without the first");
    assert!(total.torn_pages > 0 && total.later_page_without_earlier > 0);
    assert_eq!(total.crashes, 100);
}

#[test]
fn a_power_cut_stops_every_later_change() {
    let fs = MemoryFileSystem::new();
    let path = Path::new("/d/a");
    let mut file = fs.create(path).unwrap();
    fs.cut_power_after(Some(2));
    file.write_at(0, b"one").unwrap();
    fs.sync_dir(Path::new("/d")).unwrap();
    assert!(!fs.power_is_off(), "two calls went through");
    assert_eq!(file.sync_data().unwrap_err().raw_os_error(), Some(EIO));
    assert!(fs.power_is_off());
    assert!(file.write_at(3, b"two").is_err());
    assert_eq!(fs.read_file(path).unwrap(), b"one");
    let after = fs.crash(0);
    assert!(after.read_file(path).unwrap().len() <= 3);
}

#[test]
fn allocation_reserves_space_up_front() {
    let fs = MemoryFileSystem::new();
    let mut file = fs.create(Path::new("/d/a")).unwrap();
    fs.limit_space(Some(8192));
    file.allocate(8192).unwrap();
    file.write_at(0, &[1; 8192]).unwrap();
    let mut other = fs.create(Path::new("/d/b")).unwrap();
    assert_eq!(other.allocate(1).unwrap_err().raw_os_error(), Some(ENOSPC));
    assert_eq!(
        other.size().unwrap(),
        0,
        "a failed allocation changes nothing"
    );
}
