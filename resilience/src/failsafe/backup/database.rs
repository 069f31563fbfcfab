//! SQLite databases among the sources: what a plain copy of one would miss, and the refusal
//! when this build cannot back it up through SQLite.
//!
//! A database in WAL mode keeps committed transactions in `<db>-wal` until a checkpoint moves
//! them into the main file; one in rollback mode has a `<db>-journal` while a transaction is
//! being written (or after a crash in one). A copy of the main file alone is then incomplete or
//! torn, and a restored file next to a stale `-wal` gets that log replayed over it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::naming::resolve_source;
use crate::error::{Error, Result};
use crate::failsafe::files;

/// `<db>-wal` or `<db>-journal`.
pub(super) fn sidecar(db: &Path, suffix: &str) -> PathBuf {
    let mut name = OsString::from(db.as_os_str());
    name.push(suffix);
    PathBuf::from(name)
}

/// The file beside `db` that a plain copy or restore would get wrong: a non-empty `-wal`, or a
/// `-journal`.
pub(super) fn live_sidecar(db: &Path) -> Option<PathBuf> {
    let wal = sidecar(db, "-wal");
    if std::fs::symlink_metadata(&wal).is_ok_and(|m| m.len() > 0) {
        return Some(wal);
    }
    let journal = sidecar(db, "-journal");
    std::fs::symlink_metadata(&journal).is_ok().then_some(journal)
}

/// When the database last changed: the later of its file's and its `-wal`'s modification
/// times (a commit in WAL mode touches only the `-wal`).
pub(super) fn changed_at(db: &Path, file_mtime: SystemTime) -> SystemTime {
    std::fs::metadata(sidecar(db, "-wal"))
        .and_then(|m| m.modified())
        .map_or(file_mtime, |wal| wal.max(file_mtime))
}

/// The error for a database this build can only copy as a file, while `beside` is in use.
#[cfg_attr(feature = "sqlite", allow(dead_code))]
pub(super) fn unsupported(db: &Path, beside: &Path, restore: bool) -> Error {
    let what = if restore {
        "restoring the file alone would let SQLite replay that log over the restored data"
    } else {
        "a copy of the file alone would miss what that log holds or mix two states"
    };
    Error::Unsupported {
        path: db.to_path_buf(),
        reason: format!(
            "it is a SQLite database in use (`{}` is beside it), and {what}; enable feature \
             `sqlite` of `resilience` to back it up and restore it through SQLite's online \
             backup API",
            beside.display()
        ),
    }
}

/// When the SQLite database `path` last changed (it or its `-wal`), given its file's
/// modification time; `None` if `path` is not a database.
pub(crate) fn database_changed_at(path: &Path, mtime: SystemTime) -> Result<Option<SystemTime>> {
    let (_, is_database) = files::open_source(path).map_err(|e| Error::io(path, e))?;
    if !is_database {
        return Ok(None);
    }
    Ok(Some(changed_at(&resolve_source(path)?, mtime)))
}
