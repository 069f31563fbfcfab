//! Backups: byte-exact, checksummed copies of files, kept per source and rotated.
//!
//! Layout under the store directory:
//!
//! ```text
//! backups/<sanitized file name>-<16 hex digits>[-<n>]/  one folder per source file
//!     source                                           the source's full path (a record)
//!     <seq>_<created>_<mtime>_<size>_<crc>_<mode>_<random>.bak   a copy, byte for byte
//! ```
//!
//! Each copy is a plain file (mode 0600) whose metadata lives in its name: the sequence number
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
//! With [`Durability::Buffered`] the syncs are skipped (a crash can then leave a copy whose
//! content is incomplete; restoring it reports [`Error::Corrupt`]).

mod copy;
mod database;
mod naming;
mod operations;
#[cfg(feature = "sqlite")]
mod sqlite;

pub(crate) use database::database_changed_at;
pub use naming::BackupInfo;
