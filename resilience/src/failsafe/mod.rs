//! Checkpoints, resume, operation locks and backups.
//!
//! A [`FailsafeManager`] owns a store directory. Each operation has one checkpoint file there,
//! holding its last few checkpoints in checksummed slots (the format is in `docs/FORMAT.md`):
//!
//! - **Crash-safe**: a process killed at any instant leaves the previous or the new checkpoint,
//!   never a mix. A torn or bit-flipped record is detected by its checksum and the newest intact
//!   one is used; a file with none is [`Error::Corrupt`] naming the file.
//! - **Versioned**: magic bytes, format version, codec id, schema fingerprint
//!   ([`Checkpointable::SCHEMA`]) and a checksum per record; decoding is bounded.
//! - **Any id**: an operation id of any content maps to a file inside the directory and
//!   round-trips exactly.
//! - **Durable by default**: with [`Durability::Sync`] a save is one in-place write and one
//!   `fdatasync`.
//! - **Private**: files are created `0600`, the directory `0700`; symbolic links planted in the
//!   directory are never followed.

mod catalog;
mod codec;
mod format;
mod ids;
mod inspect;
mod lock;
mod store;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

mod auto_backup;
mod backup;
mod stats;

pub use auto_backup::AutoBackup;
pub use backup::BackupInfo;
pub use inspect::{CorruptFile, IntactFile, RecordInfo, VerifyReport};
pub use lock::OperationLock;
pub use stats::{BackupStats, CheckpointStats, FailsafeStats};
use store::{NewRecord, OwnedRecord, Store};

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
    /// Written in place and synced (`fdatasync`) before `save_checkpoint` returns: survives a
    /// crash of the process and of the machine.
    #[default]
    Sync,
    /// Kept in memory and written lazily: when the operation's state changes (to `Completed`
    /// or `Failed`, for example), when buffered records are a second old, when the buffers hold
    /// 8 MiB, on a read of the operation, on [`FailsafeManager::flush`] and when the last handle
    /// to the manager is dropped (the last two also sync). A crash may lose the most recent
    /// buffered checkpoints, never an older one, and never leaves a damaged file.
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

/// Owns a store directory: checkpoints, locks and backups.
///
/// A cheap-to-clone handle (`Arc` inside); `Send + Sync`. Open files are cached per operation,
/// so a durable save is one write and one sync; operations are locked independently, so saves
/// of different operations run in parallel.
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
    store: Store,
}

/// Builds a [`FailsafeManager`].
///
/// ```
/// use resilience::{Durability, FailsafeManager};
/// # let tmp = tempfile::tempdir()?;
/// let manager = FailsafeManager::builder()
///     .dir(tmp.path().join("store"))
///     .max_checkpoints(10)
///     .durability(Durability::Buffered)
///     .build()?;
/// assert!(manager.operations()?.is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
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

/// Most checkpoints kept per operation.
const MAX_CHECKPOINTS: usize = 65_535;

impl FailsafeBuilder {
    /// The store directory (created if missing). Default: `$RESILIENCE_DIR`, else `./.resilience`.
    pub fn dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.dir = Some(dir.as_ref().to_path_buf());
        self
    }

    /// Checkpoints kept per operation (default 5, from 1 to 65,535).
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

    /// Checks the settings and opens (creating it `0700` if needed) the store directory.
    pub fn build(self) -> Result<FailsafeManager> {
        let manager = self.build_unopened()?;
        manager.inner.store.ensure_dir()?;
        Ok(manager)
    }

    fn build_unopened(self) -> Result<FailsafeManager> {
        if !(1..=MAX_CHECKPOINTS).contains(&self.max_checkpoints) {
            return Err(Error::InvalidConfig(format!(
                "`max_checkpoints` must be between 1 and {MAX_CHECKPOINTS}, got {}",
                self.max_checkpoints
            )));
        }
        if self.max_backups == 0 {
            return Err(Error::InvalidConfig("`max_backups` must be at least 1, got 0".into()));
        }
        let dir = self.dir.unwrap_or_else(default_dir);
        Ok(FailsafeManager {
            inner: Arc::new(Inner {
                store: Store::new(dir.clone(), self.max_checkpoints, self.durability),
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
    /// Opens the store in `dir` (creating it `0700` if needed) with the default settings.
    ///
    /// ```
    /// use resilience::FailsafeManager;
    /// # let tmp = tempfile::tempdir()?;
    /// let manager = FailsafeManager::open(tmp.path())?;
    /// assert_eq!(manager.dir(), tmp.path());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        Self::builder().dir(dir).build()
    }

    /// A builder for the settings.
    pub fn builder() -> FailsafeBuilder {
        FailsafeBuilder::default()
    }

    /// The process-wide manager: directory `$RESILIENCE_DIR`, else `./.resilience`; default
    /// settings.
    ///
    /// Never panics: if the directory cannot be created now, the error is logged and each
    /// operation that needs the directory tries again and returns [`Error::Io`] naming it.
    pub fn global() -> &'static FailsafeManager {
        static GLOBAL: OnceLock<FailsafeManager> = OnceLock::new();
        GLOBAL.get_or_init(|| {
            let builder = FailsafeManager::builder();
            match builder.clone().build() {
                Ok(manager) => manager,
                Err(error) => {
                    tracing::warn!(target: "resilience::failsafe", %error, "cannot open the checkpoint store yet");
                    builder.build_unopened().expect("the default settings are valid")
                }
            }
        })
    }

    /// The store directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Saves a checkpoint of `operation_id` with `data` and its [`Checkpointable::cursor`].
    ///
    /// With [`Durability::Sync`] (the default) the checkpoint is on disk when this returns. The
    /// operation keeps its newest `max_checkpoints` checkpoints.
    ///
    /// ```
    /// use resilience::{Checkpointable, FailsafeManager, ProcessState};
    ///
    /// #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    /// struct Import { done: u64 }
    /// impl Checkpointable for Import {
    ///     const SCHEMA: u64 = 1;
    ///     fn cursor(&self) -> u64 { self.done }
    /// }
    ///
    /// # let tmp = tempfile::tempdir()?;
    /// let manager = FailsafeManager::open(tmp.path())?;
    /// manager.save_checkpoint("import-7", "Import", ProcessState::Running, 0.5, &Import { done: 50 })?;
    ///
    /// let checkpoint = manager.load_checkpoint::<Import>("import-7")?.expect("saved above");
    /// assert_eq!(checkpoint.data, Import { done: 50 });
    /// assert_eq!((checkpoint.cursor, checkpoint.state), (50, ProcessState::Running));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn save_checkpoint<T: Checkpointable>(
        &self,
        operation_id: &str,
        operation_name: &str,
        state: ProcessState,
        progress: f64,
        data: &T,
    ) -> Result<()> {
        self.save_with_cursor(operation_id, operation_name, state, progress, data.cursor(), data)
    }

    /// The newest intact checkpoint of `operation_id`, or `None` if it has none.
    ///
    /// A file that holds no intact record is [`Error::Corrupt`]; a checkpoint of another
    /// version of `T` is [`Error::SchemaMismatch`].
    pub fn load_checkpoint<T: Checkpointable>(
        &self,
        operation_id: &str,
    ) -> Result<Option<Checkpoint<T>>> {
        let records = self.inner.store.records(operation_id, 1)?;
        records.into_iter().next().map(|r| decode_checkpoint(operation_id, r)).transpose()
    }

    /// The operation's checkpoints, newest first, at most `max_checkpoints` of them.
    ///
    /// Stops at the first older checkpoint written with another schema; fails with
    /// [`Error::SchemaMismatch`] if the newest one was.
    pub fn history<T: Checkpointable>(&self, operation_id: &str) -> Result<Vec<Checkpoint<T>>> {
        let records = self.inner.store.records(operation_id, self.inner.max_checkpoints)?;
        let mut out = Vec::with_capacity(records.len());
        for (i, record) in records.into_iter().enumerate() {
            if i > 0 && record.schema != T::SCHEMA {
                break;
            }
            out.push(decode_checkpoint(operation_id, record)?);
        }
        Ok(out)
    }

    /// Whether the newest checkpoint of `operation_id` is `Running`, `Paused` or `Failed`.
    pub fn can_resume(&self, operation_id: &str) -> Result<bool> {
        let records = self.inner.store.records(operation_id, 1)?;
        Ok(records.first().is_some_and(|r| r.state.is_resumable()))
    }

    /// Calls `f` with the newest checkpoint of `operation_id` if it can be resumed.
    ///
    /// [`Error::NothingToResume`] when the operation has no checkpoint or its newest one is
    /// `Initialized` or `Completed`.
    pub fn resume_operation<T: Checkpointable, R>(
        &self,
        operation_id: &str,
        f: impl FnOnce(Checkpoint<T>) -> R,
    ) -> Result<R> {
        match self.load_checkpoint::<T>(operation_id)? {
            Some(checkpoint) if checkpoint.state.is_resumable() => Ok(f(checkpoint)),
            _ => Err(Error::NothingToResume { operation_id: operation_id.to_owned() }),
        }
    }

    /// The operations whose newest checkpoint is `Running`, `Paused` or `Failed`, by id.
    pub fn recoverable_operations(&self) -> Result<Vec<OperationSummary>> {
        self.inner.store.summaries(ProcessState::is_resumable)
    }

    /// Every operation in the store, by id.
    ///
    /// Files that are not checkpoint files are ignored; damaged ones are skipped with a warning
    /// (loading such an operation reports [`Error::Corrupt`]).
    pub fn operations(&self) -> Result<Vec<OperationSummary>> {
        self.inner.store.summaries(|_| true)
    }

    /// Deletes every checkpoint of `operation_id`; `false` if it had none.
    pub fn discard(&self, operation_id: &str) -> Result<bool> {
        self.inner.store.discard_if(operation_id, None)
    }

    /// Deletes the checkpoints of every operation whose newest checkpoint is `Completed`;
    /// returns how many operations were removed.
    pub fn clear_completed_checkpoints(&self) -> Result<usize> {
        let mut removed = 0;
        for summary in self.operations()? {
            if summary.state == ProcessState::Completed
                && self
                    .inner
                    .store
                    .discard_if(&summary.operation_id, Some(|s| s == ProcessState::Completed))?
            {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Takes the lock of `operation_id`; it is held until the guard is dropped.
    ///
    /// [`Error::Locked`] if it is held already, by this process or another one.
    ///
    /// ```
    /// use resilience::{Error, FailsafeManager};
    /// # let tmp = tempfile::tempdir()?;
    /// let manager = FailsafeManager::open(tmp.path())?;
    /// let guard = manager.lock("import-7")?;
    /// assert!(matches!(manager.lock("import-7"), Err(Error::Locked { .. })));
    /// drop(guard);
    /// assert!(manager.lock("import-7").is_ok());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn lock(&self, operation_id: &str) -> Result<OperationLock> {
        self.inner.store.lock(operation_id)
    }

    /// Writes and syncs every buffered checkpoint ([`Durability::Buffered`]); with
    /// [`Durability::Sync`] there is nothing to do.
    pub fn flush(&self) -> Result<()> {
        if self.inner.durability == Durability::Sync {
            return Ok(());
        }
        self.inner.store.flush(true)
    }
}

/// Support for the `#[checkpointed]` and `#[protected]` runtime.
impl FailsafeManager {
    /// Saves a checkpoint with an explicit loop `cursor` (the runtime keeps the loop position
    /// itself, whether or not `T` mirrors it in a field).
    #[doc(hidden)]
    pub fn save_with_cursor<T: Checkpointable>(
        &self,
        operation_id: &str,
        operation_name: &str,
        state: ProcessState,
        progress: f64,
        cursor: u64,
        data: &T,
    ) -> Result<()> {
        thread_local! {
            static BUF: std::cell::Cell<EncodedState> = const { std::cell::Cell::new(EncodedState::new()) };
        }
        let mut encoded = BUF.take();
        let result = encoded.encode(operation_id, data).and_then(|()| {
            self.save_encoded(operation_id, operation_name, state, progress, cursor, &encoded, None)
        });
        BUF.set(encoded);
        result
    }

    /// Saves a checkpoint whose data was encoded beforehand with [`EncodedState::encode`];
    /// `error` is the text of a `Failed` checkpoint.
    #[doc(hidden)]
    #[allow(clippy::too_many_arguments)]
    pub fn save_encoded(
        &self,
        operation_id: &str,
        operation_name: &str,
        state: ProcessState,
        progress: f64,
        cursor: u64,
        encoded: &EncodedState,
        error: Option<&str>,
    ) -> Result<()> {
        let record = NewRecord {
            name: operation_name,
            state,
            progress,
            cursor,
            schema: encoded.schema,
            codec: codec::BINCODE2,
            error,
            payload: &encoded.bytes,
        };
        self.inner.store.save(operation_id, &record)
    }

    /// Saves a `Failed` checkpoint carrying `error` and the data, cursor and progress of the
    /// operation's newest checkpoint, copied without decoding them, so a resumed run sees the
    /// state of the last checkpointed item boundary and never a half-applied one.
    ///
    /// Returns `Ok(false)` and writes nothing when the operation has no checkpoint or its newest
    /// one is `Completed` (that data belongs to a finished run): the runtime then saves the
    /// state it has with [`save_with_cursor`](Self::save_with_cursor). The runtime saves a
    /// checkpoint when a fresh run starts, so the newest checkpoint always belongs to the
    /// current run.
    #[doc(hidden)]
    pub fn save_failed(
        &self,
        operation_id: &str,
        operation_name: &str,
        error: &str,
    ) -> Result<bool> {
        self.inner.store.save_failed(operation_id, operation_name, error)
    }
}

/// A state encoded for [`FailsafeManager::save_encoded`]; reuse one to avoid allocating on
/// every checkpoint.
#[doc(hidden)]
#[derive(Debug, Clone, Default)]
pub struct EncodedState {
    bytes: Vec<u8>,
    schema: u64,
}

impl EncodedState {
    /// An empty buffer.
    pub const fn new() -> Self {
        EncodedState { bytes: Vec::new(), schema: 0 }
    }

    /// Replaces the contents with the encoding of `data` (reusing the allocation).
    pub fn encode<T: Checkpointable>(&mut self, operation_id: &str, data: &T) -> Result<()> {
        self.schema = T::SCHEMA;
        codec::encode_into(data, &mut self.bytes)
            .map_err(|reason| Error::Codec { operation_id: operation_id.to_owned(), reason })
    }

    /// The encoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

fn decode_checkpoint<T: Checkpointable>(
    operation_id: &str,
    r: OwnedRecord,
) -> Result<Checkpoint<T>> {
    if r.schema != T::SCHEMA {
        return Err(Error::SchemaMismatch {
            operation_id: operation_id.to_owned(),
            expected: T::SCHEMA,
            found: r.schema,
        });
    }
    let data = codec::decode(r.codec, &r.payload)
        .map_err(|reason| Error::Codec { operation_id: operation_id.to_owned(), reason })?;
    Ok(Checkpoint {
        operation_id: operation_id.to_owned(),
        operation_name: r.name,
        state: r.state,
        progress: r.progress,
        cursor: r.cursor,
        data,
        sequence: r.sequence,
        saved_at: r.saved_at,
        error: r.error,
    })
}
