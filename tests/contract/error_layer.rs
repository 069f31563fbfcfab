//! Error layer: Classify, Recovery, Severity, ErrorHandler, ErrorContext, ErrorRecord, ErrorStats.

use super::*;

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
