//! The public contract, checked the way DESIGN.md writes it: every name, signature, default and
//! documented behaviour, grouped by layer (retry, error recording, failsafe, health, attributes).
//! Nothing here sleeps for real: retries run under `NoSleep` or a `ManualSleeper`.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use resilience::health::{self, HealthReport, HealthStatus, HealthThresholds};
use resilience::retry::with_sleeper;
use resilience::{
    AutoBackup, BackupInfo, Checkpoint, Checkpointable, Classify, Durability, Error, ErrorContext,
    ErrorHandler, ErrorRecord, ErrorStats, FailsafeBuilder, FailsafeManager, FailsafeStats,
    ManualSleeper, NoSleep, OperationRetryStats, OperationSummary, ProcessState, Recovery,
    RetryConfig, RetryManager, RetryStats, Severity, checkpointed, protected, retry,
};
use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------------------------------------
// Shared fixtures
// ---------------------------------------------------------------------------------------------

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

/// An error enum as DESIGN.md's example uses it: classified, convertible from the runtime's.
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

// ---------------------------------------------------------------------------------------------
// Retry layer: RetryConfig, RetryManager, RetryStats
// ---------------------------------------------------------------------------------------------

fn manual() -> (ManualSleeper, RetryManager) {
    let clock = ManualSleeper::new();
    let manager = RetryManager::builder().sleeper(clock.clone()).build();
    (clock, manager)
}

#[test]
fn retry_config_builder_chain_takes_every_setting() {
    let max_retries: u32 = 4;
    let config = RetryConfig::new(max_retries)
        .initial_delay(Duration::from_millis(10))
        .max_delay(Duration::from_millis(50))
        .multiplier(3.0)
        .jitter(0.0)
        .max_elapsed(Duration::from_secs(60));
    assert!(config.validate().is_ok());

    let (clock, manager) = manual();
    let result: Result<(), String> =
        manager.retry_with_backoff("config-chain", &config, || Err("down".to_string()));
    assert_eq!(result, Err("down".to_string()));
    // 10ms, then ×3 = 30ms, then capped at max_delay = 50ms.
    assert_eq!(clock.sleeps(), [10, 30, 50, 50].map(Duration::from_millis));
}

#[test]
fn retry_config_default_is_new_3_100ms_30s_2_0_5() {
    let expected = RetryConfig::new(3)
        .initial_delay(Duration::from_millis(100))
        .max_delay(Duration::from_secs(30))
        .multiplier(2.0)
        .jitter(0.5);
    assert_eq!(RetryConfig::default(), expected);
    assert!(RetryConfig::default().validate().is_ok());

    // Behaviour of the default: 3 retries, delays 100ms·2^k each within ±50%.
    let (clock, manager) = manual();
    let mut attempts = 0;
    let result: Result<(), &str> =
        manager.retry_with_backoff("config-default", &RetryConfig::default(), || {
            attempts += 1;
            Err("down")
        });
    assert_eq!(result, Err("down"));
    assert_eq!(attempts, 4);
    let sleeps = clock.sleeps();
    assert_eq!(sleeps.len(), 3);
    for (k, delay) in sleeps.iter().enumerate() {
        let base = 100.0 * 2f64.powi(k as i32);
        let ms = delay.as_secs_f64() * 1000.0;
        assert!((base * 0.5 - 1e-6..=base * 1.5 + 1e-6).contains(&ms), "delay {k}: {ms}ms");
    }
}

#[test]
fn retry_config_without_max_elapsed_is_unbounded_in_time() {
    // `max_elapsed` unset by default: a long schedule runs every attempt.
    let config = RetryConfig::new(12).jitter(0.0);
    let (_clock, manager) = manual();
    let mut attempts = 0;
    let _: Result<(), &str> = manager.retry_with_backoff("no-budget", &config, || {
        attempts += 1;
        Err("down")
    });
    assert_eq!(attempts, 13);
}

#[test]
fn invalid_retry_config_is_invalid_config_from_validate() {
    for config in [
        RetryConfig::new(3).jitter(1.5),
        RetryConfig::new(3).jitter(-0.1),
        RetryConfig::new(3).multiplier(f64::NAN),
        RetryConfig::new(3)
            .initial_delay(Duration::from_secs(60))
            .max_delay(Duration::from_secs(1)),
    ] {
        assert!(
            matches!(config.validate(), Err(Error::InvalidConfig(..))),
            "{config:?} should be invalid"
        );
    }
}

#[test]
fn retry_with_backoff_makes_max_plus_one_attempts_and_returns_the_last_error() {
    let manager = RetryManager::builder().sleeper(NoSleep).build();
    let mut calls = 0;
    let result: Result<u32, String> =
        manager.retry_with_backoff("exhaust", &RetryConfig::new(3), || {
            calls += 1;
            Err(format!("failure {calls}"))
        });
    assert_eq!(result, Err("failure 4".to_string()));

    let mut calls = 0;
    let result: Result<u32, String> =
        manager.retry_with_backoff("recover", &RetryConfig::new(3), || {
            calls += 1;
            if calls < 3 { Err("transient".into()) } else { Ok(7) }
        });
    assert_eq!((result, calls), (Ok(7), 3));
}

#[test]
fn retry_delays_are_drawn_within_the_jitter_band() {
    let config = RetryConfig::new(6).initial_delay(Duration::from_millis(100)).jitter(0.25);
    let (clock, manager) = manual();
    let _: Result<(), &str> = manager.retry_with_backoff("jitter-band", &config, || Err("x"));
    for (k, delay) in clock.sleeps().iter().enumerate() {
        let d = (100.0 * 2f64.powi(k as i32)).min(30_000.0);
        let ms = delay.as_secs_f64() * 1000.0;
        assert!((d * 0.75 - 1e-6..=d * 1.25 + 1e-6).contains(&ms), "delay {k}: {ms}ms");
    }
}

#[test]
fn no_attempt_starts_after_max_elapsed() {
    let config = RetryConfig::new(10)
        .initial_delay(Duration::from_millis(100))
        .jitter(0.0)
        .max_elapsed(Duration::from_millis(250));
    let (clock, manager) = manual();
    let mut attempts = 0u32;
    let _: Result<(), &str> = manager.retry_with_backoff("budget", &config, || {
        attempts += 1;
        Err("down")
    });
    // Attempts at 0ms and 100ms; the third would start at 300ms > 250ms.
    assert_eq!(attempts, 2);
    assert!(clock.elapsed() <= Duration::from_millis(250));
}

#[test]
fn retry_with_backoff_if_returns_rejected_errors_at_once() {
    let manager = RetryManager::builder().sleeper(NoSleep).build();
    let mut calls = 0;
    let result: Result<(), io::Error> = manager.retry_with_backoff_if(
        "reject",
        &RetryConfig::new(5),
        || {
            calls += 1;
            Err(io::Error::from(io::ErrorKind::NotFound))
        },
        |e: &io::Error| e.kind() == io::ErrorKind::TimedOut,
    );
    assert_eq!(result.unwrap_err().kind(), io::ErrorKind::NotFound);
    assert_eq!(calls, 1);

    let mut calls = 0;
    let result: Result<(), io::Error> = manager.retry_with_backoff_if(
        "accept",
        &RetryConfig::new(2),
        || {
            calls += 1;
            Err(io::Error::from(io::ErrorKind::TimedOut))
        },
        |e: &io::Error| e.kind() == io::ErrorKind::TimedOut,
    );
    assert!(result.is_err());
    assert_eq!(calls, 3);
}

#[test]
fn retry_stats_fields_and_success_rate() {
    let manager = RetryManager::builder().sleeper(NoSleep).build();
    let empty: RetryStats = manager.statistics();
    assert_eq!(empty.success_rate, 1.0, "1.0 when nothing ran");
    assert_eq!(empty.total_operations, 0);

    let config = RetryConfig::new(2);
    let _: Result<u8, &str> = manager.retry_with_backoff("op-a", &config, || Ok(1)); // first try
    let mut n = 0;
    let _: Result<u8, &str> = manager.retry_with_backoff("op-a", &config, || {
        n += 1;
        if n == 1 { Err("once") } else { Ok(2) }
    });
    let _: Result<u8, &str> = manager.retry_with_backoff("op-b", &config, || Err("never"));

    let stats = manager.statistics();
    let total_operations: u64 = stats.total_operations;
    let successful: u64 = stats.successful;
    let failed: u64 = stats.failed;
    let total_attempts: u64 = stats.total_attempts;
    let total_retries: u64 = stats.total_retries;
    let success_rate: f64 = stats.success_rate;
    let by_operation: &BTreeMap<String, OperationRetryStats> = &stats.by_operation;
    assert_eq!((total_operations, successful, failed), (3, 2, 1));
    assert_eq!(total_attempts, 1 + 2 + 3);
    assert_eq!(total_retries, 1 + 2);
    assert!((success_rate - 2.0 / 3.0).abs() < 1e-9);
    assert_eq!(by_operation.keys().collect::<Vec<_>>(), ["op-a", "op-b"]);
    assert_eq!(by_operation["op-a"].successful, 2);
    assert_eq!(by_operation["op-b"].failed, 1);

    manager.clear_history();
    let cleared = manager.statistics();
    assert_eq!((cleared.total_operations, cleared.total_attempts), (0, 0));
    assert_eq!(cleared.success_rate, 1.0);
}

#[test]
fn retry_manager_global_is_one_instance() {
    assert!(std::ptr::eq(RetryManager::global(), RetryManager::global()));
    let _fresh: RetryManager = RetryManager::new();
}

#[test]
fn with_sleeper_swaps_the_sleeper_of_the_global_manager() {
    let clock = ManualSleeper::new();
    let config = RetryConfig::new(2).jitter(0.0);
    let result: Result<(), &str> = with_sleeper(&clock, || {
        RetryManager::global().retry_with_backoff("contract::with_sleeper", &config, || Err("x"))
    });
    assert_eq!(result, Err("x"));
    assert_eq!(clock.sleeps(), [100, 200].map(Duration::from_millis));
}

// ---------------------------------------------------------------------------------------------
// Error layer: Classify, Recovery, Severity, ErrorHandler, ErrorContext, ErrorRecord, ErrorStats
// ---------------------------------------------------------------------------------------------

#[test]
fn recovery_and_severity_variants() {
    let recoveries = [Recovery::Retry, Recovery::Skip, Recovery::Abort];
    let severities = [Severity::Info, Severity::Warning, Severity::Error, Severity::Critical];
    // Usable as BTreeMap keys, as ErrorStats needs.
    let r: BTreeMap<Recovery, u64> = recoveries.iter().map(|&r| (r, 1)).collect();
    let s: BTreeMap<Severity, u64> = severities.iter().map(|&s| (s, 1)).collect();
    assert_eq!((r.len(), s.len()), (3, 4));
}

#[test]
fn io_errors_are_classified_by_kind() {
    use io::ErrorKind::*;
    for kind in [
        Interrupted,
        WouldBlock,
        TimedOut,
        ConnectionReset,
        ConnectionAborted,
        ConnectionRefused,
        BrokenPipe,
        ResourceBusy,
    ] {
        let error = io::Error::from(kind);
        assert_eq!(error.recovery(), Recovery::Retry, "{kind:?}");
        assert_eq!(error.error_code(), format!("io::{kind:?}"));
    }
    for kind in [NotFound, PermissionDenied, AlreadyExists, InvalidData, UnexpectedEof, Other] {
        let error = io::Error::new(kind, "boom");
        assert_eq!(error.recovery(), Recovery::Abort, "{kind:?}");
        assert_eq!(error.error_code(), format!("io::{kind:?}"));
    }
    let not_found = io::Error::from(NotFound);
    let code: Cow<'_, str> = not_found.error_code();
    assert_eq!(code, "io::NotFound");
    let _category: Cow<'_, str> = not_found.category();
    let _severity: Severity = not_found.severity();
}

#[test]
fn resilience_errors_retry_only_when_locked() {
    assert_eq!(Error::Locked { operation_id: "x".into() }.recovery(), Recovery::Retry);
    let others = [
        Error::NothingToResume { operation_id: "x".into() },
        Error::BackupMissing { path: "x".into() },
        Error::InvalidConfig("jitter".into()),
        Error::Io { path: "x".into(), source: io::Error::from(io::ErrorKind::TimedOut) },
    ];
    for error in others {
        assert_eq!(error.recovery(), Recovery::Abort, "{error}");
    }
}

#[test]
fn derived_classify_defaults_are_type_variant_type_error_retry() {
    #[derive(Debug, thiserror::Error, Classify)]
    enum FetchError {
        #[error("plain")]
        Plain,
    }
    let e = FetchError::Plain;
    assert_eq!(e.error_code(), "FetchError::Plain");
    assert_eq!(e.category(), "FetchError");
    assert_eq!(e.severity(), Severity::Error);
    assert_eq!(e.recovery(), Recovery::Retry);

    #[derive(Debug, thiserror::Error, Classify)]
    #[error("quota")]
    #[classify(abort, category = "billing")]
    struct QuotaExceeded;
    assert_eq!(QuotaExceeded.recovery(), Recovery::Abort);
    assert_eq!(QuotaExceeded.category(), "billing");
    assert_eq!(QuotaExceeded.severity(), Severity::Error);
}

#[test]
fn derived_classify_reads_variant_attributes_and_delegates_transparent() {
    let t = ImportError::Timeout;
    assert_eq!(
        (t.recovery(), t.error_code(), t.category(), t.severity()),
        (Recovery::Retry, Cow::from("E_TIMEOUT"), Cow::from("network"), Severity::Warning)
    );
    assert_eq!(ImportError::Damaged(3).recovery(), Recovery::Skip);
    assert_eq!(ImportError::Damaged(3).error_code(), "ImportError::Damaged");
    assert_eq!(ImportError::Fatal.recovery(), Recovery::Abort);
    assert_eq!(ImportError::Fatal.severity(), Severity::Critical);

    let locked = ImportError::Store(Error::Locked { operation_id: "x".into() });
    let inner = Error::Locked { operation_id: "x".into() };
    assert_eq!(locked.recovery(), inner.recovery());
    assert_eq!(locked.error_code(), inner.error_code());
    assert_eq!(locked.category(), inner.category());
    assert_eq!(locked.severity(), inner.severity());
}

#[test]
fn container_classify_applies_to_every_variant_unless_overridden() {
    #[derive(Debug, thiserror::Error, Classify)]
    #[classify(abort, category = "storage", severity = "info")]
    enum DiskError {
        #[error("full")]
        Full,
        #[error("busy")]
        #[classify(retry, code = "E_BUSY", severity = "critical")]
        Busy,
    }
    let full = DiskError::Full;
    assert_eq!((full.recovery(), full.severity()), (Recovery::Abort, Severity::Info));
    assert_eq!(
        (full.error_code(), full.category()),
        (Cow::from("DiskError::Full"), Cow::from("storage"))
    );
    let busy = DiskError::Busy;
    assert_eq!((busy.recovery(), busy.severity()), (Recovery::Retry, Severity::Critical));
    assert_eq!((busy.error_code(), busy.category()), (Cow::from("E_BUSY"), Cow::from("storage")));
}

#[derive(Debug, thiserror::Error)]
#[error("cannot read the manifest")]
struct ManifestError {
    #[source]
    source: io::Error,
}

impl Classify for ManifestError {
    fn recovery(&self) -> Recovery {
        Recovery::Skip
    }
    fn error_code(&self) -> Cow<'_, str> {
        Cow::Borrowed("E_MANIFEST")
    }
    fn category(&self) -> Cow<'_, str> {
        Cow::Borrowed("input")
    }
    fn severity(&self) -> Severity {
        Severity::Warning
    }
}

#[test]
fn handle_error_records_every_field() {
    let max_history: usize = 10;
    let handler = ErrorHandler::new(max_history);
    let error = ManifestError { source: io::Error::new(io::ErrorKind::NotFound, "no such file") };
    let before = SystemTime::now();
    let record: ErrorRecord = handler.handle_error(
        &error,
        ErrorContext::new().with("item", 42).with("file", "a.json").with("attempt", 3u8),
    );
    let ErrorRecord {
        error_code,
        message,
        category,
        severity,
        recovery,
        context,
        chain,
        occurred_at,
    } = record.clone();
    assert_eq!(error_code, "E_MANIFEST");
    assert_eq!(message, "cannot read the manifest");
    assert_eq!(category, "input");
    assert_eq!(severity, Severity::Warning);
    assert_eq!(recovery, Recovery::Skip);
    let context: Vec<(String, String)> = context;
    let expected: Vec<(String, String)> = [("item", "42"), ("file", "a.json"), ("attempt", "3")]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .into();
    assert_eq!(context, expected, "insertion order");
    assert_eq!(chain, ["no such file"]);
    assert!(occurred_at >= before - Duration::from_secs(1));
    assert_eq!(handler.history().len(), 1);
    assert_eq!(handler.history()[0].message, record.message);
}

#[test]
fn handle_error_accepts_unsized_errors() {
    let handler = ErrorHandler::new(10);
    let boxed: Box<ImportError> = Box::new(ImportError::Timeout);
    let record = handler.handle_error(&*boxed, ErrorContext::new());
    assert_eq!(record.error_code, "E_TIMEOUT");
}

#[test]
fn handle_any_records_a_dyn_error_with_its_chain() {
    let handler = ErrorHandler::new(10);
    let error = ManifestError { source: io::Error::other("disk unplugged") };
    let dynamic: &(dyn std::error::Error + 'static) = &error;
    let record = handler.handle_any(dynamic, ErrorContext::new().with("stage", "load"));
    assert_eq!(record.message, "cannot read the manifest");
    assert_eq!(record.chain, ["disk unplugged"]);
    assert_eq!(record.context, [("stage".to_string(), "load".to_string())]);

    let io_error = io::Error::from(io::ErrorKind::TimedOut);
    assert_eq!(handler.handle_any(&io_error, ErrorContext::new()).recovery, Recovery::Retry);
    assert_eq!(handler.statistics().total_errors, 2);
}

#[test]
fn error_stats_count_by_code_category_severity_recovery() {
    let handler = ErrorHandler::new(100);
    handler.handle_error(&ImportError::Timeout, ErrorContext::new());
    handler.handle_error(&ImportError::Timeout, ErrorContext::new());
    handler.handle_error(&ImportError::Damaged(1), ErrorContext::new());
    let stats: ErrorStats = handler.statistics();
    let total_errors: u64 = stats.total_errors;
    let by_code: BTreeMap<String, u64> = stats.by_code;
    let by_category: BTreeMap<String, u64> = stats.by_category;
    let by_severity: BTreeMap<Severity, u64> = stats.by_severity;
    let by_recovery: BTreeMap<Recovery, u64> = stats.by_recovery;
    assert_eq!(total_errors, 3);
    assert_eq!(by_code["E_TIMEOUT"], 2);
    assert_eq!(by_code["ImportError::Damaged"], 1);
    assert_eq!(by_category["network"], 2);
    assert_eq!(by_category["ImportError"], 1);
    assert_eq!(by_severity[&Severity::Warning], 2);
    assert_eq!(by_severity[&Severity::Error], 1);
    assert_eq!(by_recovery[&Recovery::Retry], 2);
    assert_eq!(by_recovery[&Recovery::Skip], 1);
}

#[test]
fn history_rollover_never_lowers_the_counts_and_clear_history_zeroes_them() {
    let handler = ErrorHandler::new(3);
    for _ in 0..5 {
        handler.handle_error(&ImportError::Fatal, ErrorContext::new());
    }
    assert_eq!(handler.history().len(), 3);
    let stats = handler.statistics();
    assert_eq!(stats.total_errors, 5);
    assert_eq!(stats.by_code["ImportError::Fatal"], 5);

    handler.clear_history();
    assert!(handler.history().is_empty());
    let stats = handler.statistics();
    assert_eq!(stats.total_errors, 0);
    assert!(stats.by_code.is_empty() || stats.by_code.values().all(|&n| n == 0));
}

#[test]
fn global_error_handler_keeps_1000_records() {
    let handler = ErrorHandler::global();
    assert!(std::ptr::eq(handler, ErrorHandler::global()));
    for i in 0..1_001 {
        handler.handle_error(&ImportError::Damaged(i), ErrorContext::new().with("i", i));
    }
    assert_eq!(handler.history().len(), 1_000);
}

// ---------------------------------------------------------------------------------------------
// Failsafe layer: ProcessState, Checkpointable, Checkpoint, FailsafeManager
// ---------------------------------------------------------------------------------------------

#[test]
fn process_state_variants_and_is_resumable() {
    use ProcessState::*;
    let resumable: Vec<_> = [Initialized, Running, Paused, Completed, Failed]
        .into_iter()
        .filter(|s| s.is_resumable())
        .collect();
    assert_eq!(resumable, [Running, Paused, Failed]);
}

#[test]
fn checkpointable_defaults_and_unit_impl() {
    let _: u64 = <() as Checkpointable>::SCHEMA;
    let mut unit = ();
    assert_eq!(unit.cursor(), 0);
    unit.set_cursor(5);
    assert_eq!(unit.total(), None);

    // A type without cursor/total fields keeps the defaults.
    let mut tally = Tally { sum: 3 };
    tally.set_cursor(9);
    assert_eq!((tally.cursor(), tally.total(), tally.sum), (0, None, 3));
}

#[test]
fn derived_checkpointable_mirrors_cursor_and_total() {
    let mut p = ImportProgress { done: 4, total: 10, imported_bytes: 0 };
    assert_eq!(p.cursor(), 4);
    assert_eq!(p.total(), Some(10));
    p.set_cursor(7);
    assert_eq!(p.done, 7);
}

#[test]
fn cursor_and_total_can_be_any_integer_field() {
    #[derive(Debug, Default, Serialize, Deserialize, Checkpointable)]
    struct Small {
        #[checkpoint(cursor)]
        done: u32,
        #[checkpoint(total)]
        total: usize,
    }
    let mut small = Small { done: 2, total: 9 };
    assert_eq!((small.cursor(), small.total()), (2, Some(9)));
    small.set_cursor(5);
    assert_eq!(small.done, 5);
}

mod schema_v1 {
    #[derive(serde::Serialize, serde::Deserialize, resilience::Checkpointable)]
    pub struct Progress {
        pub done: u64,
    }
}

mod schema_v1_elsewhere {
    #[derive(serde::Serialize, serde::Deserialize, resilience::Checkpointable)]
    pub struct Progress {
        pub done: u64,
    }
}

mod schema_v2 {
    #[derive(serde::Serialize, serde::Deserialize, resilience::Checkpointable)]
    #[checkpoint(version = 2)]
    pub struct Progress {
        pub done: u64,
    }
}

mod schema_renamed_field {
    #[derive(serde::Serialize, serde::Deserialize, resilience::Checkpointable)]
    pub struct Progress {
        pub finished: u64,
    }
}

mod schema_retyped_field {
    #[derive(serde::Serialize, serde::Deserialize, resilience::Checkpointable)]
    pub struct Progress {
        pub done: u32,
    }
}

#[test]
fn schema_depends_on_name_fields_types_and_version_not_module_path() {
    let v1 = <schema_v1::Progress as Checkpointable>::SCHEMA;
    assert_eq!(v1, <schema_v1_elsewhere::Progress as Checkpointable>::SCHEMA);
    assert_ne!(v1, <schema_v2::Progress as Checkpointable>::SCHEMA);
    assert_ne!(v1, <schema_renamed_field::Progress as Checkpointable>::SCHEMA);
    assert_ne!(v1, <schema_retyped_field::Progress as Checkpointable>::SCHEMA);
    assert_ne!(v1, <Tally as Checkpointable>::SCHEMA);
}

#[test]
fn builder_takes_every_setting_and_build_returns_a_result() {
    let dir = tempfile::tempdir().unwrap();
    let builder: FailsafeBuilder = FailsafeManager::builder();
    let n: usize = 2;
    let built: resilience::Result<FailsafeManager> = builder
        .dir(dir.path())
        .max_checkpoints(n)
        .max_backups(n)
        .durability(Durability::Buffered)
        .build();
    let manager = built.unwrap();
    for i in 0..4 {
        manager.save_checkpoint("op", "Op", ProcessState::Running, 0.0, &Tally { sum: i }).unwrap();
    }
    assert_eq!(manager.history::<Tally>("op").unwrap().len(), 2);
    let _sync = Durability::Sync;
}

#[test]
fn builder_defaults_keep_5_checkpoints_and_5_backups_durably() {
    let tmp = tempfile::tempdir().unwrap();
    let manager = FailsafeManager::builder().dir(tmp.path().join("store")).build().unwrap();
    for i in 0..8 {
        manager.save_checkpoint("op", "Op", ProcessState::Running, 0.0, &Tally { sum: i }).unwrap();
    }
    let history = manager.history::<Tally>("op").unwrap();
    assert_eq!(history.iter().map(|c| c.data.sum).collect::<Vec<_>>(), [7, 6, 5, 4, 3]);

    let file = tmp.path().join("data.db");
    for i in 0..8 {
        std::fs::write(&file, format!("version {i}")).unwrap();
        manager.create_backup(&file).unwrap();
    }
    assert_eq!(manager.list_backups(&file).unwrap().len(), 5);
    assert_eq!(Durability::default(), Durability::Sync);
}

#[test]
fn save_and_load_checkpoint_round_trip_every_field() {
    let (_tmp, manager) = store();
    assert!(manager.load_checkpoint::<ImportProgress>("import-1").unwrap().is_none());
    let data = ImportProgress { done: 3, total: 10, imported_bytes: 300 };
    let before = SystemTime::now();
    manager.save_checkpoint("import-1", "Photo Import", ProcessState::Running, 0.3, &data).unwrap();
    manager.save_checkpoint("import-1", "Photo Import", ProcessState::Paused, 0.4, &data).unwrap();
    let checkpoint: Checkpoint<ImportProgress> =
        manager.load_checkpoint("import-1").unwrap().unwrap();
    let Checkpoint {
        operation_id,
        operation_name,
        state,
        progress,
        cursor,
        data: loaded,
        sequence,
        saved_at,
        error,
    } = checkpoint;
    assert_eq!(operation_id, "import-1");
    assert_eq!(operation_name, "Photo Import");
    assert_eq!(state, ProcessState::Paused);
    assert_eq!(progress, 0.4);
    let _: u64 = cursor;
    assert_eq!(loaded, data);
    let first = &manager.history::<ImportProgress>("import-1").unwrap()[1];
    assert!(sequence > first.sequence, "sequence grows");
    assert!(saved_at >= before - Duration::from_secs(1));
    assert_eq!(error, None);
}

#[test]
fn history_is_newest_first() {
    let (_tmp, manager) = store();
    for i in 0..3 {
        manager.save_checkpoint("op", "Op", ProcessState::Running, 0.0, &Tally { sum: i }).unwrap();
    }
    let history: Vec<Checkpoint<Tally>> = manager.history("op").unwrap();
    assert_eq!(history.iter().map(|c| c.data.sum).collect::<Vec<_>>(), [2, 1, 0]);
    assert!(manager.history::<Tally>("missing").unwrap().is_empty());
}

#[test]
fn can_resume_and_resume_operation_follow_the_last_state() {
    let (_tmp, manager) = store();
    assert!(!manager.can_resume("job").unwrap());
    for state in [ProcessState::Running, ProcessState::Paused, ProcessState::Failed] {
        manager.save_checkpoint("job", "Job", state, 0.5, &Tally { sum: 9 }).unwrap();
        assert!(manager.can_resume("job").unwrap(), "{state:?}");
        let sum = manager
            .resume_operation("job", |checkpoint: Checkpoint<Tally>| checkpoint.data.sum)
            .unwrap();
        assert_eq!(sum, 9);
    }
    manager
        .save_checkpoint("job", "Job", ProcessState::Initialized, 0.0, &Tally::default())
        .unwrap();
    assert!(!manager.can_resume("job").unwrap());
}

#[test]
fn resume_operation_on_completed_or_missing_is_nothing_to_resume() {
    let (_tmp, manager) = store();
    let missing = manager.resume_operation("never", |c: Checkpoint<Tally>| c.data);
    assert!(matches!(missing, Err(Error::NothingToResume { .. })));

    manager
        .save_checkpoint("done", "Done", ProcessState::Completed, 1.0, &Tally::default())
        .unwrap();
    let mut called = false;
    let completed = manager.resume_operation("done", |_: Checkpoint<Tally>| called = true);
    assert!(matches!(completed, Err(Error::NothingToResume { .. })));
    assert!(!called);
}

#[test]
fn operations_recoverable_operations_discard_and_clear_completed() {
    let (_tmp, manager) = store();
    let unit = ();
    manager.save_checkpoint("a-running", "A", ProcessState::Running, 0.1, &unit).unwrap();
    manager.save_checkpoint("b-paused", "B", ProcessState::Paused, 0.2, &unit).unwrap();
    manager.save_checkpoint("c-failed", "C", ProcessState::Failed, 0.3, &unit).unwrap();
    manager.save_checkpoint("d-done", "D", ProcessState::Completed, 1.0, &unit).unwrap();
    manager.save_checkpoint("e-new", "E", ProcessState::Initialized, 0.0, &unit).unwrap();

    let ids = |list: Vec<OperationSummary>| {
        let mut ids: Vec<String> = list.into_iter().map(|s| s.operation_id).collect();
        ids.sort();
        ids
    };
    assert_eq!(
        ids(manager.operations().unwrap()),
        ["a-running", "b-paused", "c-failed", "d-done", "e-new"]
    );
    assert_eq!(
        ids(manager.recoverable_operations().unwrap()),
        ["a-running", "b-paused", "c-failed"]
    );

    let summary =
        manager.operations().unwrap().into_iter().find(|s| s.operation_id == "b-paused").unwrap();
    let OperationSummary {
        operation_id,
        operation_name,
        state,
        progress,
        cursor,
        sequence,
        saved_at,
        error,
    } = summary;
    assert_eq!((operation_id.as_str(), operation_name.as_str()), ("b-paused", "B"));
    assert_eq!((state, progress), (ProcessState::Paused, 0.2));
    let _: (u64, u64, SystemTime, Option<String>) = (cursor, sequence, saved_at, error);

    let cleared: usize = manager.clear_completed_checkpoints().unwrap();
    assert_eq!(cleared, 1);
    assert!(manager.load_checkpoint::<()>("d-done").unwrap().is_none());

    assert!(manager.discard("a-running").unwrap());
    assert!(!manager.discard("a-running").unwrap());
    assert_eq!(ids(manager.operations().unwrap()), ["b-paused", "c-failed", "e-new"]);
}

#[test]
fn loading_with_another_schema_is_schema_mismatch() {
    let (_tmp, manager) = store();
    manager.save_checkpoint("op", "Op", ProcessState::Running, 0.0, &Tally { sum: 1 }).unwrap();
    let result = manager.load_checkpoint::<ImportProgress>("op");
    assert!(matches!(result, Err(Error::SchemaMismatch { .. })));
}

#[test]
fn a_store_file_without_an_intact_record_is_corrupt() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let manager = FailsafeManager::open(&dir).unwrap();
    manager.save_checkpoint("op", "Op", ProcessState::Running, 0.5, &Tally { sum: 7 }).unwrap();
    drop(manager);

    // Overwrite every byte of every file the save created with garbage of the same length.
    fn scramble(dir: &Path) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                scramble(&path);
            } else {
                let len = std::fs::metadata(&path).unwrap().len() as usize;
                std::fs::write(&path, vec![0xA5; len]).unwrap();
            }
        }
    }
    scramble(&dir);

    let manager = FailsafeManager::open(&dir).unwrap();
    let result = manager.load_checkpoint::<Tally>("op");
    assert!(matches!(result, Err(Error::Corrupt { .. })), "{result:?}");
}

#[test]
fn any_operation_id_round_trips_inside_the_store_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let manager = FailsafeManager::open(tmp.path().join("store")).unwrap();
    let long = "x".repeat(10 * 1024);
    let ids = ["a/b/c", "..", "../../escape", "nul\0byte", "🦀 crab", "/absolute", long.as_str()];
    for (i, id) in ids.iter().enumerate() {
        manager
            .save_checkpoint(id, "Op", ProcessState::Paused, 0.0, &Tally { sum: i as u64 })
            .unwrap();
    }
    for (i, id) in ids.iter().enumerate() {
        let checkpoint: Checkpoint<Tally> = manager.load_checkpoint(id).unwrap().unwrap();
        assert_eq!((checkpoint.operation_id.as_str(), checkpoint.data.sum), (*id, i as u64));
    }
    let mut listed: Vec<String> =
        manager.operations().unwrap().into_iter().map(|s| s.operation_id).collect();
    let mut expected: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
    listed.sort();
    expected.sort();
    assert_eq!(listed, expected);
    let outside: Vec<_> =
        std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(outside, ["store"], "nothing is written outside the store directory");
}

#[cfg(unix)]
#[test]
fn store_files_are_readable_by_the_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let (tmp, manager) = store();
    manager.save_checkpoint("op", "Op", ProcessState::Running, 0.0, &Tally { sum: 1 }).unwrap();
    let file = tmp.path().join("data.db");
    std::fs::write(&file, "data").unwrap();
    manager.create_backup(&file).unwrap();
    for path in walk(&tmp.path().join("store")) {
        if path.is_file() {
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "{} has mode {mode:o}", path.display());
        }
    }
}

#[test]
fn backups_create_list_newest_first_and_restore() {
    let (tmp, manager) = store();
    let file = tmp.path().join("important.db");
    std::fs::write(&file, "first").unwrap();
    let first: BackupInfo = manager.create_backup(&file).unwrap();
    std::fs::write(&file, "second, longer").unwrap();
    let second = manager.create_backup(&file).unwrap();

    let BackupInfo { source, path, size, checksum, created_at } = second.clone();
    assert_eq!(source.file_name(), file.file_name());
    assert!(path.exists());
    let size: u64 = size;
    assert_eq!(size, "second, longer".len() as u64);
    let _ = checksum;
    let _: SystemTime = created_at;

    let listed = manager.list_backups(&file).unwrap();
    assert_eq!(listed, vec![second.clone(), first.clone()], "newest first");

    std::fs::write(&file, "clobbered").unwrap();
    manager.restore_backup(&first).unwrap();
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "first");
}

#[test]
fn list_backups_of_a_file_never_backed_up_is_empty() {
    let (tmp, manager) = store();
    assert_eq!(manager.list_backups(tmp.path().join("never.db")).unwrap(), vec![]);
    let exists = tmp.path().join("exists.db");
    std::fs::write(&exists, "data").unwrap();
    assert_eq!(manager.list_backups(&exists).unwrap(), vec![]);
}

#[test]
fn backing_up_a_missing_file_is_backup_missing() {
    let (tmp, manager) = store();
    let result = manager.create_backup(tmp.path().join("absent.db"));
    assert!(matches!(result, Err(Error::BackupMissing { .. })), "{result:?}");
}

#[test]
fn auto_backup_backs_up_in_the_background_until_stopped() {
    let (tmp, manager) = store();
    let file = tmp.path().join("results.csv");
    std::fs::write(&file, "id,score\n").unwrap();
    let files: Vec<PathBuf> = vec![file.clone()];
    let auto: AutoBackup = manager.start_auto_backup(&files, Duration::from_millis(1));
    // Wait (without sleeping) for the background pass; the deadline only bounds a broken build.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while manager.list_backups(&file).unwrap().is_empty() {
        assert!(std::time::Instant::now() < deadline, "no auto backup was taken");
        std::thread::yield_now();
    }
    auto.stop();

    // Dropping the handle stops it too.
    let dropped = manager.start_auto_backup(&files, Duration::from_secs(3600));
    drop(dropped);
}

#[test]
fn failsafe_statistics_count_states_and_backups() {
    let (tmp, manager) = store();
    let unit = ();
    manager.save_checkpoint("i", "I", ProcessState::Initialized, 0.0, &unit).unwrap();
    manager.save_checkpoint("r", "R", ProcessState::Running, 0.0, &unit).unwrap();
    manager.save_checkpoint("p", "P", ProcessState::Paused, 0.0, &unit).unwrap();
    manager.save_checkpoint("f", "F", ProcessState::Failed, 0.0, &unit).unwrap();
    manager.save_checkpoint("c1", "C", ProcessState::Completed, 1.0, &unit).unwrap();
    manager.save_checkpoint("c2", "C", ProcessState::Completed, 1.0, &unit).unwrap();
    let file = tmp.path().join("blob.bin");
    std::fs::write(&file, vec![7u8; 1 << 20]).unwrap();
    manager.create_backup(&file).unwrap();

    let stats: FailsafeStats = manager.statistics().unwrap();
    let total_operations: u64 = stats.checkpoints.total_operations;
    let active_operations: u64 = stats.checkpoints.active_operations;
    let completed: u64 = stats.checkpoints.completed;
    let failed: u64 = stats.checkpoints.failed;
    let paused: u64 = stats.checkpoints.paused;
    let count: u64 = stats.backups.count;
    let total_size_bytes: u64 = stats.backups.total_size_bytes;
    assert_eq!((total_operations, active_operations), (6, 2));
    assert_eq!((completed, failed, paused), (2, 1, 1));
    assert_eq!(count, 1);
    assert!(total_size_bytes >= 1 << 20);
    let mb: f64 = stats.total_size_mb();
    assert!((mb - total_size_bytes as f64 / (1024.0 * 1024.0)).abs() < 1e-9);
}

#[test]
fn failsafe_manager_is_a_cheap_send_sync_handle() {
    fn handle<T: Send + Sync + Clone>() {}
    handle::<FailsafeManager>();
    fn shared<T: Send + Sync>() {}
    shared::<RetryManager>();
    shared::<ErrorHandler>();
}

#[test]
fn global_failsafe_manager_uses_resilience_dir() {
    let manager = global_store();
    assert!(std::ptr::eq(manager, FailsafeManager::global()));
    manager.save_checkpoint("contract-global", "G", ProcessState::Paused, 0.0, &()).unwrap();
    let dir = std::env::var_os("RESILIENCE_DIR").unwrap();
    let mut found = false;
    for entry in walk(Path::new(&dir)) {
        found |= entry.is_file();
    }
    assert!(found, "the global store writes under $RESILIENCE_DIR");
    assert!(manager.can_resume("contract-global").unwrap());
    manager.discard("contract-global").unwrap();
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        }
        out.push(path);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Health
// ---------------------------------------------------------------------------------------------

#[test]
fn default_thresholds_are_the_guides() {
    let literal = HealthThresholds {
        max_active_operations: 10,
        max_total_errors: 100,
        min_retry_success_rate: 0.8,
        max_backup_bytes: 1 << 30,
    };
    assert_eq!(HealthThresholds::default(), literal);
}

#[test]
fn health_types_are_reachable_from_the_crate_root_too() {
    let thresholds: resilience::HealthThresholds = resilience::health::HealthThresholds::default();
    let (_tmp, manager) = store();
    let report: resilience::HealthReport = resilience::health::check_with(
        &thresholds,
        &manager,
        &ErrorHandler::new(1),
        &RetryManager::new(),
    );
    assert_eq!(report.status, resilience::HealthStatus::Healthy);
}

#[test]
fn check_with_is_healthy_on_fresh_managers() {
    let (_tmp, manager) = store();
    let report: HealthReport = health::check_with(
        &HealthThresholds::default(),
        &manager,
        &ErrorHandler::new(10),
        &RetryManager::new(),
    );
    assert_eq!(report.status, HealthStatus::Healthy);
    assert!(report.issues.is_empty());
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["status"], "Healthy");
    assert_eq!(json["issues"], serde_json::json!([]));
}

#[test]
fn check_with_warns_on_active_operations_errors_and_backups() {
    let (tmp, manager) = store();
    let thresholds = HealthThresholds {
        max_active_operations: 1,
        max_total_errors: 1,
        min_retry_success_rate: 0.8,
        max_backup_bytes: 4,
    };
    manager.save_checkpoint("x", "X", ProcessState::Running, 0.0, &()).unwrap();
    manager.save_checkpoint("y", "Y", ProcessState::Initialized, 0.0, &()).unwrap();
    let file = tmp.path().join("f");
    std::fs::write(&file, "more than four bytes").unwrap();
    manager.create_backup(&file).unwrap();
    let errors = ErrorHandler::new(10);
    errors.handle_error(&ImportError::Fatal, ErrorContext::new());
    errors.handle_error(&ImportError::Fatal, ErrorContext::new());

    let report = health::check_with(&thresholds, &manager, &errors, &RetryManager::new());
    assert_eq!(report.status, HealthStatus::Warning);
    assert_eq!(report.issues.len(), 3, "{:?}", report.issues);
}

#[test]
fn check_with_is_critical_below_the_retry_success_rate() {
    let (_tmp, manager) = store();
    let retry = RetryManager::builder().sleeper(NoSleep).build();
    for _ in 0..3 {
        let _: Result<(), &str> =
            retry.retry_with_backoff("down", &RetryConfig::new(1), || Err("x"));
    }
    let _: Result<(), &str> = retry.retry_with_backoff("up", &RetryConfig::new(1), || Ok(()));
    let report =
        health::check_with(&HealthThresholds::default(), &manager, &ErrorHandler::new(10), &retry);
    assert_eq!(report.status, HealthStatus::Critical);
    assert_eq!(report.issues.len(), 1);
}

#[test]
fn check_uses_the_globals() {
    global_store();
    let report = health::check();
    assert_eq!(report.status == HealthStatus::Healthy, report.issues.is_empty());
    let _ = [HealthStatus::Healthy, HealthStatus::Warning, HealthStatus::Critical];
}

// ---------------------------------------------------------------------------------------------
// #[retry]
// ---------------------------------------------------------------------------------------------

static UPLOAD_CALLS: AtomicU32 = AtomicU32::new(0);

struct Photo {
    size: u64,
    fail_first: u32,
}

#[retry(max = 3, initial = "50ms")]
fn upload(photo: &Photo) -> Result<u64, ImportError> {
    let n = UPLOAD_CALLS.fetch_add(1, Ordering::Relaxed);
    if n < photo.fail_first { Err(ImportError::Timeout) } else { Ok(photo.size) }
}

#[test]
fn retry_attribute_makes_max_plus_one_attempts_with_the_initial_delay() {
    let clock = ManualSleeper::new();
    UPLOAD_CALLS.store(0, Ordering::Relaxed);
    let photo = Photo { size: 12, fail_first: 2 };
    assert_eq!(with_sleeper(&clock, || upload(&photo)).unwrap(), 12);
    assert_eq!(UPLOAD_CALLS.load(Ordering::Relaxed), 3);
    let first = clock.sleeps()[0].as_secs_f64() * 1000.0;
    assert!((25.0 - 1e-6..=75.0 + 1e-6).contains(&first), "{first}ms");

    UPLOAD_CALLS.store(0, Ordering::Relaxed);
    let photo = Photo { size: 1, fail_first: 100 };
    assert!(matches!(with_sleeper(&NoSleep, || upload(&photo)), Err(ImportError::Timeout)));
    assert_eq!(UPLOAD_CALLS.load(Ordering::Relaxed), 4);
}

static SKIPPED: AtomicU32 = AtomicU32::new(0);

#[retry]
fn damaged_upload() -> Result<(), ImportError> {
    SKIPPED.fetch_add(1, Ordering::Relaxed);
    Err(ImportError::Damaged(1))
}

#[test]
fn retry_attribute_retries_only_classified_retry_errors() {
    assert!(with_sleeper(&NoSleep, damaged_upload).is_err());
    assert_eq!(SKIPPED.load(Ordering::Relaxed), 1);
}

static PLAIN_CALLS: AtomicU32 = AtomicU32::new(0);

#[retry(max = 2)]
fn plain_error() -> Result<(), String> {
    PLAIN_CALLS.fetch_add(1, Ordering::Relaxed);
    Err("unclassified".into())
}

#[test]
fn retry_attribute_retries_every_error_of_an_unclassified_type() {
    assert!(with_sleeper(&NoSleep, plain_error).is_err());
    assert_eq!(PLAIN_CALLS.load(Ordering::Relaxed), 3);
}

static DEFAULT_CALLS: AtomicU32 = AtomicU32::new(0);

#[retry]
fn with_defaults() -> Result<(), String> {
    DEFAULT_CALLS.fetch_add(1, Ordering::Relaxed);
    Err("down".into())
}

#[test]
fn retry_attribute_defaults_are_3_retries_from_100ms_doubling_with_half_jitter() {
    let clock = ManualSleeper::new();
    assert!(with_sleeper(&clock, with_defaults).is_err());
    assert_eq!(DEFAULT_CALLS.load(Ordering::Relaxed), 4);
    let sleeps = clock.sleeps();
    assert_eq!(sleeps.len(), 3);
    for (k, delay) in sleeps.iter().enumerate() {
        let base = 100.0 * 2f64.powi(k as i32);
        let ms = delay.as_secs_f64() * 1000.0;
        assert!((base * 0.5 - 1e-6..=base * 1.5 + 1e-6).contains(&ms), "delay {k}: {ms}ms");
    }
}

fn only_timeouts(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::TimedOut
}

static WHEN_CALLS: AtomicU32 = AtomicU32::new(0);

#[retry(max = 5, when = only_timeouts, name = "contract-when")]
fn read_config(kind: io::ErrorKind) -> Result<(), io::Error> {
    WHEN_CALLS.fetch_add(1, Ordering::Relaxed);
    Err(io::Error::from(kind))
}

#[test]
fn retry_attribute_when_and_name() {
    WHEN_CALLS.store(0, Ordering::Relaxed);
    assert!(with_sleeper(&NoSleep, || read_config(io::ErrorKind::NotFound)).is_err());
    assert_eq!(WHEN_CALLS.load(Ordering::Relaxed), 1);
    // NotFound is Abort, TimedOut is Retry per Classify, but `when` decides here.
    assert!(with_sleeper(&NoSleep, || read_config(io::ErrorKind::TimedOut)).is_err());
    assert_eq!(WHEN_CALLS.load(Ordering::Relaxed), 1 + 6);
    let stats = RetryManager::global().statistics();
    let op = &stats.by_operation["contract-when"];
    assert_eq!((op.total_operations, op.failed, op.total_retries), (2, 2, 5));
}

#[retry(
    max = 2,
    initial = "250ms",
    max_delay = "30s",
    multiplier = 2.0,
    jitter = 0.0,
    max_elapsed = "1m"
)]
fn every_retry_key() -> Result<(), &'static str> {
    Err("down")
}

#[test]
fn retry_attribute_takes_every_key_and_defaults_its_name_to_module_path_fn_name() {
    let clock = ManualSleeper::new();
    assert!(with_sleeper(&clock, every_retry_key).is_err());
    assert_eq!(clock.sleeps(), [250, 500].map(Duration::from_millis));
    let stats = RetryManager::global().statistics();
    let name = format!("{}::every_retry_key", module_path!());
    assert!(stats.by_operation.contains_key(&name), "{:?}", stats.by_operation.keys());
}

#[retry(max = 1, initial = "2s", jitter = 0.0, max_elapsed = "1s")]
fn short_budget() -> Result<(), &'static str> {
    Err("down")
}

#[test]
fn retry_attribute_max_elapsed_stops_the_attempts() {
    let clock = ManualSleeper::new();
    let _ = with_sleeper(&clock, short_budget);
    assert!(clock.sleeps().is_empty(), "the retry would start after max_elapsed");
}

static BORROW_CALLS: AtomicU32 = AtomicU32::new(0);

/// A by-value argument that the body only borrows is fine under `#[retry]`.
#[retry(max = 1)]
fn measure(name: String, factor: usize) -> Result<usize, String> {
    if BORROW_CALLS.fetch_add(1, Ordering::Relaxed) == 0 {
        return Err(format!("{name} not ready"));
    }
    Ok(name.len() * factor)
}

#[test]
fn retry_attribute_accepts_by_value_arguments_the_body_only_borrows() {
    assert_eq!(with_sleeper(&NoSleep, || measure("abc".to_string(), 2)), Ok(6));
    assert_eq!(BORROW_CALLS.load(Ordering::Relaxed), 2);
}

struct Uploader {
    calls: std::cell::Cell<u32>,
    sent: Vec<u64>,
}

impl Uploader {
    #[retry(max = 2, initial = "1ms")]
    fn ping(&self) -> Result<u32, String> {
        self.calls.set(self.calls.get() + 1);
        if self.calls.get() < 2 { Err("flaky".into()) } else { Ok(self.calls.get()) }
    }

    #[retry(max = 1)]
    fn send(&mut self, size: u64) -> Result<usize, String> {
        self.sent.push(size);
        if self.sent.len() < 2 { Err("flaky".into()) } else { Ok(self.sent.len()) }
    }
}

#[retry(max = 1)]
fn parse_all<T: std::str::FromStr>(text: &str) -> Result<T, String> {
    text.parse::<T>().map_err(|_| format!("bad {text}"))
}

#[test]
fn retry_attribute_works_on_methods_and_generic_functions() {
    let mut uploader = Uploader { calls: std::cell::Cell::new(0), sent: Vec::new() };
    assert_eq!(with_sleeper(&NoSleep, || uploader.ping()), Ok(2));
    assert_eq!(with_sleeper(&NoSleep, || uploader.send(5)), Ok(2));
    assert_eq!(with_sleeper(&NoSleep, || parse_all::<u8>("7")), Ok(7));
    assert!(with_sleeper(&NoSleep, || parse_all::<u8>("x")).is_err());
}

// ---------------------------------------------------------------------------------------------
// #[checkpointed]
// ---------------------------------------------------------------------------------------------

thread_local! {
    static SEEN: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn seen() -> Vec<u64> {
    SEEN.with(|s| s.borrow_mut().drain(..).collect())
}

#[checkpointed(every = 10, id = "import-{batch}", manager = store, input = [photos])]
fn import(
    store: &FailsafeManager,
    batch: u32,
    photos: &[u64],
    fail_at: Option<u64>,
    progress: &mut ImportProgress,
) -> Result<(), ImportError> {
    progress.total = photos.len() as u64;
    for &photo in photos {
        if Some(photo) == fail_at {
            return Err(ImportError::Damaged(photo));
        }
        SEEN.with(|s| s.borrow_mut().push(photo));
        progress.imported_bytes += photo;
    }
    Ok(())
}

#[test]
fn failure_at_item_37_with_every_10_resumes_at_item_30() {
    let (_tmp, manager) = store();
    let photos: Vec<u64> = (0..50).collect();

    let mut progress = ImportProgress::default();
    assert!(matches!(
        import(&manager, 1, &photos, Some(37), &mut progress),
        Err(ImportError::Damaged(37))
    ));
    assert_eq!(seen(), (0..37).collect::<Vec<_>>());

    let failed: Checkpoint<ImportProgress> = manager.load_checkpoint("import-1").unwrap().unwrap();
    assert_eq!(failed.state, ProcessState::Failed);
    assert_eq!(failed.cursor, 30);
    assert_eq!(failed.data.done, 30);
    assert_eq!(failed.data.imported_bytes, (0..30).sum::<u64>(), "state as it was at item 30");
    assert!(failed.error.as_deref().unwrap().contains("item 37 is damaged"));
    assert!(manager.can_resume("import-1").unwrap());

    let mut progress = ImportProgress::default();
    import(&manager, 1, &photos, None, &mut progress).unwrap();
    assert_eq!(seen(), (30..50).collect::<Vec<_>>(), "restarts at item 30");
    assert_eq!(progress.done, 50);
    assert_eq!(progress.imported_bytes, (0..50).sum::<u64>());

    let done: Checkpoint<ImportProgress> = manager.load_checkpoint("import-1").unwrap().unwrap();
    assert_eq!(done.state, ProcessState::Completed);
    assert_eq!(done.progress, 1.0);
    assert!(matches!(
        manager.resume_operation("import-1", |c: Checkpoint<ImportProgress>| c.cursor),
        Err(Error::NothingToResume { .. })
    ));

    // A completed checkpoint starts a fresh run.
    let mut progress = ImportProgress::default();
    import(&manager, 1, &photos[..5], None, &mut progress).unwrap();
    assert_eq!(seen(), (0..5).collect::<Vec<_>>());
}

#[test]
fn running_checkpoints_carry_progress_cursor_over_total() {
    let (_tmp, manager) = store();
    let photos: Vec<u64> = (0..40).collect();
    let mut progress = ImportProgress::default();
    let _ = import(&manager, 2, &photos, Some(25), &mut progress);
    seen();
    let history: Vec<Checkpoint<ImportProgress>> = manager.history("import-2").unwrap();
    let running: Vec<_> = history.iter().filter(|c| c.state == ProcessState::Running).collect();
    assert!(!running.is_empty());
    for checkpoint in running {
        let expected = checkpoint.cursor as f64 / 40.0;
        assert!((checkpoint.progress - expected).abs() < 1e-9, "{checkpoint:?}");
        assert_eq!(checkpoint.cursor % 10, 0);
    }
}

#[test]
fn a_schema_mismatch_on_entry_is_an_error_never_a_misread() {
    let (_tmp, manager) = store();
    manager.save_checkpoint("import-3", "x", ProcessState::Failed, 0.5, &Tally { sum: 1 }).unwrap();
    let mut progress = ImportProgress::default();
    let result = import(&manager, 3, &[1, 2, 3], None, &mut progress);
    assert!(matches!(result, Err(ImportError::Store(Error::SchemaMismatch { .. }))), "{result:?}");
}

#[checkpointed(id = "nested-{depth}", manager = mgr, input = none)]
fn nested(mgr: &FailsafeManager, depth: u32, inner: bool) -> Result<(), ImportError> {
    if inner {
        return nested(mgr, depth, false);
    }
    Ok(())
}

#[test]
fn a_second_concurrent_run_of_the_same_id_is_locked() {
    let (_tmp, manager) = store();
    let result = nested(&manager, 1, true);
    assert!(matches!(result, Err(ImportError::Store(Error::Locked { .. }))), "{result:?}");
    // The lock is released when the run ends.
    nested(&manager, 1, false).unwrap();
}

#[derive(Debug, Default, Serialize, Deserialize, Checkpointable)]
struct Count {
    items: u64,
}

struct Importer {
    store: FailsafeManager,
}

impl Importer {
    #[checkpointed(manager = &self.store, every = 2, interval = "5s", state = counted, name = "Photo Import", input = [items])]
    fn run(
        &self,
        items: &[u64],
        scratch: &mut Vec<u64>,
        counted: &mut Count,
        fail_at: Option<u64>,
    ) -> Result<u64, ImportError> {
        for &item in items {
            if Some(item) == fail_at {
                return Err(ImportError::Fatal);
            }
            scratch.push(item);
            counted.items += 1;
        }
        Ok(counted.items)
    }
}

#[test]
fn checkpointed_method_with_state_name_interval_and_manager_expression() {
    let (_tmp, store) = store();
    let importer = Importer { store };
    let mut scratch = Vec::new();
    let mut count = Count::default();
    assert!(importer.run(&[0, 1, 2, 3, 4], &mut scratch, &mut count, Some(3)).is_err());

    let id = format!("{}::run", module_path!());
    let failed: Checkpoint<Count> = importer.store.load_checkpoint(&id).unwrap().unwrap();
    assert_eq!(failed.operation_name, "Photo Import");
    assert_eq!(
        (failed.cursor, failed.data.items),
        (2, 2),
        "no cursor field: kept in the checkpoint"
    );

    let mut count = Count::default();
    assert_eq!(importer.run(&[0, 1, 2, 3, 4], &mut Vec::new(), &mut count, None).unwrap(), 5);
}

static STATELESS_RUNS: AtomicU32 = AtomicU32::new(0);

#[checkpointed(every = 1, manager = mgr, input = [items])]
fn stateless(
    mgr: &FailsafeManager,
    items: &[u32],
    fail_at: Option<u32>,
) -> Result<(), ImportError> {
    for &item in items {
        if Some(item) == fail_at {
            return Err(ImportError::Fatal);
        }
        STATELESS_RUNS.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

#[test]
fn checkpointed_without_state_defaults_its_id_and_name_and_carries_unit() {
    let (_tmp, manager) = store();
    let _ = stateless(&manager, &[0, 1, 2, 3], Some(2));
    let id = format!("{}::stateless", module_path!());
    let failed: Checkpoint<()> = manager.load_checkpoint(&id).unwrap().unwrap();
    assert_eq!(failed.operation_name, "stateless");
    assert_eq!((failed.state, failed.cursor), (ProcessState::Failed, 2));
    STATELESS_RUNS.store(0, Ordering::Relaxed);
    stateless(&manager, &[0, 1, 2, 3], None).unwrap();
    assert_eq!(STATELESS_RUNS.load(Ordering::Relaxed), 2, "resumed at item 2");
}

#[checkpointed(id = "contract-global-{n}")]
fn on_the_global_store(n: u32, tally: &mut Tally) -> Result<(), ImportError> {
    for i in 0..n {
        tally.sum += u64::from(i);
    }
    Ok(())
}

#[test]
fn checkpointed_without_manager_uses_the_global_store() {
    let global = global_store();
    let mut tally = Tally::default();
    on_the_global_store(4, &mut tally).unwrap();
    let done: Checkpoint<Tally> = global.load_checkpoint("contract-global-4").unwrap().unwrap();
    assert_eq!((done.state, done.data.sum), (ProcessState::Completed, 6));
    global.discard("contract-global-4").unwrap();
}

#[checkpointed(every = 3, id = "progress-from-size-hint", manager = mgr)]
fn counted_items(
    mgr: &FailsafeManager,
    items: &[u64],
    fail_at: u64,
    counted: &mut Count,
) -> Result<(), ImportError> {
    for &item in items {
        if item == fail_at {
            return Err(ImportError::Fatal);
        }
        counted.items += 1;
    }
    Ok(())
}

#[test]
fn progress_without_a_total_field_comes_from_the_loops_exact_size() {
    let (_tmp, manager) = store();
    let items: Vec<u64> = (0..10).collect();
    assert!(counted_items(&manager, &items, 7, &mut Count::default()).is_err());
    let failed: Checkpoint<Count> =
        manager.load_checkpoint("progress-from-size-hint").unwrap().unwrap();
    assert_eq!(failed.cursor, 6);
    assert!((failed.progress - 0.6).abs() < 1e-9, "{}", failed.progress);
}

#[checkpointed(every = 1, id = "marked-loop", manager = mgr, input = [items])]
fn two_loops(
    mgr: &FailsafeManager,
    items: &[u64],
    fail_at: Option<u64>,
    tally: &mut Tally,
) -> Result<u64, ImportError> {
    let mut setup = 0;
    for _ in 0..3 {
        setup += 1;
    }
    #[checkpoint]
    for &item in items {
        if Some(item) == fail_at {
            return Err(ImportError::Fatal);
        }
        tally.sum += item;
    }
    Ok(setup)
}

#[test]
fn the_loop_marked_checkpoint_is_the_tracked_one() {
    let (_tmp, manager) = store();
    let items: Vec<u64> = (10..20).collect();
    assert!(two_loops(&manager, &items, Some(15), &mut Tally::default()).is_err());
    assert_eq!(manager.load_checkpoint::<Tally>("marked-loop").unwrap().unwrap().cursor, 5);
    let mut tally = Tally::default();
    assert_eq!(two_loops(&manager, &items, None, &mut tally).unwrap(), 3);
    assert_eq!(tally.sum, (10..20).sum::<u64>());
}

#[checkpointed(every = 2, id = "panicky", manager = mgr)]
fn panicky(mgr: &FailsafeManager, items: &[u64], tally: &mut Tally) -> Result<(), ImportError> {
    for &item in items {
        assert!(item != 5, "item 5 explodes");
        tally.sum += item;
    }
    Ok(())
}

#[test]
fn a_panic_saves_failed_with_the_last_checkpointed_data() {
    let (_tmp, manager) = store();
    let items: Vec<u64> = (0..10).collect();
    let mut tally = Tally::default();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        panicky(&manager, &items, &mut tally)
    }));
    assert!(outcome.is_err());
    let failed: Checkpoint<Tally> = manager.load_checkpoint("panicky").unwrap().unwrap();
    assert_eq!(failed.state, ProcessState::Failed);
    assert_eq!((failed.cursor, failed.data.sum), (4, 1 + 2 + 3));
    assert!(failed.error.is_some());
}

#[checkpointed(id = "every-default", manager = mgr)]
fn every_default(
    mgr: &FailsafeManager,
    items: &[u64],
    tally: &mut Tally,
) -> Result<(), ImportError> {
    for &item in items {
        if item == 3 {
            return Err(ImportError::Fatal);
        }
        tally.sum += item;
    }
    Ok(())
}

#[test]
fn every_defaults_to_one_item() {
    let (_tmp, manager) = store();
    assert!(every_default(&manager, &[0, 1, 2, 3, 4], &mut Tally::default()).is_err());
    let failed: Checkpoint<Tally> = manager.load_checkpoint("every-default").unwrap().unwrap();
    assert_eq!((failed.cursor, failed.data.sum), (3, 3));
}

/// `manager = expr` takes anything that derefs to a `FailsafeManager`.
#[checkpointed(id = "arc-manager", manager = shared)]
fn with_arc(shared: std::sync::Arc<FailsafeManager>, tally: &mut Tally) -> Result<(), ImportError> {
    tally.sum += 1;
    Ok(())
}

fn shared_store() -> &'static FailsafeManager {
    static STORE: OnceLock<(tempfile::TempDir, FailsafeManager)> = OnceLock::new();
    &STORE.get_or_init(store).1
}

#[checkpointed(id = "fn-call-manager", manager = shared_store())]
fn with_fn_call(tally: &mut Tally) -> Result<(), ImportError> {
    tally.sum += 1;
    Ok(())
}

#[test]
fn manager_accepts_any_expression_that_derefs_to_a_failsafe_manager() {
    let (_tmp, manager) = store();
    let shared = std::sync::Arc::new(manager);
    with_arc(std::sync::Arc::clone(&shared), &mut Tally::default()).unwrap();
    assert_eq!(shared.load_checkpoint::<Tally>("arc-manager").unwrap().unwrap().data.sum, 1);
    with_fn_call(&mut Tally::default()).unwrap();
    let done = shared_store().load_checkpoint::<Tally>("fn-call-manager").unwrap().unwrap();
    assert_eq!(done.state, ProcessState::Completed);
}

#[checkpointed(every = 1, id = "generic-{label}", manager = mgr)]
fn generic_sum<T: Copy + Into<u64>>(
    mgr: &FailsafeManager,
    label: &str,
    items: &[T],
    tally: &mut Tally,
) -> Result<u64, ImportError> {
    for &item in items {
        tally.sum += item.into();
    }
    Ok(tally.sum)
}

trait Job {
    fn run(
        &mut self,
        mgr: &FailsafeManager,
        items: &[u64],
        tally: &mut Tally,
    ) -> Result<u64, ImportError>;
    fn fetch(&self) -> Result<u64, ImportError>;
}

struct Summer {
    runs: u64,
    fetched: AtomicU32,
}

impl Job for Summer {
    #[checkpointed(id = "trait-job", manager = mgr, state = tally)]
    fn run(
        &mut self,
        mgr: &FailsafeManager,
        items: &[u64],
        tally: &mut Tally,
    ) -> Result<u64, ImportError> {
        for &item in items {
            tally.sum += item;
            self.runs += 1;
        }
        Ok(tally.sum)
    }

    #[retry(max = 2, initial = "1ms")]
    fn fetch(&self) -> Result<u64, ImportError> {
        match self.fetched.fetch_add(1, Ordering::Relaxed) {
            0 => Err(ImportError::Timeout),
            n => Ok(u64::from(n)),
        }
    }
}

#[test]
fn attributes_work_on_generic_functions_and_trait_impl_methods() {
    let (_tmp, manager) = store();
    assert_eq!(generic_sum(&manager, "u8", &[1u8, 2, 3], &mut Tally::default()).unwrap(), 6);
    assert_eq!(generic_sum(&manager, "u32", &[10u32, 20], &mut Tally::default()).unwrap(), 30);
    assert!(manager.load_checkpoint::<Tally>("generic-u32").unwrap().is_some());

    let mut summer = Summer { runs: 0, fetched: AtomicU32::new(0) };
    assert_eq!(summer.run(&manager, &[4, 5], &mut Tally::default()).unwrap(), 9);
    assert_eq!(summer.runs, 2);
    assert!(manager.load_checkpoint::<Tally>("trait-job").unwrap().is_some());
    assert_eq!(with_sleeper(&NoSleep, || summer.fetch()).unwrap(), 1);
}

// ---------------------------------------------------------------------------------------------
// #[protected]
// ---------------------------------------------------------------------------------------------

/// What a protected run does: which item fails on which run, and what it saw.
struct Script {
    fail: fn(item: u64, run: u32) -> Option<ImportError>,
    runs: AtomicU32,
    processed: std::sync::Mutex<Vec<u64>>,
}

impl Script {
    fn new(fail: fn(u64, u32) -> Option<ImportError>) -> Self {
        Script { fail, runs: AtomicU32::new(0), processed: std::sync::Mutex::new(Vec::new()) }
    }
}

#[protected(
    manager = mgr,
    errors = handler,
    id = "protected-{name}",
    every = 1,
    backup = "{dir}/important.db",
    restore_on_failure = true,
    retry(max = 3, initial = "1s"),
)]
fn protected_job(
    mgr: &FailsafeManager,
    handler: &ErrorHandler,
    dir: &str,
    name: &str,
    items: &[u64],
    script: &Script,
    tally: &mut Tally,
) -> Result<u64, ImportError> {
    let run = script.runs.fetch_add(1, Ordering::Relaxed);
    for &item in items {
        if let Some(error) = (script.fail)(item, run) {
            std::fs::write(Path::new(dir).join("important.db"), "half-written").unwrap();
            return Err(error);
        }
        script.processed.lock().unwrap().push(item);
        tally.sum += item;
    }
    Ok(tally.sum)
}

#[test]
fn protected_retries_resume_from_the_last_checkpoint_and_record_errors() {
    let (tmp, manager) = store();
    let handler = ErrorHandler::new(100);
    let dir = tmp.path().to_str().unwrap().to_owned();
    std::fs::write(tmp.path().join("important.db"), "original").unwrap();
    // The first run times out at item 3, the retry finishes.
    let script = Script::new(|item, run| (run == 0 && item == 3).then_some(ImportError::Timeout));
    let mut tally = Tally::default();
    let result = with_sleeper(&NoSleep, || {
        protected_job(&manager, &handler, &dir, "a", &[1, 2, 3, 4], &script, &mut tally)
    });
    assert_eq!(result.unwrap(), 10);
    assert_eq!(script.runs.load(Ordering::Relaxed), 2);
    assert_eq!(*script.processed.lock().unwrap(), [1, 2, 3, 4], "the retry resumed at item 3");
    // One backup, taken at entry, not on the retry.
    let backups = manager.list_backups(tmp.path().join("important.db")).unwrap();
    assert_eq!(backups.len(), 1);
    let records = handler.history();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].error_code, "E_TIMEOUT");
    assert!(
        records[0].context.iter().any(|(_, v)| v == "protected-a"),
        "the context names the operation id: {:?}",
        records[0].context
    );
}

#[test]
fn protected_restores_backups_on_failure() {
    let (tmp, manager) = store();
    let handler = ErrorHandler::new(100);
    let dir = tmp.path().to_str().unwrap().to_owned();
    std::fs::write(tmp.path().join("important.db"), "original").unwrap();
    let script = Script::new(|item, _run| (item == 2).then_some(ImportError::Fatal));
    let mut tally = Tally::default();
    let result = with_sleeper(&NoSleep, || {
        protected_job(&manager, &handler, &dir, "b", &[1, 2, 3], &script, &mut tally)
    });
    assert!(matches!(result, Err(ImportError::Fatal)));
    assert_eq!(script.runs.load(Ordering::Relaxed), 1, "Abort errors are not retried");
    assert_eq!(std::fs::read_to_string(tmp.path().join("important.db")).unwrap(), "original");
    assert_eq!(handler.statistics().by_code["ImportError::Fatal"], 1);
    // The record's context names the operation id and the index of the failing item.
    let context = &handler.history()[0].context;
    let values: Vec<&str> = context.iter().map(|(_, v)| v.as_str()).collect();
    assert!(values.contains(&"protected-b") && values.contains(&"1"), "{context:?}");
    let failed: Checkpoint<Tally> = manager.load_checkpoint("protected-b").unwrap().unwrap();
    assert_eq!(failed.state, ProcessState::Failed);
}

#[protected(manager = mgr, errors = handler, backup = "{dir}/missing.db")]
fn needs_backup(
    mgr: &FailsafeManager,
    handler: &ErrorHandler,
    dir: &str,
) -> Result<(), ImportError> {
    Ok(())
}

#[protected(
    manager = mgr,
    errors = handler,
    backup = ["{dir}/a.db", "{dir}/missing.db"],
    backup_missing = "skip"
)]
fn skips_missing(
    mgr: &FailsafeManager,
    handler: &ErrorHandler,
    dir: &str,
) -> Result<(), ImportError> {
    Ok(())
}

#[test]
fn protected_backup_of_a_missing_file_fails_unless_skipped() {
    let (tmp, manager) = store();
    let handler = ErrorHandler::new(10);
    let dir = tmp.path().to_str().unwrap().to_owned();
    let result = needs_backup(&manager, &handler, &dir);
    assert!(matches!(result, Err(ImportError::Store(Error::BackupMissing { .. }))), "{result:?}");

    std::fs::write(tmp.path().join("a.db"), "a").unwrap();
    skips_missing(&manager, &handler, &dir).unwrap();
    assert_eq!(manager.list_backups(tmp.path().join("a.db")).unwrap().len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Async twins (feature `tokio`)
// ---------------------------------------------------------------------------------------------

#[cfg(feature = "tokio")]
mod async_twins {
    use super::*;
    use resilience::retry::with_async_sleeper;

    #[tokio::test]
    async fn retry_with_backoff_async_and_its_if_twin() {
        let manager = RetryManager::builder().async_sleeper(NoSleep).build();
        let mut calls = 0;
        let result: Result<u32, String> = manager
            .retry_with_backoff_async("async-op", &RetryConfig::new(3), || {
                calls += 1;
                let attempt = calls;
                async move { if attempt < 3 { Err("busy".to_string()) } else { Ok(attempt) } }
            })
            .await;
        assert_eq!(result, Ok(3));

        let mut calls = 0;
        let result: Result<(), io::Error> = manager
            .retry_with_backoff_if_async(
                "async-if",
                &RetryConfig::new(3),
                || {
                    calls += 1;
                    async { Err(io::Error::from(io::ErrorKind::NotFound)) }
                },
                |e: &io::Error| e.kind() == io::ErrorKind::TimedOut,
            )
            .await;
        assert!(result.is_err());
        assert_eq!(calls, 1);
    }

    static ASYNC_CALLS: AtomicU32 = AtomicU32::new(0);

    #[retry(max = 3, initial = "50ms", jitter = 0.0)]
    async fn fetch(fail_first: u32) -> Result<u32, ImportError> {
        let n = ASYNC_CALLS.fetch_add(1, Ordering::Relaxed);
        if n < fail_first { Err(ImportError::Timeout) } else { Ok(n) }
    }

    #[tokio::test]
    async fn retry_attribute_on_async_fn() {
        let clock = ManualSleeper::new();
        let result = with_async_sleeper(&clock, fetch(2)).await;
        assert_eq!(result.unwrap(), 2);
        assert_eq!(clock.sleeps(), [50, 100].map(Duration::from_millis));
    }

    #[checkpointed(every = 10, id = "async-import-{batch}", manager = store, input = [photos])]
    async fn import_async(
        store: &FailsafeManager,
        batch: u32,
        photos: &[u64],
        fail_at: Option<u64>,
        progress: &mut ImportProgress,
    ) -> Result<(), ImportError> {
        progress.total = photos.len() as u64;
        for &photo in photos {
            if Some(photo) == fail_at {
                return Err(ImportError::Damaged(photo));
            }
            progress.imported_bytes += photo;
        }
        Ok(())
    }

    #[tokio::test]
    async fn checkpointed_async_fn_resumes_at_the_last_checkpoint() {
        let (_tmp, manager) = store();
        let photos: Vec<u64> = (0..50).collect();
        let mut progress = ImportProgress::default();
        assert!(import_async(&manager, 1, &photos, Some(37), &mut progress).await.is_err());
        let failed: Checkpoint<ImportProgress> =
            manager.load_checkpoint("async-import-1").unwrap().unwrap();
        assert_eq!((failed.cursor, failed.data.done), (30, 30));
        let mut progress = ImportProgress::default();
        import_async(&manager, 1, &photos, None, &mut progress).await.unwrap();
        assert_eq!(progress.imported_bytes, (0..50).sum::<u64>());
    }
}

// ---------------------------------------------------------------------------------------------
// #[protected]: the default handler, errors without Classify, no state
// ---------------------------------------------------------------------------------------------

#[derive(Debug, thiserror::Error, Classify)]
enum GlobalRecorded {
    #[error("recorded by the global handler")]
    #[classify(abort, code = "E_CONTRACT_GLOBAL_HANDLER")]
    Failed,
    #[error(transparent)]
    #[classify(transparent)]
    Store(#[from] Error),
}

#[protected(manager = mgr)]
fn records_globally(mgr: &FailsafeManager) -> Result<(), GlobalRecorded> {
    Err(GlobalRecorded::Failed)
}

#[test]
fn protected_records_errors_with_the_global_handler_by_default() {
    let (_tmp, manager) = store();
    let before =
        ErrorHandler::global().statistics().by_code.get("E_CONTRACT_GLOBAL_HANDLER").copied();
    assert!(records_globally(&manager).is_err());
    let after = ErrorHandler::global().statistics().by_code["E_CONTRACT_GLOBAL_HANDLER"];
    assert_eq!(after, before.unwrap_or(0) + 1);
    // No state parameter: states and progress are still checkpointed.
    let id = format!("{}::records_globally", module_path!());
    let failed: Checkpoint<()> = manager.load_checkpoint(&id).unwrap().unwrap();
    assert_eq!(failed.state, ProcessState::Failed);
}

/// An error type that does not implement `Classify`.
#[derive(Debug, thiserror::Error)]
enum Unclassified {
    #[error("plain failure")]
    Plain,
    #[error(transparent)]
    Store(#[from] Error),
}

#[protected(manager = mgr, errors = handler, id = "unclassified")]
fn plain_failure(mgr: &FailsafeManager, handler: &ErrorHandler) -> Result<(), Unclassified> {
    Err(Unclassified::Plain)
}

#[test]
fn protected_records_errors_that_do_not_implement_classify() {
    let (_tmp, manager) = store();
    let handler = ErrorHandler::new(10);
    assert!(matches!(plain_failure(&manager, &handler), Err(Unclassified::Plain)));
    let records = handler.history();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].message, "plain failure");
}

// ---------------------------------------------------------------------------------------------
// Logging: tracing targets
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn events_go_to_the_resilience_retry_errors_and_failsafe_targets() {
    use tracing_subscriber::util::SubscriberInitExt;

    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing_subscriber::filter::LevelFilter::TRACE)
        .with_target(true)
        .with_ansi(false)
        .finish();
    let guard = subscriber.set_default();

    let manager = RetryManager::builder().sleeper(NoSleep).build();
    let _: Result<(), &str> =
        manager.retry_with_backoff("logged", &RetryConfig::new(1), || Err("down"));
    ErrorHandler::new(10).handle_error(&ImportError::Fatal, ErrorContext::new());
    let (tmp, store) = store();
    let file = tmp.path().join("logged.db");
    std::fs::write(&file, "x").unwrap();
    store.create_backup(&file).unwrap();
    assert!(store.create_backup(tmp.path().join("absent")).is_err());
    let _ = import(&store, 99, &[1, 2, 3], Some(2), &mut ImportProgress::default());
    seen();
    drop(guard);

    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    for target in ["resilience::retry", "resilience::errors", "resilience::failsafe"] {
        assert!(log.contains(target), "no event under `{target}` in:\n{log}");
    }
}

// ---------------------------------------------------------------------------------------------
// DESIGN.md's opening example, as written (on the global store)
// ---------------------------------------------------------------------------------------------

mod design_sample {
    use std::sync::atomic::{AtomicBool, Ordering};

    use resilience::{Checkpointable, Classify, checkpointed, retry};

    pub struct Photo {
        pub bytes: u64,
        pub damaged: AtomicBool,
    }

    #[derive(Debug, thiserror::Error, Classify)]
    pub enum ImportError {
        #[error("photo is damaged")]
        #[classify(skip)]
        Damaged,
        #[error(transparent)]
        #[classify(transparent)]
        Store(#[from] resilience::Error),
    }

    #[derive(Debug, Default, serde::Serialize, serde::Deserialize, Checkpointable)]
    pub struct ImportProgress {
        #[checkpoint(cursor)]
        pub done: u64, // items completed; managed by the tracked loop
        #[checkpoint(total)]
        pub total: u64, // optional, gives the progress ratio
        pub imported_bytes: u64,
    }

    #[retry(max = 3, initial = "50ms")]
    fn upload(photo: &Photo) -> Result<u64, ImportError> {
        if photo.damaged.swap(false, Ordering::Relaxed) {
            return Err(ImportError::Damaged); // damaged once: the next run succeeds
        }
        Ok(photo.bytes)
    }

    #[checkpointed(every = 10, id = "import-{batch}")]
    pub fn import(
        batch: u32,
        photos: &[Photo],
        progress: &mut ImportProgress,
    ) -> Result<(), ImportError> {
        progress.total = photos.len() as u64;
        for photo in photos {
            // resumes after the last checkpointed item
            progress.imported_bytes += upload(photo)?;
        }
        Ok(())
    }
}

#[test]
fn the_design_example_skips_a_damaged_photo_and_goes_on() {
    use design_sample::{ImportProgress, Photo, import};
    let global = global_store();
    let photos: Vec<Photo> = (0..50)
        .map(|i| Photo { bytes: i, damaged: std::sync::atomic::AtomicBool::new(i == 37) })
        .collect();

    // `ImportError::Damaged` classifies as `skip`: photo 37 is recorded and skipped, and the
    // import goes on with photo 38.
    let mut progress = ImportProgress::default();
    import(7001, &photos, &mut progress).unwrap();
    assert_eq!((progress.done, progress.total), (50, 50));
    assert_eq!(progress.imported_bytes, (0..50).sum::<u64>() - 37);
    let skipped = global.skipped("import-7001").unwrap();
    assert_eq!(skipped.len(), 1);
    assert_eq!((skipped[0].position, skipped[0].message.as_str()), (37, "photo is damaged"));
    let done: Checkpoint<ImportProgress> = global.load_checkpoint("import-7001").unwrap().unwrap();
    assert_eq!((done.state, done.cursor), (ProcessState::Completed, 50));
    global.discard("import-7001").unwrap();
}
