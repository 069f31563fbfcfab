//! Checkpoints, resume, operation locks and backups.
//!
//! (Skeleton: the store and the backups land with the failsafe layer.)

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

mod auto_backup;
mod backup;

pub use auto_backup::AutoBackup;
pub use backup::BackupInfo;

/// The lifecycle state of an operation, as stored in its checkpoints.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize,
)]
pub enum ProcessState {
    /// Created, no item processed yet.
    Initialized,
    /// In progress.
    Running,
    /// Stopped on purpose; can be resumed.
    Paused,
    /// Finished successfully; a new run starts fresh.
    Completed,
    /// Stopped by an error or a panic; can be resumed.
    Failed,
}

impl ProcessState {
    /// `true` for the states a run can resume from: `Running`, `Paused` and `Failed`.
    pub const fn is_resumable(self) -> bool {
        matches!(self, ProcessState::Running | ProcessState::Paused | ProcessState::Failed)
    }
}

/// A state type that can be saved in checkpoints.
///
/// Derive it with `#[derive(resilience::Checkpointable)]` next to serde's derives.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be stored in a checkpoint",
    note = "add `#[derive(serde::Serialize, serde::Deserialize, resilience::Checkpointable)]` to `{Self}`"
)]
pub trait Checkpointable: Serialize + DeserializeOwned {
    /// Fingerprint of the type's name, field names, field types and version.
    const SCHEMA: u64;

    /// The number of items completed, when the type mirrors it in a `#[checkpoint(cursor)]` field.
    fn cursor(&self) -> u64 {
        0
    }

    /// Sets the `#[checkpoint(cursor)]` field, if there is one.
    fn set_cursor(&mut self, _n: u64) {}

    /// The `#[checkpoint(total)]` field, if there is one.
    fn total(&self) -> Option<u64> {
        None
    }
}

impl Checkpointable for () {
    const SCHEMA: u64 = 0x7265_7369_6c69_656e; // "resilien"
}

/// One saved checkpoint of an operation.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint<T> {
    /// The operation's id.
    pub operation_id: String,
    /// The operation's human-readable name.
    pub operation_name: String,
    /// The state the operation was in.
    pub state: ProcessState,
    /// Completed fraction in `[0, 1]`.
    pub progress: f64,
    /// Items of the tracked loop completed when the checkpoint was taken.
    pub cursor: u64,
    /// The user's state.
    pub data: T,
    /// Increases by one with every checkpoint of the operation.
    pub sequence: u64,
    /// When it was saved.
    pub saved_at: SystemTime,
    /// The error text of a `Failed` checkpoint.
    pub error: Option<String>,
}

/// Whether `save_checkpoint` waits for the data to reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Synced (`fdatasync`) before `save_checkpoint` returns. Survives power loss.
    #[default]
    Sync,
    /// Written to the OS before returning, synced later. Survives a process crash, not power loss.
    Buffered,
}

/// Owns a store directory: checkpoints, locks and backups.
///
/// A cheap-to-clone handle (`Arc` inside); `Send + Sync`.
#[derive(Debug, Clone)]
pub struct FailsafeManager {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) dir: PathBuf,
    pub(crate) max_checkpoints: usize,
    pub(crate) max_backups: usize,
    pub(crate) durability: Durability,
}

/// Builds a [`FailsafeManager`].
#[derive(Debug, Clone)]
pub struct FailsafeBuilder {
    dir: Option<PathBuf>,
    max_checkpoints: usize,
    max_backups: usize,
    durability: Durability,
}

impl Default for FailsafeBuilder {
    fn default() -> Self {
        FailsafeBuilder {
            dir: None,
            max_checkpoints: 5,
            max_backups: 5,
            durability: Durability::Sync,
        }
    }
}

impl FailsafeBuilder {
    /// The store directory (created if missing). Default: `$RESILIENCE_DIR`, else `./.resilience`.
    pub fn dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.dir = Some(dir.as_ref().to_path_buf());
        self
    }

    /// Checkpoints kept per operation (default 5, at least 1).
    pub fn max_checkpoints(mut self, n: usize) -> Self {
        self.max_checkpoints = n;
        self
    }

    /// Backups kept per source file (default 5, at least 1).
    pub fn max_backups(mut self, n: usize) -> Self {
        self.max_backups = n;
        self
    }

    /// Default [`Durability::Sync`].
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Opens (creating if needed) the store directory.
    pub fn build(self) -> Result<FailsafeManager> {
        if self.max_checkpoints == 0 {
            return Err(Error::InvalidConfig("`max_checkpoints` must be at least 1, got 0".into()));
        }
        if self.max_backups == 0 {
            return Err(Error::InvalidConfig("`max_backups` must be at least 1, got 0".into()));
        }
        let dir = self.dir.unwrap_or_else(default_dir);
        Ok(FailsafeManager {
            inner: Arc::new(Inner {
                dir,
                max_checkpoints: self.max_checkpoints,
                max_backups: self.max_backups,
                durability: self.durability,
            }),
        })
    }
}

fn default_dir() -> PathBuf {
    std::env::var_os("RESILIENCE_DIR").map_or_else(|| PathBuf::from(".resilience"), PathBuf::from)
}

impl FailsafeManager {
    /// Opens the store in `dir` with the default settings.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        Self::builder().dir(dir).build()
    }

    /// A builder for the settings.
    pub fn builder() -> FailsafeBuilder {
        FailsafeBuilder::default()
    }

    /// The store directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }
}
