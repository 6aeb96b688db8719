//! The durable journal and checkpoint store of the Nexa Vortex actor runtime .
//!
//! The journal is an append-only log of CRC-framed records in preallocated (`fallocate`)
//! segment files. One writer group-commits: it writes everything queued at once and
//! issues one `fdatasync` for every record that asked for durability. A batch given to
//! [`Journal::append_batch`] is atomic across a crash. Recovery on open does
//! point-in-time recovery: it cuts the active segment at its first bad frame, keeps the
//! cut bytes in a quarantine file, and refuses to guess about damage in a sealed segment.
//! A failed `fsync` poisons the journal (appends fail from then on; reads go on), because
//! retrying a failed `fsync` can report durability that does not exist.
//!
//! # Layout
//! * [`frame`] — record frame encode/decode (`len | crc | seq | ts | kind | flags |
//!   batch_rest | payload | pad`).
//! * [`segment`] — segment naming, file header, creation (prepared as `.new`,
//!   preallocated, renamed into place).
//! * [`io`] — the small file-I/O trait, the real implementation, and the power-loss test
//!   double [`io::MemoryFileSystem`] (per-page persistence, torn sectors, lost names).
//! * [`staging`] — the staging buffer (mesocarp arena, or a `Vec<u8>` without the
//!   `mesocarp` feature).
//! * [`recovery`] — scanning, point-in-time cuts, quarantine, corruption detection.
//! * [`log`] — [`Journal`], the synchronous core (`append_batch`, `sync`, `retain`).
//! * [`writer`] — [`JournalWriter`], a group-committing writer thread with tickets.
//! * [`replay`] — [`JournalReader`], [`Replay`] and [`JournalStatus`].
//! * [`record`] — [`PendingRecord`], [`Durability`], [`Record`].
//! * [`actor`] — [`JournalActor`]: appends as messages, group-committed, `Status` detail.
//! * [`checkpoint`] — [`CheckpointStore`] for actor snapshots.
//! * [`durable`] — [`DurableCheckpoints`], the runtime's checkpoint sink on disk.
//! * `vortex_messages::journal::CheckpointTaken` — the record a checkpoint leaves in the journal.
//! * [`error`] — [`JournalError`].
//!
//! # Example
//! ```
//! use vortex_actors::journal::{Durability, Journal, JournalConfig, JournalWriter, PendingRecord};
//!
//! # fn main() -> Result<(), vortex_actors::journal::JournalError> {
//! let directory = tempfile::tempdir().expect("temporary directory");
//! let (mut journal, _report) = Journal::open(directory.path(), JournalConfig::default())?;
//! let seqs = journal.append_batch(&[
//!     PendingRecord::encode(1, &("started", 3u32))?,
//!     PendingRecord::raw(2, b"raw bytes".to_vec()).with_durability(Durability::Each),
//! ])?;
//! assert_eq!(seqs, vec![1, 2]);
//!
//! // Hand the journal to a group-committing writer thread.
//! let writer = JournalWriter::spawn(journal)?;
//! let seq = writer.append(3, b"later".to_vec(), Durability::default()).wait()?;
//! assert_eq!(seq, 3);
//! let first = writer.reader().replay(1).next().expect("a record")?;
//! assert_eq!(first.decode::<(String, u32)>()?, ("started".to_owned(), 3));
//! # Ok(())
//! # }
//! ```

pub mod actor;
pub mod checkpoint;
pub mod durable;
pub mod error;
pub mod frame;
pub mod io;
pub mod log;
pub mod record;
pub mod recovery;
pub mod replay;
pub mod segment;
pub mod staging;
pub mod writer;

pub use actor::{JournalActor, JournalMessage, JournalSpawnError};
pub use checkpoint::{CheckpointStore, StoredCheckpoint};
pub use durable::{DurableCheckpoints, KIND_CHECKPOINT_TAKEN};
pub use error::{JournalError, JournalResult};
pub use log::{Journal, JournalConfig, RetentionPolicy, RetentionReport};
pub use record::{Durability, PendingRecord, Record};
pub use recovery::{Cut, RecoveryMode, RecoveryReport};
pub use replay::{JournalReader, JournalStatus, LatencySummary, Replay};
pub use vortex_messages::journal::CheckpointTaken;
pub use writer::{BatchTicket, JournalWriter, Ticket, WriterConfig};
