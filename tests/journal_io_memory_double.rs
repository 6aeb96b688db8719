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
