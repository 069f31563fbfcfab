//! The seam every write of the checkpoint store goes through: positioned writes, syncs of files
//! and directories, creations, renames and removals.
//!
//! In production each function is the plain system call plus one relaxed atomic load. For the
//! power-loss tests the calls can also be recorded ([`start_recording`]): the log says which
//! bytes reached which inode and which sync made them durable, from which a test builds every
//! disk state a power loss could leave (`tests/powerloss`).

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// One recorded operation. Files are named by inode number: a descriptor keeps naming its
/// file across renames.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs, reason = "each variant's documentation names its fields")]
pub enum IoOp {
    /// `path` now names the file `ino` (created, or opened with `O_CREAT`).
    Create { path: PathBuf, ino: u64 },
    /// `bytes` written at `offset` of the file `ino`.
    Write { ino: u64, offset: u64, bytes: Vec<u8> },
    /// `fsync`/`fdatasync` of the file `ino`: its writes are durable.
    Sync { ino: u64 },
    /// `from` renamed to `to`, replacing what `to` named.
    Rename { from: PathBuf, to: PathBuf },
    /// `path` removed.
    Unlink { path: PathBuf },
    /// `fsync` of the directory `dir`: its entries are durable.
    SyncDir { dir: PathBuf },
    /// A note of the test's own (what it was told had succeeded).
    Mark(String),
}

static RECORDING: AtomicBool = AtomicBool::new(false);
static LOG: Mutex<Vec<IoOp>> = Mutex::new(Vec::new());

/// Starts recording the store's writes in this process (clearing an earlier log).
pub fn start_recording() {
    let mut log = LOG.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    log.clear();
    RECORDING.store(true, Ordering::SeqCst);
}

/// Stops recording; returns the log.
pub fn stop_recording() -> Vec<IoOp> {
    RECORDING.store(false, Ordering::SeqCst);
    std::mem::take(&mut *LOG.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
}

/// Adds the test's note `mark` to the log, in order with the writes.
pub fn mark(mark: impl Into<String>) {
    if recording() {
        push(IoOp::Mark(mark.into()));
    }
}

#[inline]
fn recording() -> bool {
    RECORDING.load(Ordering::Relaxed)
}

#[cold]
fn push(op: IoOp) {
    LOG.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(op);
}

#[cold]
fn ino(file: &File) -> u64 {
    file.metadata().map_or(0, |m| m.ino())
}

/// Notes that `path` names `file`, just created or opened with `O_CREAT`.
pub(crate) fn created(file: &File, path: &Path) {
    if recording() {
        push(IoOp::Create { path: path.to_path_buf(), ino: ino(file) });
    }
}

/// Writes all of `bytes` at `offset`.
pub(crate) fn write_all_at(file: &File, bytes: &[u8], offset: u64) -> io::Result<()> {
    file.write_all_at(bytes, offset)?;
    if recording() {
        push(IoOp::Write { ino: ino(file), offset, bytes: bytes.to_vec() });
    }
    Ok(())
}

/// `fdatasync`.
pub(crate) fn sync_data(file: &File) -> io::Result<()> {
    file.sync_data()?;
    if recording() {
        push(IoOp::Sync { ino: ino(file) });
    }
    Ok(())
}

/// `fsync`.
pub(crate) fn sync_all(file: &File) -> io::Result<()> {
    file.sync_all()?;
    if recording() {
        push(IoOp::Sync { ino: ino(file) });
    }
    Ok(())
}

/// Notes a rename done by the caller (`renameat` on directory descriptors).
pub(crate) fn renamed(from: &Path, to: &Path) {
    if recording() {
        push(IoOp::Rename { from: from.to_path_buf(), to: to.to_path_buf() });
    }
}

/// `rename`.
pub(crate) fn rename(from: &Path, to: &Path) -> io::Result<()> {
    std::fs::rename(from, to)?;
    renamed(from, to);
    Ok(())
}

/// `unlink`.
pub(crate) fn remove_file(path: &Path) -> io::Result<()> {
    std::fs::remove_file(path)?;
    if recording() {
        push(IoOp::Unlink { path: path.to_path_buf() });
    }
    Ok(())
}

/// `fsync` of the directory open as `fd`, whose path is `dir`.
pub(crate) fn sync_dir_fd(fd: &impl std::os::fd::AsRawFd, dir: &Path) -> io::Result<()> {
    // SAFETY: a valid descriptor for the duration of the call.
    if unsafe { libc::fsync(fd.as_raw_fd()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if recording() {
        push(IoOp::SyncDir { dir: dir.to_path_buf() });
    }
    Ok(())
}
