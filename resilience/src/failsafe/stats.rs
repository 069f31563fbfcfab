//! Counts of operations by state and of the backups in a store.

use serde::Serialize;

use super::{FailsafeManager, ProcessState};
use crate::error::Result;

/// A snapshot of a store: its operations and its backups, from [`FailsafeManager::statistics`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FailsafeStats {
    /// Operations with checkpoints, by the state of their newest checkpoint.
    pub checkpoints: CheckpointStats,
    /// Backups kept in the store.
    pub backups: BackupStats,
}

/// Operations by the state of their newest checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CheckpointStats {
    /// Operations with at least one checkpoint.
    pub total_operations: u64,
    /// Operations whose newest checkpoint is `Initialized` or `Running`.
    pub active_operations: u64,
    /// Operations whose newest checkpoint is `Completed`.
    pub completed: u64,
    /// Operations whose newest checkpoint is `Failed`.
    pub failed: u64,
    /// Operations whose newest checkpoint is `Paused`.
    pub paused: u64,
}

/// The backups kept in a store, over all source files.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BackupStats {
    /// Number of backups.
    pub count: u64,
    /// Their combined size in bytes.
    pub total_size_bytes: u64,
}

impl FailsafeStats {
    /// The backups' combined size in MiB (2^20 bytes).
    pub fn total_size_mb(&self) -> f64 {
        self.backups.total_size_bytes as f64 / (1024.0 * 1024.0)
    }
}

impl FailsafeManager {
    /// Counts the store's operations by state, and its backups and their size.
    ///
    /// Reads the store directory each time: other processes' operations count too.
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io) naming the directory if it cannot be read.
    ///
    /// # Example
    /// ```
    /// # fn main() -> resilience::Result<()> {
    /// # let tmp = tempfile::tempdir().unwrap();
    /// # let data = tmp.path().join("data.bin");
    /// use resilience::{FailsafeManager, ProcessState};
    ///
    /// let manager = FailsafeManager::open(tmp.path().join("store"))?;
    /// manager.save_checkpoint("import-1", "Import", ProcessState::Running, 0.5, &())?;
    /// manager.save_checkpoint("import-2", "Import", ProcessState::Completed, 1.0, &())?;
    /// std::fs::write(&data, vec![0u8; 1024]).unwrap();
    /// manager.create_backup(&data)?;
    ///
    /// let stats = manager.statistics()?;
    /// assert_eq!(stats.checkpoints.total_operations, 2);
    /// assert_eq!(stats.checkpoints.active_operations, 1);
    /// assert_eq!(stats.checkpoints.completed, 1);
    /// assert_eq!(stats.backups.count, 1);
    /// assert_eq!(stats.backups.total_size_bytes, 1024);
    /// # Ok(()) }
    /// ```
    pub fn statistics(&self) -> Result<FailsafeStats> {
        let mut checkpoints = CheckpointStats::default();
        for operation in self.operations()? {
            checkpoints.total_operations += 1;
            let counter = match operation.state {
                ProcessState::Initialized | ProcessState::Running => {
                    &mut checkpoints.active_operations
                }
                ProcessState::Completed => &mut checkpoints.completed,
                ProcessState::Failed => &mut checkpoints.failed,
                ProcessState::Paused => &mut checkpoints.paused,
            };
            *counter += 1;
        }
        let (count, total_size_bytes) = self.backup_totals()?;
        Ok(FailsafeStats { checkpoints, backups: BackupStats { count, total_size_bytes } })
    }
}
