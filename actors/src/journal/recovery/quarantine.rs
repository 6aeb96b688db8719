//! Quarantine: recovery never destroys bytes it cuts. Cut bytes go to a file beside their
//! segment (`{segment}.at-{offset}.quarantine`), and segment files taken out of the log
//! are renamed (`{segment}.quarantine`); a name already taken gets a counter
//! (`….1.quarantine`). Neither name is a segment name, so the log never reads them again.

use std::path::{Path, PathBuf};

use crate::journal::error::{JournalError, JournalResult};
use crate::journal::io::FileSystem;
use crate::journal::segment::{sync_directory, sync_file};

/// Suffix of every quarantine file.
pub const QUARANTINE_SUFFIX: &str = ".quarantine";

fn parent(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new("."))
}

/// A free quarantine name for `path` with `tag` after its file name.
fn free_name(fs: &dyn FileSystem, path: &Path, tag: &str) -> JournalResult<PathBuf> {
    let directory = parent(path);
    let names = fs
        .list(directory)
        .map_err(|error| JournalError::io("listing", directory.to_path_buf(), error))?;
    let file_name = path
        .file_name()
        .map_or_else(String::new, |name| name.to_string_lossy().into_owned());
    let base = format!("{file_name}{tag}");
    let candidate = (0u32..)
        .map(|counter| match counter {
            0 => format!("{base}{QUARANTINE_SUFFIX}"),
            _ => format!("{base}.{counter}{QUARANTINE_SUFFIX}"),
        })
        .find(|candidate| !names.contains(candidate))
        .expect("some counter is free");
    Ok(directory.join(candidate))
}

/// Copies `bytes`, cut from `segment` at `offset`, into a new quarantine file and makes
/// file and name durable, before the caller zeroes them in the segment.
pub(crate) fn quarantine_bytes(
    fs: &dyn FileSystem,
    segment: &Path,
    offset: u64,
    bytes: &[u8],
) -> JournalResult<PathBuf> {
    let path = free_name(fs, segment, &format!(".at-{offset}"))?;
    let mut file = fs
        .create(&path)
        .map_err(|error| JournalError::from_write("creating", path.clone(), error))?;
    file.write_at(0, bytes)
        .map_err(|error| JournalError::from_write("writing", path.clone(), error))?;
    sync_file(file.as_mut(), &path)?;
    sync_directory(fs, parent(segment))?;
    Ok(path)
}

/// Renames whole segment files out of the log, then syncs their directory; returns the
/// new names.
pub(crate) fn quarantine_segments(
    fs: &dyn FileSystem,
    directory: &Path,
    segments: &[PathBuf],
) -> JournalResult<Vec<PathBuf>> {
    let mut moved = Vec::new();
    for path in segments {
        let target = free_name(fs, path, "")?;
        fs.rename(path, &target)
            .map_err(|error| JournalError::io("quarantining", path.clone(), error))?;
        moved.push(target);
    }
    if !moved.is_empty() {
        sync_directory(fs, directory)?;
    }
    Ok(moved)
}
