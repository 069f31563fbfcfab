//! The types a checkpoint is made of: states, the `Checkpointable` trait, checkpoints and
//! summaries, durability.

use std::time::SystemTime;

use serde::Serialize;
use serde::de::DeserializeOwned;

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
    /// Fingerprint of the type's name, field names, field types and version, and of the
    /// structs and enums nested in its fields.
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
    /// Written in place and synced (`fdatasync`) before `save_checkpoint` returns: survives a
    /// crash of the process and of the machine.
    #[default]
    Sync,
    /// While the manager holds the operation's lock: kept in memory and written lazily: when
    /// the operation's state changes (to `Completed` or `Failed`, for example), when buffered
    /// records are a second old, when the buffers hold 8 MiB, on a read of the operation, and
    /// synced on [`FailsafeManager::flush`](super::FailsafeManager::flush), when the lock is
    /// released and when the last handle to the manager is dropped. Without the lock, a save is
    /// written to the file at once (under a short lock), without a sync.
    ///
    /// A crash, or a power loss, may lose the most recent buffered checkpoints, never one that
    /// was synced, and never leaves a file without an intact record: the file of a new
    /// operation is synced before it is named, and an unsynced write never goes into the slot
    /// of the newest synced record.
    Buffered,
}

/// The newest checkpoint of an operation, without its data.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct OperationSummary {
    /// The operation's id.
    pub operation_id: String,
    /// The operation's human-readable name.
    pub operation_name: String,
    /// The state of its newest checkpoint.
    pub state: ProcessState,
    /// Completed fraction of its newest checkpoint.
    pub progress: f64,
    /// Items of the tracked loop completed at its newest checkpoint.
    pub cursor: u64,
    /// Sequence number of its newest checkpoint.
    pub sequence: u64,
    /// When its newest checkpoint was saved.
    pub saved_at: SystemTime,
    /// The error text of a `Failed` checkpoint.
    pub error: Option<String>,
}

/// An item of a tracked loop that was skipped: its error left the loop body through `?` and
/// classified as [`Recovery::Skip`](crate::Recovery::Skip). See
/// [`FailsafeManager::skipped`](super::FailsafeManager::skipped).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
pub struct SkippedItem {
    /// The item's 0-based position in the tracked loop.
    pub position: u64,
    /// The error's [`Classify::error_code`](crate::Classify::error_code).
    pub error_code: String,
    /// The error's `Display` (at most 1 KiB of it).
    pub message: String,
}
