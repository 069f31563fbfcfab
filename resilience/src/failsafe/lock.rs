//! Per-operation locks.

use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Exclusive right to run one operation, held until dropped.
///
/// Backed by an advisory `flock` on a lock file in the store directory: a second
/// [`FailsafeManager::lock`](super::FailsafeManager::lock) of the same id fails with
/// [`Error::Locked`], whether it comes from this process or another one, and the lock goes away
/// with the process that held it, however it ended.
#[derive(Debug)]
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct OperationLock {
    operation_id: String,
    path: PathBuf,
    _file: File,
}

impl OperationLock {
    pub(crate) fn acquire(operation_id: &str, path: PathBuf) -> Result<OperationLock> {
        let file = super::store::open_options(true)
            .create(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => {
                Ok(OperationLock { operation_id: operation_id.to_owned(), path, _file: file })
            }
            Err(TryLockError::WouldBlock) => {
                Err(Error::Locked { operation_id: operation_id.to_owned() })
            }
            Err(TryLockError::Error(e)) => Err(Error::io(&path, e)),
        }
    }

    /// The id of the locked operation.
    pub fn operation_id(&self) -> &str {
        &self.operation_id
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
