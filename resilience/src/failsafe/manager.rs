//! [`FailsafeManager`]: checkpoints, resume, listings, discards and locks. Its other parts live
//! next to what they are about: backups in `backup.rs`, auto-backup in `auto_backup.rs`,
//! statistics in `stats.rs`; the builder is in `builder.rs`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use super::SkippedItem;
use super::backend::Backend;
use super::builder::FailsafeBuilder;
use super::codec;
use super::opfile::{NewRecord, OwnedRecord};
use super::run_info::RunInfo;
use super::{
    Checkpoint, Checkpointable, Durability, OperationLock, OperationSummary, ProcessState,
};
use crate::error::{Error, Result};

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
    pub(crate) store: Backend,
    pub(crate) progress: super::progress::ProgressHooks,
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

    /// The process-wide manager, default settings. Its store: `$RESILIENCE_STORE` when set (a
    /// `postgres://` URL, with feature `postgres`, or a directory), else the directory
    /// `$RESILIENCE_DIR`, else `./.resilience`.
    ///
    /// Never panics: if the directory cannot be created now, the error is logged and each
    /// operation that needs the directory tries again and returns [`Error::Io`] naming it; if
    /// the database cannot be reached, every operation returns [`Error::Database`] saying why.
    pub fn global() -> &'static FailsafeManager {
        static GLOBAL: OnceLock<FailsafeManager> = OnceLock::new();
        GLOBAL.get_or_init(|| {
            let builder = FailsafeManager::builder().with_env_store();
            match builder.clone().build() {
                Ok(manager) => manager,
                Err(error) if builder.is_postgres() => {
                    tracing::error!(target: "resilience::failsafe", %error, "cannot open the checkpoint store");
                    builder.build_failed(&error)
                }
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
    /// Once it returns, every manager of the store, in this process or another, loads this
    /// checkpoint (or a newer one) as the operation's newest. Unless this manager holds the
    /// operation's [`lock`](Self::lock), the save takes the lock for the length of its write,
    /// and fails with [`Error::Locked`] while another manager or process holds it.
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

    /// The items the operation's current run skipped, oldest first: the newest 1,000 of them,
    /// as kept with its newest checkpoint (a run resumed after a failure keeps the skips of
    /// the run before). Empty when the operation has no checkpoint or skipped nothing.
    ///
    /// An item is skipped when its error leaves the tracked loop's body through `?` and
    /// classifies as [`Recovery::Skip`](crate::Recovery::Skip) (see `#[checkpointed]`).
    pub fn skipped(&self, operation_id: &str) -> Result<Vec<SkippedItem>> {
        let Some(record) = self.inner.store.records(operation_id, 1)?.into_iter().next() else {
            return Ok(Vec::new());
        };
        Ok(self.decode_run(operation_id, &record.run)?.skipped.into())
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
    ///
    /// [`Error::Locked`] if another manager or process holds the operation's lock.
    pub fn discard(&self, operation_id: &str) -> Result<bool> {
        self.inner.store.discard_if(operation_id, None)
    }

    /// Deletes the checkpoints of every operation whose newest checkpoint is `Completed`;
    /// returns how many operations were removed.
    ///
    /// Operations whose lock another manager or process holds are left alone and not counted.
    pub fn clear_completed_checkpoints(&self) -> Result<usize> {
        let mut removed = 0;
        for summary in self.operations()? {
            if summary.state != ProcessState::Completed {
                continue;
            }
            let completed = Some((|s| s == ProcessState::Completed) as fn(ProcessState) -> bool);
            match self.inner.store.discard_if(&summary.operation_id, completed) {
                Ok(true) => removed += 1,
                Ok(false) => {}
                Err(Error::Locked { operation_id }) => tracing::info!(
                    target: "resilience::failsafe",
                    operation_id,
                    "completed operation left alone: its lock is held"
                ),
                Err(e) => return Err(e),
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
        OperationLock::acquire(self, operation_id)
    }

    /// Claims one recoverable operation (`Running`, `Paused` or `Failed`) that nobody holds:
    /// its summary and its lock, held until the guard is dropped. `None` when there is none.
    ///
    /// With the Postgres store this is one statement (`FOR UPDATE SKIP LOCKED`), so a pool of
    /// workers on many machines that all call it takes over a dead worker's operations without
    /// two of them ever getting the same one. With a directory store, it tries the recoverable
    /// operations in turn and takes the first whose lock is free and that is still recoverable
    /// under it.
    ///
    /// ```
    /// use resilience::{FailsafeManager, ProcessState};
    /// # let tmp = tempfile::tempdir()?;
    /// let manager = FailsafeManager::open(tmp.path())?;
    /// manager.save_checkpoint("import-7", "Import", ProcessState::Failed, 0.5, &())?;
    /// let (summary, lock) = manager.claim_recoverable()?.expect("one to recover");
    /// assert_eq!(summary.operation_id, "import-7");
    /// assert!(manager.claim_recoverable()?.is_none(), "it is held");
    /// drop(lock);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn claim_recoverable(&self) -> Result<Option<(OperationSummary, OperationLock)>> {
        #[cfg(feature = "postgres")]
        if let Backend::Postgres(store) = &self.inner.store {
            return Ok(store.claim_recoverable()?.map(|(summary, token)| {
                let held = super::backend::Held::Lease(token);
                let lock = OperationLock::new(self, &summary.operation_id, held, PathBuf::new());
                (summary, lock)
            }));
        }
        for candidate in self.recoverable_operations()? {
            let lock = match self.lock(&candidate.operation_id) {
                Ok(lock) => lock,
                Err(Error::Locked { .. }) => continue,
                Err(error) => return Err(error),
            };
            // Read again under the lock: another worker may have finished it meanwhile.
            let records = self.inner.store.records(&candidate.operation_id, 1)?;
            if let Some(newest) = records.into_iter().next()
                && newest.state.is_resumable()
            {
                let summary = OperationSummary {
                    operation_id: candidate.operation_id,
                    operation_name: newest.name,
                    state: newest.state,
                    progress: newest.progress,
                    cursor: newest.cursor,
                    sequence: newest.sequence,
                    saved_at: newest.saved_at,
                    error: newest.error,
                };
                return Ok(Some((summary, lock)));
            }
        }
        Ok(None)
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
        self.save_run(operation_id, operation_name, state, progress, cursor, data, &[])
    }

    /// [`save_with_cursor`](Self::save_with_cursor) with the run section (`run_info.rs`)
    /// encoded in `run`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn save_run<T: Checkpointable>(
        &self,
        operation_id: &str,
        operation_name: &str,
        state: ProcessState,
        progress: f64,
        cursor: u64,
        data: &T,
        run: &[u8],
    ) -> Result<()> {
        thread_local! {
            static BUF: std::cell::Cell<EncodedState> = const { std::cell::Cell::new(EncodedState::new()) };
        }
        let mut encoded = BUF.take();
        let result = encoded.encode(operation_id, data).and_then(|()| {
            self.save_encoded(
                operation_id,
                operation_name,
                state,
                progress,
                cursor,
                &encoded,
                None,
                run,
            )
        });
        BUF.set(encoded);
        result
    }

    /// Saves a checkpoint whose data was encoded beforehand with [`EncodedState::encode`];
    /// `error` is the text of a `Failed` checkpoint, `run` the encoded run section.
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
        run: &[u8],
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
            run,
        };
        self.inner.store.save(operation_id, &record)
    }

    /// The newest checkpoint of `operation_id` if it can be resumed, with its run section.
    pub(crate) fn load_resumable<T: Checkpointable>(
        &self,
        operation_id: &str,
    ) -> Result<Option<(Checkpoint<T>, RunInfo)>> {
        let Some(record) = self.inner.store.records(operation_id, 1)?.into_iter().next() else {
            return Ok(None);
        };
        if !record.state.is_resumable() {
            return Ok(None);
        }
        let run = self.decode_run(operation_id, &record.run)?;
        Ok(Some((decode_checkpoint(operation_id, record)?, run)))
    }

    fn decode_run(&self, operation_id: &str, run: &[u8]) -> Result<RunInfo> {
        RunInfo::decode(run).map_err(|reason| {
            Error::corrupt(self.inner.store.record_location(operation_id), reason.to_owned())
        })
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
