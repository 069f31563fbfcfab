//! Checkpoints, resume, operation locks and backups.
//!
//! A [`FailsafeManager`] owns a store directory. Each operation has one checkpoint file there,
//! holding its last few checkpoints in checksummed slots (the format is in `docs/FORMAT.md`):
//!
//! - **Crash-safe**: a process killed at any instant leaves the previous or the new checkpoint,
//!   never a mix. A torn or bit-flipped record is detected by its checksum and the newest intact
//!   one is used; a file with none is [`Error::Corrupt`] naming the file.
//! - **Versioned**: magic bytes, format version, codec id, schema fingerprint
//!   ([`Checkpointable::SCHEMA`]) and a checksum per record; decoding is bounded.
//! - **Any id**: an operation id of any content maps to a file inside the directory and
//!   round-trips exactly.
//! - **Durable by default**: with [`Durability::Sync`] a save is one in-place write and one
//!   `fdatasync`.
//! - **Private**: files are created `0600`, the directory `0700`; symbolic links planted in the
//!   directory are never followed.

mod auto_backup;
mod backup;
mod builder;
mod catalog;
mod codec;
mod files;
mod format;
mod ids;
mod inspect;
mod lock;
mod manager;
mod opfile;
mod stats;
mod store;
mod types;

pub use auto_backup::AutoBackup;
pub use backup::BackupInfo;
pub use builder::FailsafeBuilder;
pub use inspect::{CorruptFile, IntactFile, RecordInfo, VerifyReport};
pub use lock::OperationLock;
pub use manager::{EncodedState, FailsafeManager};
pub use stats::{BackupStats, CheckpointStats, FailsafeStats};
pub use types::{Checkpoint, Checkpointable, Durability, OperationSummary, ProcessState};
