//! The small file-I/O surface the journal and checkpoint store use, its real
//! implementation over `std::fs` (with `fallocate` through rustix), and
//! [`MemoryFileSystem`], a test double that simulates what a power loss does to
//! everything that was not synced.
//!
//! # Layout
//! * this file — the [`FileSystem`] and [`StorageFile`] traits and [`RealFileSystem`];
//! * [`memory`] — [`MemoryFileSystem`]: names, faults and the power switch;
//! * `crash` — the per-file page model and what a crash makes of it ([`CrashCases`]).
//!
//! The traits are object-safe and used as `Arc<dyn FileSystem>` / `Box<dyn StorageFile>`:
//! one virtual call per batch costs nothing next to a write system call, and it keeps
//! generic parameters out of every public type.

mod crash;
pub mod memory;

use std::fmt::Debug;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

pub use crash::CrashCases;
pub use memory::MemoryFileSystem;

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
    /// Truncates or extends (with zeros) the file. Extending reserves no disk blocks.
    fn set_len(&mut self, length: u64) -> io::Result<()>;
    /// Reserves disk blocks for the first `length` bytes (`fallocate`, mode 0), extending
    /// the file with zeros if it is shorter. A full disk fails here, not in later writes
    /// inside the reserved range.
    fn allocate(&mut self, length: u64) -> io::Result<()>;
    /// Makes the file's data and size durable (`fdatasync`). Its name is durable only
    /// once its directory is synced ([`FileSystem::sync_dir`]).
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

    fn allocate(&mut self, length: u64) -> io::Result<()> {
        let size = self.size()?;
        if length <= size {
            return Ok(());
        }
        // Mode 0 allocates the blocks and extends the size; some file systems (and
        // macOS, where rustix emulates it) cannot, and then a plain extension is the best
        // left: the file still reads as zeros past the data, only ENOSPC comes later.
        match rustix::fs::fallocate(
            &self.file,
            rustix::fs::FallocateFlags::empty(),
            size,
            length - size,
        ) {
            Ok(()) => Ok(()),
            Err(errno)
                if errno == rustix::io::Errno::NOTSUP || errno == rustix::io::Errno::NOSYS =>
            {
                self.file.set_len(length)
            }
            Err(errno) => Err(errno.into()),
        }
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }
}
