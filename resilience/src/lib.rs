//! Make long-running processing jobs survive faults.
//!
//! `resilience` turns the layers of a failsafe processing job into attributes over a small,
//! fast, crash-safe runtime:
//!
//! | layer | attribute | runtime |
//! |---|---|---|
//! | transient faults: retry with exponential backoff and jitter | [`#[retry]`](macro@retry) | [`RetryManager`], [`RetryConfig`] |
//! | what went wrong and how to recover | [`#[derive(Classify)]`](macro@Classify) | [`ErrorHandler`], [`Classify`] |
//! | progress: checkpoints, resume, locks | [`#[checkpointed]`](macro@checkpointed), [`#[derive(Checkpointable)]`](macro@Checkpointable) | [`FailsafeManager`] |
//! | all of it, plus backups | [`#[protected]`](macro@protected) | [`FailsafeManager::create_backup`] |
//! | one verdict | | [`health::check`] |
//!
//! Everything logs through [`tracing`](https://docs.rs/tracing) under the targets
//! `resilience::retry`, `resilience::errors` and `resilience::failsafe`.
//!
//! # Example
//!
//! A job that imports items: uploads are retried, damaged items are recorded and skipped,
//! progress is checkpointed every 10 items, and a run that failed half-way resumes where it
//! stopped.
//!
//! ```
//! use std::sync::atomic::{AtomicBool, Ordering};
//!
//! use resilience::{Checkpointable, Classify, FailsafeManager, checkpointed, retry};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, thiserror::Error, Classify)]
//! enum ImportError {
//!     #[error("upload timed out")]
//!     #[classify(retry, category = "network", severity = "warning")]
//!     Timeout,
//!     #[error("item {0} is damaged")]
//!     #[classify(skip, code = "E_DAMAGED")]
//!     Damaged(u64),
//!     #[error(transparent)]
//!     #[classify(transparent)]
//!     Store(#[from] resilience::Error),
//! }
//!
//! #[derive(Debug, Default, Serialize, Deserialize, Checkpointable)]
//! struct ImportProgress {
//!     #[checkpoint(cursor)]
//!     done: u64, // items completed; kept up to date by the tracked loop
//!     #[checkpoint(total)]
//!     total: u64, // gives the progress ratio
//!     imported_bytes: u64,
//! }
//!
//! static NETWORK_DOWN: AtomicBool = AtomicBool::new(true);
//!
//! // Retries timeouts (Classify says `retry`), not damaged items.
//! #[retry(max = 3, initial = "1ms")]
//! fn upload(item: u64) -> Result<u64, ImportError> {
//!     match item {
//!         42 => Err(ImportError::Damaged(item)),
//!         70 if NETWORK_DOWN.load(Ordering::Relaxed) => Err(ImportError::Timeout),
//!         _ => Ok(item * 10),
//!     }
//! }
//!
//! #[checkpointed(every = 10, id = "import-{batch}", manager = store)]
//! fn import(
//!     store: &FailsafeManager,
//!     batch: u32,
//!     items: &[u64],
//!     progress: &mut ImportProgress,
//! ) -> Result<(), ImportError> {
//!     progress.total = items.len() as u64;
//!     for &item in items {
//!         // resumes after the last checkpointed item; a damaged item is skipped
//!         progress.imported_bytes += upload(item)?;
//!     }
//!     Ok(())
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let store = FailsafeManager::open(dir.path())?;
//! let items: Vec<u64> = (0..100).collect();
//!
//! // The first run skips the damaged item 42, then stops at item 70 when the upload still
//! // times out after 3 retries; its checkpoint holds the state of item 70.
//! let mut progress = ImportProgress::default();
//! assert!(import(&store, 1, &items, &mut progress).is_err());
//! assert_eq!(store.load_checkpoint::<ImportProgress>("import-1")?.unwrap().cursor, 70);
//!
//! // The next run resumes at item 70 and completes; item 42 stays skipped and recorded.
//! NETWORK_DOWN.store(false, Ordering::Relaxed);
//! let mut progress = ImportProgress::default();
//! import(&store, 1, &items, &mut progress)?;
//! assert_eq!(progress.done, 100);
//! assert_eq!(progress.imported_bytes, ((0..100).sum::<u64>() - 42) * 10);
//! assert_eq!(store.skipped("import-1")?[0].position, 42);
//! # Ok(())
//! # }
//! ```
//!
//! # Features
//!
//! - `tokio`: async twins of the retry functions (`RetryManager::retry_with_backoff_async`, …)
//!   and `async fn` support in the attributes.
//! - `backoff`: interop with the `backoff` crate (0.4, unmaintained: RUSTSEC-2025-0012) —
//!   [`Delays`] implements `backoff::backoff::Backoff` and a `backoff::ExponentialBackoff`
//!   converts into a [`RetryConfig`]. Nobody pays for it by default.
//! - `postgres`: the PostgreSQL store (`FailsafeBuilder::postgres`).
//! - `progress`: `progress::bar()`, progress bars (indicatif) for
//!   [`FailsafeManager::on_progress`].
//!
//! # Running a long job
//!
//! [`pause_on_signals`] makes Ctrl-C pause tracked loops at an item boundary
//! ([`Error::Paused`]); [`recovery::Recovery`] offers to resume unfinished operations at
//! start-up; [`FailsafeManager::on_progress`] reports progress; [`Summary`] prints the figures
//! of the three layers; [`testing::crash_after`] lets a test check its own resume.
//!
//! # Guarantees of the checkpoint store
//!
//! A process killed at any instant leaves the previous or the new checkpoint, never a mix; a torn
//! or bit-flipped file is detected by its checksums and the newest intact record is used; a file
//! without one is [`Error::Corrupt`] naming the path. Saves are synced before
//! [`FailsafeManager::save_checkpoint`] returns unless [`Durability::Buffered`] is chosen. Any
//! operation id maps to a file inside the store directory; files are readable by the owner only.
//! The on-disk format is described in `docs/FORMAT.md`.
//!
//! Many managers and processes share one store safely: a manager writes an operation's file only
//! under the operation's lock (its own, or one taken for the length of the write) and reads
//! again what others wrote when it takes the lock, so a save that returned `Ok` is never hidden;
//! while another manager or process holds the lock, saves and discards are [`Error::Locked`].
//! The directory is identified by what it is, not how it is spelled; listings agree with loads
//! also on file systems with whole-second timestamps; nothing blocks on a FIFO; a read-only
//! store can be read. For workers on many machines, the `postgres` feature keeps the store in
//! PostgreSQL with leases and fencing tokens (`docs/DISTRIBUTED.md`).
//!
//! # Paths
//!
//! Every public item has one path: the types at the crate root, the attributes and derives
//! next to them, and the modules [`health`], [`recovery`], [`testing`] (and `progress` with its
//! feature) for their functions.
#![warn(missing_docs)]

mod error;
mod errors;
mod failsafe;
pub mod health;
mod pause;
#[cfg(feature = "progress")]
pub mod progress;
pub mod recovery;
mod retry;
mod summary;
mod verdict;

mod display;

#[doc(hidden)]
pub mod __private;
#[cfg(test)]
mod test_support;
pub mod testing;

pub use error::{Error, Result};
pub use errors::{
    Classify, ErrorContext, ErrorHandler, ErrorRecord, ErrorStats, Recovery, Severity,
};
pub use failsafe::{
    AutoBackup, BackupInfo, BackupStats, Checkpoint, CheckpointStats, Checkpointable, CorruptFile,
    Durability, FailsafeBuilder, FailsafeManager, FailsafeStats, IntactFile, OperationLock,
    OperationSummary, ProcessState, ProgressUpdate, RecordInfo, SkippedItem, VerifyReport,
};
pub use pause::{cancel_pause, pause_on_signals, pause_requested, request_pause};
pub use resilience_macros::{Checkpointable, Classify, checkpointed, protected, retry};
#[cfg(feature = "tokio")]
pub use retry::{AsyncSleeper, SleepFuture, TokioSleeper, with_async_sleeper};
pub use retry::{
    Classified, Delays, Fallback, ManualSleeper, NoHook, NoSleep, OnRetry, OperationRetryStats,
    RetryBudget, RetryConfig, RetryIf, RetryManager, RetryManagerBuilder, RetryStats, Retrying,
    Sleeper, ThreadSleeper, WhenOk, with_sleeper,
};
pub use summary::Summary;
pub use verdict::{HealthReport, HealthStatus, HealthThresholds};
