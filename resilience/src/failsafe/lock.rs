//! Per-operation locks.

use std::path::{Path, PathBuf};

use super::FailsafeManager;
use super::backend::Held;

/// Exclusive right to run one operation, held until dropped.
///
/// Backed by an advisory `flock` on a lock file in the store directory: a second
/// [`FailsafeManager::lock`] of the same id fails with [`Error::Locked`](crate::Error::Locked),
/// whether it comes from this process or another one, and the lock goes away with the process
/// that held it, however it ended.
///
/// While it is held, only the manager that took it writes the operation's checkpoints:
/// [`save_checkpoint`](FailsafeManager::save_checkpoint) and
/// [`discard`](FailsafeManager::discard) from any other manager or process fail with
/// `Error::Locked`. Taking the lock makes the manager read again what others wrote before, so a
/// save under it never hides theirs. Dropping it writes (and syncs) the checkpoints a
/// [`Durability::Buffered`](super::Durability::Buffered) manager still buffers, so the next
/// holder sees them.
#[derive(Debug)]
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct OperationLock {
    operation_id: String,
    path: PathBuf,
    held: Option<Held>,
    manager: FailsafeManager,
}

impl OperationLock {
    pub(crate) fn acquire(manager: &FailsafeManager, operation_id: &str) -> crate::Result<Self> {
        let (held, path) = manager.inner.store.acquire(operation_id)?;
        Ok(OperationLock::new(manager, operation_id, held, path))
    }

    pub(crate) fn new(
        manager: &FailsafeManager,
        operation_id: &str,
        held: Held,
        path: PathBuf,
    ) -> OperationLock {
        OperationLock {
            operation_id: operation_id.to_owned(),
            path,
            held: Some(held),
            manager: manager.clone(),
        }
    }

    /// The manager that holds it.
    pub(crate) fn manager(&self) -> &FailsafeManager {
        &self.manager
    }

    /// The id of the locked operation.
    pub fn operation_id(&self) -> &str {
        &self.operation_id
    }

    /// The lock file (empty for a lease of the Postgres store).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The lease's fencing token (Postgres store): it grows with every new holder of the
    /// operation, so a system downstream can refuse writes of an older holder. `None` for the
    /// lock of a directory store.
    pub fn fencing_token(&self) -> Option<u64> {
        match self.held {
            Some(Held::Lease(token)) => Some(token),
            _ => None,
        }
    }
}

impl Drop for OperationLock {
    fn drop(&mut self) {
        // Give up the manager's hold first: once the descriptor is closed, another process may
        // take the lock and write, and this manager must not trust its cache any longer.
        if let Some(held) = self.held.take() {
            self.manager.inner.store.release(&self.operation_id, &held);
            drop(held);
        }
    }
}
