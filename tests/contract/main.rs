//! The public contract, checked as the crate documents it: every name, signature, default and
//! documented behaviour, a module per layer (retry, error recording, failsafe, health, attributes).
//! Nothing here sleeps for real: retries run under `NoSleep` or a `ManualSleeper`.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use resilience::health;
use resilience::with_sleeper;
use resilience::{
    AutoBackup, BackupInfo, Checkpoint, Checkpointable, Classify, Durability, Error, ErrorContext,
    ErrorHandler, ErrorRecord, ErrorStats, FailsafeBuilder, FailsafeManager, FailsafeStats,
    ManualSleeper, NoSleep, OperationRetryStats, ProcessState, Recovery, RetryConfig, RetryManager,
    RetryStats, Severity, checkpointed, protected, retry,
};
use resilience::{HealthReport, HealthStatus, HealthThresholds};
use serde::{Deserialize, Serialize};

#[cfg(feature = "tokio")]
mod async_twins;
mod checkpointed_attr;
mod error_layer;
mod failsafe_layer;
mod health_layer;
mod logging;
mod opening_example;
mod protected_attr;
mod protected_defaults;
mod retry_attr;
mod retry_layer;
#[path = "../store_contract/mod.rs"]
mod store_contract;

// The store contract shared with the Postgres store (`tests/postgres.rs`), on the file store.
crate::store_contract_tests!(|_test: &str| {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    (dir, move || FailsafeManager::builder().dir(&path).max_checkpoints(3).build().unwrap())
});

// Shared fixtures

/// A fresh store in a temporary directory.
fn store() -> (tempfile::TempDir, FailsafeManager) {
    let dir = tempfile::tempdir().unwrap();
    let manager = FailsafeManager::open(dir.path().join("store")).unwrap();
    (dir, manager)
}

/// `FailsafeManager::global()`, with `$RESILIENCE_DIR` pointing at a temporary directory before
/// its first use in this test binary.
fn global_store() -> &'static FailsafeManager {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("contract-global-store");
        // A fresh store each run: leftovers of an interrupted run must not be resumed.
        let _ = std::fs::remove_dir_all(&dir);
        // SAFETY: runs once, before the global store reads `RESILIENCE_DIR`; other threads
        // read the environment only through std, whose accesses are synchronized with this.
        unsafe { std::env::set_var("RESILIENCE_DIR", &dir) };
        dir
    });
    FailsafeManager::global()
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize, Checkpointable)]
struct ImportProgress {
    #[checkpoint(cursor)]
    done: u64,
    #[checkpoint(total)]
    total: u64,
    imported_bytes: u64,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize, Checkpointable)]
struct Tally {
    sum: u64,
}

/// An error enum as the crate's example uses it: classified, convertible from the runtime's.
#[derive(Debug, thiserror::Error, Classify)]
enum ImportError {
    #[error("upload timed out")]
    #[classify(retry, code = "E_TIMEOUT", category = "network", severity = "warning")]
    Timeout,
    #[error("item {0} is damaged")]
    #[classify(skip)]
    Damaged(u64),
    #[error("disk is gone")]
    #[classify(abort, severity = "critical")]
    Fatal,
    #[error(transparent)]
    #[classify(transparent)]
    Store(#[from] Error),
}
