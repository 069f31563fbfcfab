//! Backups: checksummed copies of files, kept per source and rotated.
//!
//! What a backup promises:
//!
//! - **A state the file really had.** A plain file is copied while its size, modification and
//!   change times and inode are watched, on the open descriptor and on the path; a copy during
//!   which any of them moved is made again, up to 3 times, then
//!   [`Error::SourceChanged`](crate::Error::SourceChanged). A SQLite database is copied by
//!   SQLite from one snapshot (feature `sqlite`), or refused with
//!   [`Error::Unsupported`](crate::Error::Unsupported) when it is in use and the feature is off.
//! - **Nothing half-made.** Only a whole, synced copy is published; older copies are rotated out
//!   after that, never because an attempt failed.
//! - **Restores stay on their path.** The recorded path is walked without following symlinks
//!   and written through the last directory's handle; a database is restored through SQLite
//!   into the live file, so a stale `-wal` is never replayed over it.
//!
//! Where each part lives: `operations.rs` (the public operations), `naming.rs` (copy names,
//! folders and the `source` record), `copy.rs` (the copy engine and its change detection),
//! `database.rs` (what a plain copy of a database would miss) and `sqlite.rs` (SQLite's online
//! backup API, feature `sqlite`). The file-system rules come from `failsafe/files.rs`.
//!
//! Layout under the store directory:
//!
//! ```text
//! backups/<sanitized file name>-<16 hex digits>[-<n>]/  one folder per source file
//!     source                                           the source's full path (a record)
//!     <seq>_<created>_<mtime>_<size>_<crc>_<mode>_<random>.bak   a copy
//! ```
//!
//! Each copy (the file's bytes, or a database's snapshot) is a plain file (mode 0600) whose metadata lives in its name: the sequence number
//! (one more than the newest backup of the source; it orders backups independently of clock
//! jumps), creation time and the source's modification time (`<seconds>_<nanoseconds>` since
//! the Unix epoch), size in bytes, CRC-32 (8 hex digits), the source's permission bits
//! (octal) and a random tag. The name is set by the `rename` that publishes the copy, so data
//! and metadata appear together, atomically, with one `fsync` for the data and one for the
//! folder: no sidecar file to sync. A name that does not parse back to itself, or whose size
//! differs from the file's, is not a backup and is ignored (temp files of an interrupted copy
//! start with a dot and never parse).
//!
//! The folder name is the source's file name (sanitized) plus a 64-bit FNV-1a hash of its
//! canonical path; the `source` record in the folder holds the full path (magic `RSBS`, format
//! version `1`, u32 length, the path's bytes, CRC-32 of all that, little-endian). Folders are
//! probed as `<name>-<hash>`, `<name>-<hash>-1`, … until the one whose record matches, so two
//! paths with the same hash never share a folder.
//!
//! Files are created with `O_CREAT | O_EXCL | O_NOFOLLOW` and mode 0600, folders with mode
//! 0700, and a symlink in place of a folder is refused: nothing is written outside the store.
//! With [`Durability::Buffered`](crate::Durability::Buffered) the syncs are skipped (a crash can then leave a copy whose
//! content is incomplete; restoring it reports [`Error::Corrupt`](crate::Error::Corrupt)).

mod copy;
mod database;
mod naming;
mod operations;
#[cfg(feature = "sqlite")]
mod sqlite;

pub(crate) use database::database_changed_at;
pub use naming::BackupInfo;
pub(crate) use naming::{fuzz_backup_name, fuzz_source_record};
