//! Make long-running processing jobs survive faults.
#![warn(missing_docs)]

pub mod error;
pub mod errors;
pub mod failsafe;
pub mod health;
pub mod retry;

#[doc(hidden)]
pub mod __private;

pub use error::{Error, Result};
pub use errors::{
    Classify, ErrorContext, ErrorHandler, ErrorRecord, ErrorStats, Recovery, Severity,
};
pub use failsafe::{
    AutoBackup, BackupInfo, BackupStats, Checkpoint, CheckpointStats, Checkpointable, Durability,
    FailsafeBuilder, FailsafeManager, FailsafeStats, OperationLock, OperationSummary, ProcessState,
};
pub use resilience_macros::{Checkpointable, Classify, checkpointed, protected, retry};
#[cfg(feature = "tokio")]
pub use retry::{AsyncSleeper, TokioSleeper};
pub use retry::{
    Delays, ManualSleeper, NoSleep, OperationRetryStats, RetryConfig, RetryManager,
    RetryManagerBuilder, RetryStats, Sleeper, ThreadSleeper,
};
