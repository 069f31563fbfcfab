//! Error classification and recording: `Classify` impls, `ErrorHandler`, `ErrorContext`.

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;
use std::io::{self, ErrorKind};
use std::path::PathBuf;
use std::time::SystemTime;

use resilience::__private::{RecordAny, RecordClassified, RecordProbe};
use resilience::{
    Classify, Error, ErrorContext, ErrorHandler, ErrorRecord, ErrorStats, Recovery, Severity,
};

// ---------------------------------------------------------------------------------------------
// Test error types

/// A hand-classified error with an optional source.
#[derive(Debug)]
struct Upload {
    photo: u32,
    source: Option<Box<dyn StdError + Send + Sync + 'static>>,
}

impl fmt::Display for Upload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "upload of photo {} failed", self.photo)
    }
}

impl StdError for Upload {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn StdError + 'static))
    }
}

impl Classify for Upload {
    fn recovery(&self) -> Recovery {
        Recovery::Skip
    }
    fn error_code(&self) -> Cow<'_, str> {
        Cow::Owned(format!("E_UPLOAD_{}", self.photo & 1))
    }
    fn category(&self) -> Cow<'_, str> {
        Cow::Borrowed("network")
    }
    fn severity(&self) -> Severity {
        if self.photo.is_multiple_of(2) { Severity::Warning } else { Severity::Critical }
    }
}

/// An error that does not implement `Classify`, wrapping another one.
#[derive(Debug)]
struct Wrapper(&'static str, Option<io::Error>);

impl fmt::Display for Wrapper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl StdError for Wrapper {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.1.as_ref().map(|e| e as &(dyn StdError + 'static))
    }
}

fn upload(photo: u32) -> Upload {
    Upload { photo, source: None }
}

fn pairs(entries: &[(&str, &str)]) -> Vec<(String, String)> {
    entries.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

// ---------------------------------------------------------------------------------------------
// Classification

#[test]
fn transient_io_kinds_are_retried_with_exact_codes() {
    let cases = [
        (ErrorKind::Interrupted, "io::Interrupted"),
        (ErrorKind::WouldBlock, "io::WouldBlock"),
        (ErrorKind::TimedOut, "io::TimedOut"),
        (ErrorKind::ConnectionReset, "io::ConnectionReset"),
        (ErrorKind::ConnectionAborted, "io::ConnectionAborted"),
        (ErrorKind::ConnectionRefused, "io::ConnectionRefused"),
        (ErrorKind::BrokenPipe, "io::BrokenPipe"),
        (ErrorKind::ResourceBusy, "io::ResourceBusy"),
    ];
    for (kind, code) in cases {
        for error in [io::Error::from(kind), io::Error::new(kind, "with a message")] {
            assert_eq!(error.recovery(), Recovery::Retry, "{kind:?}");
            assert_eq!(error.error_code(), code);
            assert_eq!(error.category(), "io");
            assert_eq!(error.severity(), Severity::Warning, "{kind:?}");
        }
    }
}

#[test]
fn other_io_kinds_abort_with_exact_codes() {
    let cases = [
        (ErrorKind::NotFound, "io::NotFound", Severity::Error),
        (ErrorKind::PermissionDenied, "io::PermissionDenied", Severity::Error),
        (ErrorKind::AlreadyExists, "io::AlreadyExists", Severity::Error),
        (ErrorKind::InvalidInput, "io::InvalidInput", Severity::Error),
        (ErrorKind::InvalidData, "io::InvalidData", Severity::Error),
        (ErrorKind::UnexpectedEof, "io::UnexpectedEof", Severity::Error),
        (ErrorKind::AddrInUse, "io::AddrInUse", Severity::Error),
        (ErrorKind::Unsupported, "io::Unsupported", Severity::Error),
        (ErrorKind::Other, "io::Other", Severity::Error),
        (ErrorKind::StorageFull, "io::StorageFull", Severity::Critical),
        (ErrorKind::OutOfMemory, "io::OutOfMemory", Severity::Critical),
    ];
    for (kind, code, severity) in cases {
        let error = io::Error::new(kind, "boom");
        assert_eq!(error.recovery(), Recovery::Abort, "{kind:?}");
        assert_eq!(error.error_code(), code);
        assert_eq!(error.category(), "io");
        assert_eq!(error.severity(), severity, "{kind:?}");
    }
}

#[cfg(target_os = "linux")]
#[test]
fn os_errors_are_classified_by_their_kind() {
    const ECONNREFUSED: i32 = 111;
    const ENOENT: i32 = 2;
    let refused = io::Error::from_raw_os_error(ECONNREFUSED);
    assert_eq!(refused.recovery(), Recovery::Retry);
    assert_eq!(refused.error_code(), "io::ConnectionRefused");
    let missing = io::Error::from_raw_os_error(ENOENT);
    assert_eq!(missing.recovery(), Recovery::Abort);
    assert_eq!(missing.error_code(), "io::NotFound");
}

#[test]
fn resilience_errors_retry_only_when_locked() {
    let id = || "import-7".to_string();
    let cases = [
        (
            Error::Locked { operation_id: id() },
            "resilience::Locked",
            Recovery::Retry,
            Severity::Warning,
        ),
        (
            Error::Io { path: PathBuf::from("a.db"), source: io::Error::from(ErrorKind::TimedOut) },
            "resilience::Io",
            Recovery::Abort,
            Severity::Error,
        ),
        (
            Error::Corrupt { path: PathBuf::from("a.ckpt"), reason: "bad checksum".into() },
            "resilience::Corrupt",
            Recovery::Abort,
            Severity::Critical,
        ),
        (
            Error::SchemaMismatch { operation_id: id(), expected: 1, found: 2 },
            "resilience::SchemaMismatch",
            Recovery::Abort,
            Severity::Error,
        ),
        (
            Error::NothingToResume { operation_id: id() },
            "resilience::NothingToResume",
            Recovery::Abort,
            Severity::Error,
        ),
        (
            Error::BackupMissing { path: PathBuf::from("gone.db") },
            "resilience::BackupMissing",
            Recovery::Abort,
            Severity::Error,
        ),
        (
            Error::Codec { operation_id: id(), reason: "eof".into() },
            "resilience::Codec",
            Recovery::Abort,
            Severity::Error,
        ),
        (
            Error::InvalidConfig("jitter must be in [0, 1]".into()),
            "resilience::InvalidConfig",
            Recovery::Abort,
            Severity::Error,
        ),
        (
            Error::Panicked { operation_id: id(), message: "oops".into() },
            "resilience::Panicked",
            Recovery::Abort,
            Severity::Critical,
        ),
    ];
    for (error, code, recovery, severity) in cases {
        assert_eq!(error.error_code(), code);
        assert_eq!(error.recovery(), recovery, "{code}");
        assert_eq!(error.severity(), severity, "{code}");
        assert_eq!(error.category(), "resilience");
    }
}

#[test]
fn references_and_boxes_classify_like_their_target() {
    fn code<C: Classify>(error: C) -> String {
        error.error_code().into_owned()
    }
    let error = upload(3);
    let boxed = Box::new(upload(3));
    assert_eq!(code(&error), "E_UPLOAD_1");
    assert_eq!(boxed.severity(), Severity::Critical);
    assert_eq!(std::sync::Arc::new(upload(2)).recovery(), Recovery::Skip);
}

#[test]
fn recovery_and_severity_display_lower_case() {
    assert_eq!(Recovery::Retry.to_string(), "retry");
    assert_eq!(Recovery::Abort.as_str(), "abort");
    assert_eq!(Severity::Critical.to_string(), "critical");
    assert_eq!(Severity::Info.as_str(), "info");
}

// ---------------------------------------------------------------------------------------------
// ErrorContext

#[test]
fn context_keeps_insertion_order_and_replaces_in_place() {
    let context = ErrorContext::new()
        .with("operation", "import-7")
        .with(String::from("item"), 42_u64)
        .with("path", PathBuf::from("in/photo.jpg").display())
        .with("item", 43);
    assert_eq!(
        context.entries(),
        pairs(&[("operation", "import-7"), ("item", "43"), ("path", "in/photo.jpg")])
    );
    assert_eq!(context.get("item"), Some("43"));
    assert_eq!(context.get("missing"), None);
    assert_eq!(context.len(), 3);
    assert_eq!(context.iter().map(|(k, _)| k).collect::<Vec<_>>(), ["operation", "item", "path"]);
    assert!(ErrorContext::default().is_empty());
}

// ---------------------------------------------------------------------------------------------
// ErrorHandler

#[test]
fn handle_error_fills_every_field() {
    let handler = ErrorHandler::new(10);
    let error = Upload {
        photo: 4,
        source: Some(Box::new(Wrapper("socket closed", Some(io::Error::other("reset by peer"))))),
    };
    let context = ErrorContext::new().with("operation", "import-7").with("item", 4).with("try", 2);

    let before = SystemTime::now();
    let record = handler.handle_error(&error, context);
    let after = SystemTime::now();

    assert_eq!(record.error_code, "E_UPLOAD_0");
    assert_eq!(record.message, "upload of photo 4 failed");
    assert_eq!(record.category, "network");
    assert_eq!(record.severity, Severity::Warning);
    assert_eq!(record.recovery, Recovery::Skip);
    assert_eq!(record.context, pairs(&[("operation", "import-7"), ("item", "4"), ("try", "2")]));
    assert_eq!(record.chain, ["socket closed", "reset by peer"]);
    assert!(before <= record.occurred_at && record.occurred_at <= after);
    assert_eq!(handler.history(), [record]);
}

#[test]
fn handle_error_accepts_unsized_errors() {
    let handler = ErrorHandler::new(10);
    let error: Box<dyn ClassifiedError> = Box::new(upload(1));
    let record = handler.handle_error(&*error, ErrorContext::new());
    assert_eq!(record.error_code, "E_UPLOAD_1");
    assert!(record.chain.is_empty());
}

trait ClassifiedError: StdError + Classify {}
impl<T: StdError + Classify> ClassifiedError for T {}

#[test]
fn history_is_bounded_oldest_first_and_counts_survive_rollover() {
    let handler = ErrorHandler::new(3);
    for photo in 0..10 {
        handler.handle_error(&upload(photo), ErrorContext::new().with("photo", photo));
    }

    let history = handler.history();
    let photos: Vec<&str> = history.iter().map(|r| r.context[0].1.as_str()).collect();
    assert_eq!(photos, ["7", "8", "9"]);

    let stats = handler.statistics();
    assert_eq!(stats.total_errors, 10);
    assert_eq!(stats.by_code["E_UPLOAD_0"], 5);
    assert_eq!(stats.by_code["E_UPLOAD_1"], 5);
    assert_eq!(stats.by_category["network"], 10);
    assert_eq!(stats.by_severity[&Severity::Warning], 5);
    assert_eq!(stats.by_severity[&Severity::Critical], 5);
    assert_eq!(stats.by_recovery[&Recovery::Skip], 10);
    assert_eq!(stats.by_severity.get(&Severity::Info), None);
}

#[test]
fn zero_history_keeps_nothing_but_counts() {
    let handler = ErrorHandler::new(0);
    for photo in 0..4 {
        handler.handle_error(&upload(photo), ErrorContext::new());
    }
    assert!(handler.history().is_empty());
    assert_eq!(handler.statistics().total_errors, 4);
}

#[test]
fn clear_history_empties_history_and_zeroes_statistics() {
    let handler = ErrorHandler::new(5);
    handler.handle_error(&upload(1), ErrorContext::new());
    handler.handle_error(&io::Error::from(ErrorKind::TimedOut), ErrorContext::new());

    handler.clear_history();
    assert!(handler.history().is_empty());
    assert_eq!(handler.statistics(), ErrorStats::default());

    handler.handle_error(&upload(2), ErrorContext::new());
    assert_eq!(handler.history().len(), 1);
    assert_eq!(handler.statistics().total_errors, 1);
    assert_eq!(handler.statistics().by_code.len(), 1);
}

#[test]
fn concurrent_handling_counts_exactly() {
    const THREADS: u32 = 8;
    const PER_THREAD: u32 = 500;
    let handler = ErrorHandler::new(100);

    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            let handler = &handler;
            scope.spawn(move || {
                for i in 0..PER_THREAD {
                    let context = ErrorContext::new().with("thread", thread).with("i", i);
                    if i % 4 == 0 {
                        handler.handle_error(&io::Error::from(ErrorKind::NotFound), context);
                    } else {
                        handler.handle_error(&upload(i), context);
                    }
                }
            });
        }
    });

    let total = u64::from(THREADS * PER_THREAD);
    let io_errors = u64::from(THREADS * PER_THREAD / 4);
    let even_uploads = u64::from(THREADS * (PER_THREAD / 4)); // i % 4 == 2
    let odd_uploads = u64::from(THREADS * (PER_THREAD / 2)); // i odd

    let stats = handler.statistics();
    assert_eq!(stats.total_errors, total);
    assert_eq!(stats.by_code["io::NotFound"], io_errors);
    assert_eq!(stats.by_code["E_UPLOAD_0"], even_uploads);
    assert_eq!(stats.by_code["E_UPLOAD_1"], odd_uploads);
    assert_eq!(stats.by_code.values().sum::<u64>(), total);
    assert_eq!(stats.by_category["io"], io_errors);
    assert_eq!(stats.by_category["network"], total - io_errors);
    assert_eq!(stats.by_severity[&Severity::Error], io_errors);
    assert_eq!(stats.by_severity[&Severity::Warning], even_uploads);
    assert_eq!(stats.by_severity[&Severity::Critical], odd_uploads);
    assert_eq!(stats.by_recovery[&Recovery::Abort], io_errors);
    assert_eq!(stats.by_recovery[&Recovery::Skip], total - io_errors);
    assert_eq!(handler.history().len(), 100);
}

#[test]
fn handle_any_classifies_io_errors_directly_and_through_sources() {
    let handler = ErrorHandler::new(10);

    let direct =
        handler.handle_any(&io::Error::new(ErrorKind::TimedOut, "slow"), ErrorContext::new());
    assert_eq!(direct.error_code, "io::TimedOut");
    assert_eq!(direct.category, "io");
    assert_eq!(direct.recovery, Recovery::Retry);
    assert_eq!(direct.severity, Severity::Warning);
    assert_eq!(direct.message, "slow");

    let wrapped =
        Wrapper("fetching the index failed", Some(io::Error::from(ErrorKind::BrokenPipe)));
    let record = handler.handle_any(&wrapped, ErrorContext::new().with("url", "https://x"));
    assert_eq!(record.error_code, "io::BrokenPipe");
    assert_eq!(record.recovery, Recovery::Retry);
    assert_eq!(record.message, "fetching the index failed");
    assert_eq!(record.chain, [io::Error::from(ErrorKind::BrokenPipe).to_string()]);
    assert_eq!(record.context, pairs(&[("url", "https://x")]));

    // Two levels down.
    let deep = Upload { photo: 1, source: Some(Box::new(wrapped)) };
    assert_eq!(handler.handle_any(&deep, ErrorContext::new()).error_code, "io::BrokenPipe");
}

#[test]
fn handle_any_uses_the_outermost_known_error() {
    let handler = ErrorHandler::new(10);
    let error =
        Error::Io { path: PathBuf::from("a.db"), source: io::Error::from(ErrorKind::TimedOut) };
    let record = handler.handle_any(&error, ErrorContext::new());
    assert_eq!(record.error_code, "resilience::Io");
    assert_eq!(record.category, "resilience");
    assert_eq!(record.recovery, Recovery::Abort);
    assert_eq!(record.chain.len(), 1);

    let locked = Error::Locked { operation_id: "nightly".into() };
    assert_eq!(handler.handle_any(&locked, ErrorContext::new()).recovery, Recovery::Retry);
}

#[test]
fn handle_any_records_unknown_errors_as_unclassified() {
    let handler = ErrorHandler::new(10);
    let record = handler.handle_any(&Wrapper("no idea", None), ErrorContext::new());
    assert_eq!(record.error_code, "unclassified");
    assert_eq!(record.category, "unclassified");
    assert_eq!(record.severity, Severity::Error);
    assert_eq!(record.recovery, Recovery::Abort);
    assert_eq!(record.message, "no idea");
    assert_eq!(handler.statistics().by_code["unclassified"], 1);
}

#[test]
fn global_handler_keeps_one_thousand_records() {
    // The only test in this binary that touches the global handler.
    let handler = ErrorHandler::global();
    assert!(std::ptr::eq(handler, ErrorHandler::global()));
    handler.clear_history();
    for i in 0..1005 {
        handler.handle_error(&upload(i), ErrorContext::new().with("i", i));
    }
    let history = handler.history();
    assert_eq!(history.len(), 1000);
    assert_eq!(history[0].context, pairs(&[("i", "5")]));
    assert_eq!(history[999].context, pairs(&[("i", "1004")]));
    assert_eq!(handler.statistics().total_errors, 1005);
    assert_eq!(handler.max_history(), 1000);
    assert_eq!(ErrorHandler::default().max_history(), 1000);
}

// ---------------------------------------------------------------------------------------------
// The probe `#[protected]` expands to. The exact snippet is tested, so the lint that a literal
// `&&` trips is allowed; `record_error!` wraps it for generated code.

#[test]
#[allow(clippy::needless_borrow)]
fn probe_records_classified_errors_through_classify() {
    let handler = ErrorHandler::new(10);
    let err = upload(3);
    let ctx = ErrorContext::new().with("item", 3);
    let record = (&&RecordProbe(&err)).record(&handler, ctx);
    assert_eq!(record.error_code, "E_UPLOAD_1");
    assert_eq!(record.category, "network");
    assert_eq!(record.recovery, Recovery::Skip);
    assert_eq!(record.context, pairs(&[("item", "3")]));

    let err = io::Error::from(ErrorKind::ConnectionReset);
    let record = (&&RecordProbe(&err)).record(&handler, ErrorContext::new());
    assert_eq!(record.error_code, "io::ConnectionReset");
}

#[test]
#[allow(clippy::needless_borrow)]
fn probe_falls_back_to_handle_any_for_other_errors() {
    let handler = ErrorHandler::new(10);

    let err = Wrapper("plain", None);
    let record = (&&RecordProbe(&err)).record(&handler, ErrorContext::new());
    assert_eq!(record.error_code, "unclassified");
    assert_eq!(record.message, "plain");

    let err = Wrapper("wrapped", Some(io::Error::from(ErrorKind::Interrupted)));
    let record = (&&RecordProbe(&err)).record(&handler, ErrorContext::new());
    assert_eq!(record.error_code, "io::Interrupted");
    assert_eq!(record.recovery, Recovery::Retry);
    assert_eq!(handler.statistics().total_errors, 2);
}

#[test]
fn record_error_macro_dispatches_like_the_probe() {
    let handler = ErrorHandler::new(10);
    let classified = upload(2);
    let record = resilience::__private::record_error!(&handler, &classified, ErrorContext::new());
    assert_eq!(record.error_code, "E_UPLOAD_0");

    let plain = Wrapper("plain", Some(io::Error::from(ErrorKind::WouldBlock)));
    let record =
        resilience::__private::record_error!(&handler, &plain, ErrorContext::new().with("k", 1));
    assert_eq!(record.error_code, "io::WouldBlock");
    assert_eq!(record.context, pairs(&[("k", "1")]));
}

/// Inside generic code the bounds in scope decide: with `E: Classify` the classified path.
fn record_generic<E: StdError + Classify + 'static>(handler: &ErrorHandler, error: &E) -> String {
    resilience::__private::record_error!(handler, error, ErrorContext::new()).error_code
}

/// Without `E: Classify` in scope, the fallback (which still finds io errors).
fn record_unbounded<E: StdError + 'static>(handler: &ErrorHandler, error: &E) -> String {
    resilience::__private::record_error!(handler, error, ErrorContext::new()).error_code
}

#[test]
fn record_error_macro_in_generic_code_follows_the_bounds() {
    let handler = ErrorHandler::new(10);
    assert_eq!(record_generic(&handler, &upload(1)), "E_UPLOAD_1");
    assert_eq!(record_unbounded(&handler, &upload(1)), "unclassified");
    assert_eq!(record_unbounded(&handler, &io::Error::from(ErrorKind::TimedOut)), "io::TimedOut");
}

// ---------------------------------------------------------------------------------------------
// Trait surface

#[test]
fn public_types_have_the_promised_traits() {
    fn serialize<T: serde::Serialize>() {}
    fn send_sync<T: Send + Sync>() {}
    fn clone_debug<T: Clone + fmt::Debug>() {}
    serialize::<ErrorRecord>();
    serialize::<ErrorStats>();
    send_sync::<ErrorHandler>();
    send_sync::<ErrorRecord>();
    clone_debug::<ErrorRecord>();
    clone_debug::<ErrorContext>();
    clone_debug::<ErrorStats>();

    let handler = ErrorHandler::new(1);
    handler.handle_error(&upload(1), ErrorContext::new());
    let debug = format!("{handler:?}");
    assert!(debug.contains("max_history: 1") && debug.contains("total_errors: 1"), "{debug}");
}
