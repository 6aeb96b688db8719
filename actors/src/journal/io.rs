//! The small file-I/O surface the journal and checkpoint store use, its real
//! implementation over `std::fs`, and [`MemoryFileSystem`], a test double that simulates
//! what a crash does to un-synced writes.
//!
//! The traits are object-safe and used as `Arc<dyn FileSystem>` / `Box<dyn StorageFile>`:
//! one virtual call per batch costs nothing next to a write system call, and it keeps
//! generic parameters out of every public type.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// A directory tree of files, as the journal needs it.
pub trait FileSystem: Send + Sync + Debug {
    /// Creates a directory and its parents.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Creates (or truncates) a file for reading and writing.
    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>>;
    /// Opens an existing file for reading and writing.
    fn open(&self, path: &Path) -> io::Result<Box<dyn StorageFile>>;
    /// The names (not paths) of the entries of a directory.
    fn list(&self, directory: &Path) -> io::Result<Vec<String>>;
    /// Renames a file, replacing the target.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Makes the directory's entries (creations, renames, removals) durable.
    fn sync_dir(&self, directory: &Path) -> io::Result<()>;
}

/// One open file.
pub trait StorageFile: Send + Debug {
    /// Writes all of `bytes` at `offset`.
    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> io::Result<()>;
    /// Reads into `buffer` from `offset`; returns the bytes read (short only at the end).
    fn read_at(&self, offset: u64, buffer: &mut [u8]) -> io::Result<usize>;
    /// The file's size in bytes.
    fn size(&self) -> io::Result<u64>;
    /// Truncates or extends (with zeros) the file.
    fn set_len(&mut self, length: u64) -> io::Result<()>;
    /// Makes the file's data durable (`fdatasync`).
    fn sync_data(&mut self) -> io::Result<()>;
}

/// Reads the first `limit` bytes of a file (fewer if the file is shorter).
pub fn read_prefix(file: &dyn StorageFile, limit: u64) -> io::Result<Vec<u8>> {
    let length = file.size()?.min(limit);
    let mut buffer = vec![0; usize::try_from(length).unwrap_or(usize::MAX)];
    let read = file.read_at(0, &mut buffer)?;
    buffer.truncate(read);
    Ok(buffer)
}

/// The real file system (Unix: positional I/O, `fdatasync`, directory fsync).
#[derive(Debug, Default, Clone, Copy)]
pub struct RealFileSystem;

#[derive(Debug)]
struct RealFile {
    file: std::fs::File,
}

impl FileSystem for RealFileSystem {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path)
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Ok(Box::new(RealFile { file }))
    }

    fn open(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)?;
        Ok(Box::new(RealFile { file }))
    }

    fn list(&self, directory: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(directory)? {
            if let Ok(name) = entry?.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn sync_dir(&self, directory: &Path) -> io::Result<()> {
        std::fs::File::open(directory)?.sync_all()
    }
}

impl StorageFile for RealFile {
    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all_at(bytes, offset)
    }

    fn read_at(&self, offset: u64, buffer: &mut [u8]) -> io::Result<usize> {
        let mut filled = 0;
        while filled < buffer.len() {
            match self
                .file
                .read_at(&mut buffer[filled..], offset + filled as u64)
            {
                Ok(0) => break,
                Ok(read) => filled += read,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
        Ok(filled)
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn set_len(&mut self, length: u64) -> io::Result<()> {
        self.file.set_len(length)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }
}

/// EIO on Linux and macOS.
const EIO: i32 = 5;
/// ENOSPC on Linux and macOS.
const ENOSPC: i32 = 28;

/// An in-memory file system that remembers, per file, what is durable and what is not.
///
/// * Data written to a file is volatile until that file's `sync_data`.
/// * Creations, renames and removals are volatile until `sync_dir` of the parent.
/// * [`MemoryFileSystem::crash`] returns the disk as a reboot would find it: durable
///   names and bytes, plus a random prefix of each file's un-synced writes, torn at a
///   512 B or 4 KiB boundary.
/// * Faults: an EIO on the n-th fsync (file or directory; the failed sync's data is then
///   lost, as Linux may drop the dirty pages), ENOSPC once a byte budget is spent (the
///   failing write lands partially), and failing renames.
///
/// Directories are implicit: every path has a parent, and `create_dir_all` does nothing.
#[derive(Debug, Clone, Default)]
pub struct MemoryFileSystem {
    state: Arc<Mutex<MemoryState>>,
}

#[derive(Debug, Default)]
struct MemoryState {
    inodes: HashMap<u64, MemoryInode>,
    next_inode: u64,
    names: BTreeMap<PathBuf, u64>,
    durable_names: BTreeMap<PathBuf, u64>,
    fsync_calls: u64,
    fail_fsync_at: Option<u64>,
    space_left: Option<u64>,
    fail_renames: bool,
}

#[derive(Debug, Default, Clone)]
struct MemoryInode {
    durable: Vec<u8>,
    current: Vec<u8>,
    pending: Vec<PendingChange>,
}

#[derive(Debug, Clone)]
enum PendingChange {
    Write { offset: u64, bytes: Vec<u8> },
    SetLength(u64),
}

#[derive(Debug)]
struct MemoryFile {
    state: Arc<Mutex<MemoryState>>,
    inode: u64,
}

impl MemoryFileSystem {
    /// An empty file system.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, MemoryState> {
        lock(&self.state)
    }

    /// Makes the `number`-th fsync from now (1 = the next one) fail with EIO.
    pub fn fail_fsync_number(&self, number: u64) {
        let mut state = self.lock();
        state.fail_fsync_at = Some(state.fsync_calls + number);
    }

    /// Lets only `bytes` more bytes be written before writes fail with ENOSPC;
    /// `None` lifts the limit.
    pub fn limit_space(&self, bytes: Option<u64>) {
        self.lock().space_left = bytes;
    }

    /// Makes every rename fail with EIO while `fail` is true.
    pub fn fail_renames(&self, fail: bool) {
        self.lock().fail_renames = fail;
    }

    /// The current (page-cache) contents of a file, if it exists.
    pub fn read_file(&self, path: &Path) -> Option<Vec<u8>> {
        let state = self.lock();
        let inode = state.names.get(path)?;
        Some(state.inodes[inode].current.clone())
    }

    /// Creates or replaces a file with `bytes`, already durable, name included.
    pub fn write_durable_file(&self, path: &Path, bytes: &[u8]) {
        let mut state = self.lock();
        let inode = state.allocate(bytes.to_vec());
        state.names.insert(path.to_path_buf(), inode);
        state.durable_names.insert(path.to_path_buf(), inode);
    }

    /// The names of all files, sorted.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.lock().names.keys().cloned().collect()
    }

    /// The disk after a crash, as a new independent file system; `seed` picks how much of
    /// each file's un-synced data survives. This file system is left as it was.
    pub fn crash(&self, seed: u64) -> MemoryFileSystem {
        let state = self.lock();
        let mut random = SplitMix64(seed);
        let mut survivor = MemoryState::default();
        for (path, inode) in &state.durable_names {
            let contents = state.inodes[inode].after_crash(&mut random);
            let new_inode = survivor.allocate(contents);
            survivor.names.insert(path.clone(), new_inode);
            survivor.durable_names.insert(path.clone(), new_inode);
        }
        MemoryFileSystem {
            state: Arc::new(Mutex::new(survivor)),
        }
    }
}

fn lock(state: &Mutex<MemoryState>) -> MutexGuard<'_, MemoryState> {
    // A panic while holding the lock leaves the maps consistent (every change is one
    // insert or one assignment), so a poisoned lock is safe to reuse.
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl MemoryState {
    fn allocate(&mut self, contents: Vec<u8>) -> u64 {
        self.next_inode += 1;
        let inode = MemoryInode {
            durable: contents.clone(),
            current: contents,
            pending: Vec::new(),
        };
        self.inodes.insert(self.next_inode, inode);
        self.next_inode
    }

    /// Counts an fsync; true when this one is the injected failure.
    fn fsync_fails(&mut self) -> bool {
        self.fsync_calls += 1;
        self.fail_fsync_at == Some(self.fsync_calls)
    }

    fn inode(&mut self, inode: u64) -> &mut MemoryInode {
        self.inodes
            .get_mut(&inode)
            .expect("open files keep their inode")
    }
}

impl MemoryInode {
    fn after_crash(&self, random: &mut SplitMix64) -> Vec<u8> {
        let mut contents = self.durable.clone();
        let kept = random.below(self.pending.len() as u64 + 1) as usize;
        for change in &self.pending[..kept] {
            apply(&mut contents, change);
        }
        if let Some(PendingChange::Write { offset, bytes }) = self.pending.get(kept) {
            let sector = if random.below(2) == 0 { 512 } else { 4096 };
            let end = offset + bytes.len() as u64;
            let boundaries: Vec<u64> = (offset / sector + 1..=end / sector)
                .map(|index| index * sector)
                .filter(|&boundary| boundary < end)
                .collect();
            if !boundaries.is_empty() {
                let cut = boundaries[random.below(boundaries.len() as u64) as usize];
                let torn = PendingChange::Write {
                    offset: *offset,
                    bytes: bytes[..(cut - offset) as usize].to_vec(),
                };
                apply(&mut contents, &torn);
            }
        }
        contents
    }
}

fn apply(contents: &mut Vec<u8>, change: &PendingChange) {
    match change {
        PendingChange::Write { offset, bytes } => {
            let start = *offset as usize;
            if contents.len() < start + bytes.len() {
                contents.resize(start + bytes.len(), 0);
            }
            contents[start..start + bytes.len()].copy_from_slice(bytes);
        }
        PendingChange::SetLength(length) => contents.resize(*length as usize, 0),
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, path.display().to_string())
}

impl FileSystem for MemoryFileSystem {
    fn create_dir_all(&self, _path: &Path) -> io::Result<()> {
        Ok(())
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let mut state = self.lock();
        let inode = state.allocate(Vec::new());
        state.names.insert(path.to_path_buf(), inode);
        Ok(Box::new(MemoryFile {
            state: Arc::clone(&self.state),
            inode,
        }))
    }

    fn open(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let inode = *self.lock().names.get(path).ok_or_else(|| not_found(path))?;
        Ok(Box::new(MemoryFile {
            state: Arc::clone(&self.state),
            inode,
        }))
    }

    fn list(&self, directory: &Path) -> io::Result<Vec<String>> {
        let state = self.lock();
        let names = state
            .names
            .keys()
            .filter(|path| path.parent() == Some(directory))
            .filter_map(|path| path.file_name()?.to_str().map(str::to_owned))
            .collect();
        Ok(names)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.lock();
        if state.fail_renames {
            return Err(io::Error::from_raw_os_error(EIO));
        }
        let inode = state.names.remove(from).ok_or_else(|| not_found(from))?;
        state.names.insert(to.to_path_buf(), inode);
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut state = self.lock();
        state
            .names
            .remove(path)
            .map(drop)
            .ok_or_else(|| not_found(path))
    }

    fn sync_dir(&self, directory: &Path) -> io::Result<()> {
        let mut state = self.lock();
        if state.fsync_fails() {
            return Err(io::Error::from_raw_os_error(EIO));
        }
        let in_directory = |path: &PathBuf| path.parent() == Some(directory);
        state.durable_names.retain(|path, _| !in_directory(path));
        let current: Vec<(PathBuf, u64)> = state
            .names
            .iter()
            .filter(|(path, _)| in_directory(path))
            .map(|(path, inode)| (path.clone(), *inode))
            .collect();
        state.durable_names.extend(current);
        Ok(())
    }
}

impl StorageFile for MemoryFile {
    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        let mut state = lock(&self.state);
        let (allowed, full) = match state.space_left {
            Some(left) if (bytes.len() as u64) > left => (left as usize, true),
            _ => (bytes.len(), false),
        };
        if let Some(left) = state.space_left.as_mut() {
            *left -= allowed as u64;
        }
        let change = PendingChange::Write {
            offset,
            bytes: bytes[..allowed].to_vec(),
        };
        let inode = state.inode(self.inode);
        apply(&mut inode.current, &change);
        inode.pending.push(change);
        if full {
            return Err(io::Error::from_raw_os_error(ENOSPC));
        }
        Ok(())
    }

    fn read_at(&self, offset: u64, buffer: &mut [u8]) -> io::Result<usize> {
        let mut state = lock(&self.state);
        let current = &state.inode(self.inode).current;
        let start = (offset as usize).min(current.len());
        let read = buffer.len().min(current.len() - start);
        buffer[..read].copy_from_slice(&current[start..start + read]);
        Ok(read)
    }

    fn size(&self) -> io::Result<u64> {
        Ok(lock(&self.state).inode(self.inode).current.len() as u64)
    }

    fn set_len(&mut self, length: u64) -> io::Result<()> {
        let mut state = lock(&self.state);
        let inode = state.inode(self.inode);
        let change = PendingChange::SetLength(length);
        apply(&mut inode.current, &change);
        inode.pending.push(change);
        Ok(())
    }

    fn sync_data(&mut self) -> io::Result<()> {
        let mut state = lock(&self.state);
        let failed = state.fsync_fails();
        let inode = state.inode(self.inode);
        if failed {
            // Like Linux after a writeback error: the page cache keeps the new bytes, the
            // disk may never get them, and a retry reports success without writing them.
            inode.pending.clear();
            return Err(io::Error::from_raw_os_error(EIO));
        }
        inode.durable = inode.current.clone();
        inode.pending.clear();
        Ok(())
    }
}

/// A tiny deterministic generator for crash simulation (splitmix64).
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut value = self.0;
        value = (value ^ (value >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        value = (value ^ (value >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        value ^ (value >> 31)
    }

    fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            0
        } else {
            self.next() % bound
        }
    }
}
