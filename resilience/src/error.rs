//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong inside `resilience` itself.
///
/// Every variant names the thing it is about: a path, an operation id or a configuration key.
/// The enum is `#[non_exhaustive]`: match it with a wildcard arm.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file operation failed.
    #[error("I/O error on `{}`: {source}", path.display())]
    Io {
        /// The file or directory the operation was about.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A store file exists but holds no intact record, or a backup does not match its checksum.
    #[error("corrupt file `{}`: {reason}", path.display())]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// What the check found.
        reason: String,
    },

    /// The stored checkpoint was written by a different version of the state type.
    #[error(
        "checkpoint of operation `{operation_id}` has schema {found:#018x}, \
         but the state type has schema {expected:#018x}"
    )]
    SchemaMismatch {
        /// The operation whose checkpoint was read.
        operation_id: String,
        /// `Checkpointable::SCHEMA` of the type asked for.
        expected: u64,
        /// The fingerprint stored in the checkpoint.
        found: u64,
    },

    /// Another run (in this or another process) holds the operation's lock.
    #[error("operation `{operation_id}` is already running (its lock is held)")]
    Locked {
        /// The operation that is locked.
        operation_id: String,
    },

    /// `resume_operation` found no resumable checkpoint.
    #[error("operation `{operation_id}` has no resumable checkpoint")]
    NothingToResume {
        /// The operation asked for.
        operation_id: String,
    },

    /// A file to back up does not exist.
    #[error("cannot back up `{}`: the file does not exist", path.display())]
    BackupMissing {
        /// The missing source file.
        path: PathBuf,
    },

    /// A file kept changing while it was copied: a backup is a state the file really had, and
    /// three copies in a row saw its size, modification or change time, or inode move. Nothing
    /// was published and no older backup was rotated out.
    #[error(
        "cannot back up `{}`: it changed while it was being copied, 3 times in a row; \
         no backup was made",
        path.display()
    )]
    SourceChanged {
        /// The file that kept changing.
        path: PathBuf,
    },

    /// The file cannot be handled safely in this build; `reason` says why and what to enable
    /// (a SQLite database with a live `-wal` or `-journal` needs feature `sqlite`).
    #[error("cannot back up or restore `{}`: {reason}", path.display())]
    Unsupported {
        /// The file that was refused.
        path: PathBuf,
        /// Why, and what would make it work.
        reason: String,
    },

    /// A checkpoint's data could not be encoded or decoded.
    #[error("cannot encode or decode the data of operation `{operation_id}`: {reason}")]
    Codec {
        /// The operation whose data failed.
        operation_id: String,
        /// What the codec reported.
        reason: String,
    },

    /// The store cannot hold this operation id as it is (a Postgres store refuses an id with a
    /// NUL character, which the file store accepts): nothing was written.
    #[error("operation id `{}` is not accepted by this store: {reason}", operation_id.escape_debug())]
    InvalidOperationId {
        /// The id as it was given.
        operation_id: String,
        /// Why the store refuses it.
        reason: String,
    },

    /// A configuration value is out of range; the message names the setting.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),

    /// A `#[protected(restore_on_failure)]` operation failed, and one of its files could not be
    /// restored from its backup. Its checkpoint was not rolled back to the entry state either:
    /// it holds the state of the last checkpointed item, with this error.
    #[error(
        "operation `{operation_id}` failed ({failure}), and `{}` could not be restored from its \
         backup: {source}; its checkpoint was not rolled back",
        path.display()
    )]
    RestoreFailed {
        /// The operation that failed.
        operation_id: String,
        /// The file that could not be restored.
        path: PathBuf,
        /// The error of the operation itself.
        failure: String,
        /// Why the restore failed.
        #[source]
        source: Box<Error>,
    },

    /// A `#[checkpointed]` call would resume a checkpoint written by a call with other
    /// arguments: resuming would mix two inputs.
    #[error(
        "operation `{operation_id}` has a checkpoint of a call with other arguments ({}): \
         resuming would mix two inputs; finish or discard the old run, start it afresh with \
         `on_input_change = \"restart\"`, or leave parameters out of the check with \
         `input = [..]` or `input = none`",
        changed.iter().map(|name| format!("`{name}` changed")).collect::<Vec<_>>().join(", ")
    )]
    InputChanged {
        /// The operation whose checkpoint was found.
        operation_id: String,
        /// The parameters whose arguments differ from the checkpoint's.
        changed: Vec<String>,
    },

    /// A save by a worker whose lease on the operation expired or was taken over (Postgres
    /// store): another worker may have made progress since, so nothing was written.
    #[error(
        "operation `{operation_id}`: this worker's lease expired or another worker took the \
         operation over; the save was refused and nothing was written"
    )]
    LeaseLost {
        /// The operation whose lease was lost.
        operation_id: String,
    },

    /// The database store failed (Postgres store). `retryable` when the connection dropped or
    /// the server asked for another try; the next call reconnects.
    #[error("database error while {what}: {source}")]
    Database {
        /// What the store was doing, and where.
        what: String,
        /// Whether another try may succeed.
        retryable: bool,
        /// The client's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// A tracked loop stopped at an item boundary because a pause was requested
    /// ([`pause_on_signals`](crate::pause_on_signals), [`request_pause`](crate::request_pause)):
    /// its `Paused` checkpoint holds every finished item, and the next call resumes there.
    #[error("operation `{operation_id}` paused; run it again to resume")]
    Paused {
        /// The operation that paused.
        operation_id: String,
    },

    /// [`testing::crash_after`](crate::testing::crash_after) stopped the run as a kill would
    /// have: the store holds its last `Running` checkpoint and no failure.
    #[error("operation `{operation_id}` stopped by a simulated crash")]
    SimulatedCrash {
        /// The operation that was stopped.
        operation_id: String,
    },

    /// A protected operation panicked; its failure was recorded before the panic went on.
    #[error("operation `{operation_id}` panicked: {message}")]
    Panicked {
        /// The operation that panicked.
        operation_id: String,
        /// The panic payload, when it was a string.
        message: String,
    },
}

/// `Result` with [`Error`] as the error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps an I/O error with the path it happened on.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }

    /// Builds a [`Error::Corrupt`] for `path`.
    pub(crate) fn corrupt(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Corrupt { path: path.into(), reason: reason.into() }
    }
}
