//! [`CheckpointStore`]: actor snapshots in `<root>/<actor>/<epoch:020>.ckpt`.
//!
//! A save writes a temporary file, `fdatasync`s it, renames it over the final name and
//! fsyncs the directory, so a crash at any point leaves either the old set of
//! checkpoints or the new one, never a half-written file under a final name.
//!
//! File layout (little-endian): `magic [u8; 8] | version u32 | crc32c u32 | length u64 |
//! epoch u64 | snapshot bytes`; the CRC covers the snapshot bytes.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::journal::error::{JournalError, JournalResult};
use crate::journal::io::{read_prefix, FileSystem, RealFileSystem};
use vortex_messages::journal::CheckpointTaken;

const CHECKPOINT_MAGIC: [u8; 8] = *b"NXVCKPT\0";
const CHECKPOINT_VERSION: u32 = 1;
const CHECKPOINT_HEADER_BYTES: usize = 32;
const CHECKPOINT_EXTENSION: &str = ".ckpt";
const TEMPORARY_SUFFIX: &str = ".tmp";
const MAXIMUM_ACTOR_NAME_BYTES: usize = 128;

/// A verified checkpoint read back from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCheckpoint {
    /// The checkpoint epoch.
    pub epoch: u64,
    /// The snapshot bytes.
    pub bytes: Vec<u8>,
    /// CRC-32C of the snapshot bytes.
    pub crc: u32,
}

/// Durable per-actor snapshots, one file per epoch.
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    fs: Arc<dyn FileSystem>,
    root: PathBuf,
}

/// Rejects names that are empty, too long, hidden, or contain anything but ASCII
/// letters, digits, `-`, `_` and `.` — which rules out `/`, `\`, `..` and NUL.
pub fn validate_actor_name(name: &str) -> JournalResult<()> {
    let reason = if name.is_empty() {
        Some("empty")
    } else if name.len() > MAXIMUM_ACTOR_NAME_BYTES {
        Some("longer than 128 bytes")
    } else if name.starts_with('.') {
        Some("starts with a dot")
    } else if !name
        .bytes()
        .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.'))
    {
        Some("only ASCII letters, digits, '-', '_' and '.' are allowed")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(JournalError::InvalidActorName {
            name: name.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

fn encode_checkpoint(epoch: u64, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(CHECKPOINT_HEADER_BYTES + bytes.len());
    out.extend_from_slice(&CHECKPOINT_MAGIC);
    out.extend_from_slice(&CHECKPOINT_VERSION.to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(bytes).to_le_bytes());
    out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    out.extend_from_slice(&epoch.to_le_bytes());
    out.extend_from_slice(bytes);
    out
}

fn decode_checkpoint(file: &[u8], epoch: u64) -> Result<StoredCheckpoint, &'static str> {
    if file.len() < CHECKPOINT_HEADER_BYTES {
        return Err("shorter than its header");
    }
    let field = |range: std::ops::Range<usize>| {
        let mut buffer = [0; 8];
        buffer[..range.len()].copy_from_slice(&file[range]);
        u64::from_le_bytes(buffer)
    };
    if file[0..8] != CHECKPOINT_MAGIC {
        return Err("bad magic");
    }
    if field(8..12) != u64::from(CHECKPOINT_VERSION) {
        return Err("unsupported version");
    }
    if field(24..32) != epoch {
        return Err("epoch does not match the file name");
    }
    let bytes = &file[CHECKPOINT_HEADER_BYTES..];
    if field(16..24) != bytes.len() as u64 {
        return Err("length mismatch");
    }
    let crc = crc32c::crc32c(bytes);
    if u64::from(crc) != field(12..16) {
        return Err("checksum mismatch");
    }
    Ok(StoredCheckpoint {
        epoch,
        bytes: bytes.to_vec(),
        crc,
    })
}

fn parse_checkpoint_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(CHECKPOINT_EXTENSION)?;
    if stem.len() != 20 || !stem.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

impl CheckpointStore {
    /// A store rooted at `root` on the real file system (created if missing).
    pub fn open(root: impl AsRef<Path>) -> JournalResult<Self> {
        Self::open_with(Arc::new(RealFileSystem), root)
    }

    /// A store rooted at `root` on `fs` (created if missing).
    pub fn open_with(fs: Arc<dyn FileSystem>, root: impl AsRef<Path>) -> JournalResult<Self> {
        let root = root.as_ref().to_path_buf();
        fs.create_dir_all(&root)
            .map_err(|error| JournalError::io("creating", root.clone(), error))?;
        Ok(Self { fs, root })
    }

    fn actor_directory(&self, actor: &str) -> JournalResult<PathBuf> {
        validate_actor_name(actor)?;
        Ok(self.root.join(actor))
    }

    fn checkpoint_path(directory: &Path, epoch: u64) -> PathBuf {
        directory.join(format!("{epoch:020}{CHECKPOINT_EXTENSION}"))
    }

    /// Saves `bytes` as `actor`'s checkpoint for `epoch` and returns the record to
    /// journal. Saving the same bytes again is safe and makes them durable again (file,
    /// directory, root: a retry after a failed directory fsync really syncs); different
    /// bytes for an existing epoch are a [`JournalError::CheckpointConflict`]. A corrupt
    /// file under the epoch's name holds nothing worth keeping and is replaced.
    pub fn save(&self, actor: &str, epoch: u64, bytes: &[u8]) -> JournalResult<CheckpointTaken> {
        self.save_as(actor, epoch, bytes, false)
    }

    /// Like [`CheckpointStore::save`], but replaces whatever the epoch holds: for an
    /// epoch whose save was never acknowledged (its journal record failed), which a
    /// later save may reuse.
    pub fn save_replacing(
        &self,
        actor: &str,
        epoch: u64,
        bytes: &[u8],
    ) -> JournalResult<CheckpointTaken> {
        self.save_as(actor, epoch, bytes, true)
    }

    fn save_as(
        &self,
        actor: &str,
        epoch: u64,
        bytes: &[u8],
        replace: bool,
    ) -> JournalResult<CheckpointTaken> {
        let directory = self.actor_directory(actor)?;
        let taken = CheckpointTaken {
            actor: actor.to_owned(),
            epoch,
            bytes: bytes.len() as u64,
            crc: crc32c::crc32c(bytes),
        };
        if self.list(actor)?.contains(&epoch) {
            match self.load(actor, epoch) {
                Ok(existing) if existing.bytes == bytes => {
                    self.sync_existing(&directory, epoch)?;
                    return Ok(taken);
                }
                Ok(_) if !replace => {
                    return Err(JournalError::CheckpointConflict {
                        actor: actor.to_owned(),
                        epoch,
                    })
                }
                Ok(_) | Err(JournalError::CheckpointCorrupt { .. }) => {}
                Err(error) => return Err(error),
            }
        }
        self.fs
            .create_dir_all(&directory)
            .map_err(|error| JournalError::io("creating", directory.clone(), error))?;
        self.write_durably(&directory, epoch, bytes)?;
        Ok(taken)
    }

    /// Makes an existing checkpoint file durable: its data, its name, its directory's
    /// name. An earlier save may have failed after its rename, before its fsyncs.
    fn sync_existing(&self, directory: &Path, epoch: u64) -> JournalResult<()> {
        let path = Self::checkpoint_path(directory, epoch);
        let mut file = self
            .fs
            .open(&path)
            .map_err(|error| JournalError::io("opening", path.clone(), error))?;
        file.sync_data()
            .map_err(|error| JournalError::from_write("syncing", path.clone(), error))?;
        self.sync_directories(directory)
    }

    fn sync_directories(&self, directory: &Path) -> JournalResult<()> {
        for synced in [directory, self.root.as_path()] {
            self.fs
                .sync_dir(synced)
                .map_err(|error| JournalError::io("syncing", synced.to_path_buf(), error))?;
        }
        Ok(())
    }

    /// Removes `actor`'s checkpoint for `epoch` (durably: the directory is synced). A
    /// missing epoch is not an error.
    pub fn remove(&self, actor: &str, epoch: u64) -> JournalResult<()> {
        let directory = self.actor_directory(actor)?;
        let path = Self::checkpoint_path(&directory, epoch);
        match self.fs.remove(&path) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(error) => return Err(JournalError::io("removing", path, error)),
        }
        self.fs
            .sync_dir(&directory)
            .map_err(|error| JournalError::io("syncing", directory.clone(), error))
    }

    /// Temp file, `fdatasync`, rename, directory fsync (and the root's, so a new actor
    /// directory survives a crash too).
    fn write_durably(&self, directory: &Path, epoch: u64, bytes: &[u8]) -> JournalResult<()> {
        let path = Self::checkpoint_path(directory, epoch);
        let temporary = path.with_extension(format!("ckpt{TEMPORARY_SUFFIX}"));
        let write = |error| JournalError::from_write("writing", temporary.clone(), error);
        let mut file = self.fs.create(&temporary).map_err(write)?;
        file.write_at(0, &encode_checkpoint(epoch, bytes))
            .map_err(write)?;
        file.sync_data().map_err(write)?;
        drop(file);
        self.fs
            .rename(&temporary, &path)
            .map_err(|error| JournalError::io("renaming", temporary.clone(), error))?;
        self.sync_directories(directory)
    }

    /// Loads and verifies `actor`'s checkpoint for `epoch`.
    pub fn load(&self, actor: &str, epoch: u64) -> JournalResult<StoredCheckpoint> {
        let directory = self.actor_directory(actor)?;
        let path = Self::checkpoint_path(&directory, epoch);
        let file = self.fs.open(&path).map_err(|error| {
            if error.kind() == std::io::ErrorKind::NotFound {
                JournalError::CheckpointNotFound {
                    actor: actor.to_owned(),
                    epoch,
                }
            } else {
                JournalError::io("opening", path.clone(), error)
            }
        })?;
        let contents = read_prefix(file.as_ref(), u64::MAX)
            .map_err(|error| JournalError::io("reading", path.clone(), error))?;
        decode_checkpoint(&contents, epoch)
            .map_err(|reason| JournalError::CheckpointCorrupt { path, reason })
    }

    /// The checkpoint with the highest epoch that verifies, or `None` if there is none.
    /// A corrupt epoch is skipped (logged) in favour of the next older one.
    pub fn latest(&self, actor: &str) -> JournalResult<Option<StoredCheckpoint>> {
        for epoch in self.list(actor)?.into_iter().rev() {
            match self.load(actor, epoch) {
                Ok(stored) => return Ok(Some(stored)),
                Err(error @ JournalError::CheckpointCorrupt { .. }) => {
                    tracing::warn!(actor, epoch, %error, "corrupt checkpoint skipped");
                }
                Err(error) => return Err(error),
            }
        }
        Ok(None)
    }

    /// The epochs saved for `actor`, ascending. Temporary files are not listed.
    pub fn list(&self, actor: &str) -> JournalResult<Vec<u64>> {
        let directory = self.actor_directory(actor)?;
        let names = match self.fs.list(&directory) {
            Ok(names) => names,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(error) => return Err(JournalError::io("listing", directory, error)),
        };
        let mut epochs: Vec<u64> = names
            .iter()
            .filter_map(|name| parse_checkpoint_name(name))
            .collect();
        epochs.sort_unstable();
        Ok(epochs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actor_names_are_validated() {
        for good in ["gpu-launcher-0", "a", "pre_processor.v2"] {
            assert!(validate_actor_name(good).is_ok(), "{good}");
        }
        let long = "x".repeat(129);
        for bad in [
            "", "..", ".", "../etc", "a/b", "a\\b", ".hidden", "nul\0", &long,
        ] {
            assert!(
                matches!(
                    validate_actor_name(bad),
                    Err(JournalError::InvalidActorName { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn file_format_round_trips_and_detects_damage() {
        let encoded = encode_checkpoint(7, b"state");
        assert_eq!(decode_checkpoint(&encoded, 7).unwrap().bytes, b"state");
        assert!(decode_checkpoint(&encoded, 8).is_err());
        for index in 0..encoded.len() {
            let mut damaged = encoded.clone();
            damaged[index] ^= 4;
            assert!(decode_checkpoint(&damaged, 7).is_err(), "byte {index}");
        }
    }
}
