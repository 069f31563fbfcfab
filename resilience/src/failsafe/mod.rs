//! Checkpoints, resume, operation locks and backups.
//!
//! A [`FailsafeManager`] owns a store directory. Each operation has one checkpoint file there,
//! holding its last few checkpoints in checksummed slots (the format is in `docs/FORMAT.md`):
//!
//! - **Crash-safe**: a process killed at any instant leaves the previous or the new checkpoint,
//!   never a mix. A torn or bit-flipped record is detected by its checksum and the newest intact
//!   one is used; a file with none is [`Error::Corrupt`](crate::Error::Corrupt) naming the file.
//! - **Versioned**: magic bytes, format version, codec id, schema fingerprint
//!   ([`Checkpointable::SCHEMA`]) and a checksum per record; decoding is bounded.
//! - **Any id**: an operation id of any content maps to a file inside the directory and
//!   round-trips exactly.
//! - **Durable by default**: with [`Durability::Sync`] a save is one in-place write and one
//!   `fdatasync`.
//! - **Private**: files are created `0600`, the directory `0700`; symbolic links planted in the
//!   directory are never followed, and nothing blocks on a FIFO or device planted there.
//! - **Shared safely**: any number of managers, in one process or many, on one directory however
//!   its path is spelled, see each other's saves. A manager writes an operation's file only under
//!   the operation's lock (its own, or one taken for the length of the write), and reads what
//!   others wrote again when it takes the lock: a save that returned `Ok` is never hidden. While
//!   another manager or process holds the lock, [`FailsafeManager::save_checkpoint`] and
//!   [`FailsafeManager::discard`] return [`Error::Locked`](crate::Error::Locked).
//! - **Readable anywhere**: a store on a read-only file system can be loaded, listed and
//!   inspected; listings agree with loads also where timestamps have whole-second granularity.
//!
//! Where each part of [`FailsafeManager`] lives: checkpoints, listings and locks in
//! `manager.rs`, backups in `backup/`, auto-backup in `auto_backup.rs`, statistics in
//! `stats.rs`, inspection (`records`, `verify`) in `inspect.rs`; the builder in `builder.rs`.
//! Below them: `store.rs` (one manager's view of the directory), `opfile.rs` (one operation's
//! file), `catalog.rs` (the listing cache), `files.rs` (the file-system policy), `format.rs` and
//! `codec.rs` (bytes on disk), `ids.rs` (ids to file names).

mod auto_backup;
mod backend;
mod backup;
mod builder;
mod catalog;
mod codec;
mod files;
mod format;
pub(crate) mod fuzz;
mod ids;
mod inspect;
pub(crate) mod io;
mod lock;
mod manager;
mod opfile;
#[cfg(feature = "postgres")]
mod pg;
pub(crate) mod progress;
pub(crate) mod run_info;
mod stats;
mod store;
mod types;

pub use auto_backup::AutoBackup;
pub use backup::BackupInfo;
pub use builder::FailsafeBuilder;
pub use inspect::{CorruptFile, IntactFile, RecordInfo, VerifyReport};
pub use lock::OperationLock;
pub use manager::{EncodedState, FailsafeManager};
pub use progress::ProgressUpdate;
pub use stats::{BackupStats, CheckpointStats, FailsafeStats};
pub use types::{
    Checkpoint, Checkpointable, Durability, OperationSummary, ProcessState, SkippedItem,
};
