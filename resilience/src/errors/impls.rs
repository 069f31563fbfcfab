//! `Classify` for the error types the runtime itself produces.

use std::borrow::Cow;
use std::io::ErrorKind;

use super::{Classify, Recovery, Severity};

/// I/O errors are classified by their [`ErrorKind`].
///
/// | kind | recovery | severity |
/// |---|---|---|
/// | `Interrupted`, `WouldBlock`, `TimedOut`, `ConnectionReset`, `ConnectionAborted`, `ConnectionRefused`, `BrokenPipe`, `ResourceBusy` | `Retry` | `Warning` |
/// | `OutOfMemory`, `StorageFull`, `QuotaExceeded`, `ReadOnlyFilesystem` | `Abort` | `Critical` |
/// | every other kind | `Abort` | `Error` |
///
/// The code is `io::` followed by the kind's `Debug` name (`"io::TimedOut"`,
/// `"io::NotFound"`); the category is `"io"`.
///
/// ```
/// use resilience::{Classify, Recovery};
/// use std::io::{Error, ErrorKind};
///
/// let error = Error::new(ErrorKind::ConnectionReset, "peer went away");
/// assert_eq!(error.recovery(), Recovery::Retry);
/// assert_eq!(error.error_code(), "io::ConnectionReset");
/// assert_eq!(Error::from(ErrorKind::NotFound).recovery(), Recovery::Abort);
/// ```
impl Classify for std::io::Error {
    fn recovery(&self) -> Recovery {
        if is_transient(self.kind()) { Recovery::Retry } else { Recovery::Abort }
    }

    fn error_code(&self) -> Cow<'_, str> {
        Cow::Owned(format!("io::{:?}", self.kind()))
    }

    fn category(&self) -> Cow<'_, str> {
        Cow::Borrowed("io")
    }

    fn severity(&self) -> Severity {
        match self.kind() {
            kind if is_transient(kind) => Severity::Warning,
            // The machine, not this operation, is out of something: nothing else will succeed.
            ErrorKind::OutOfMemory
            | ErrorKind::StorageFull
            | ErrorKind::QuotaExceeded
            | ErrorKind::ReadOnlyFilesystem => Severity::Critical,
            _ => Severity::Error,
        }
    }
}

fn is_transient(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::Interrupted
            | ErrorKind::WouldBlock
            | ErrorKind::TimedOut
            | ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::ConnectionRefused
            | ErrorKind::BrokenPipe
            | ErrorKind::ResourceBusy
    )
}

/// The runtime's own errors: `Locked` (another run holds the operation) is worth retrying,
/// everything else aborts.
///
/// | variant | recovery | severity |
/// |---|---|---|
/// | `Locked` | `Retry` | `Warning` |
/// | `Corrupt`, `Panicked`, `RestoreFailed` | `Abort` | `Critical` |
/// | `SourceChanged` | `Abort` | `Warning` |
/// | `Paused` (a pause was asked for: nothing is wrong) | `Abort` | `Info` |
/// | `LeaseLost` | `Abort` | `Warning` |
/// | every other variant | `Abort` | `Error` |
///
/// The code is `resilience::` followed by the variant name (`"resilience::Locked"`); the
/// category is `"resilience"`.
///
/// ```
/// use resilience::{Classify, Error, Recovery};
///
/// let error = Error::Locked { operation_id: "import-7".into() };
/// assert_eq!(error.recovery(), Recovery::Retry);
/// assert_eq!(error.error_code(), "resilience::Locked");
/// ```
impl Classify for crate::Error {
    fn recovery(&self) -> Recovery {
        self.classification().1
    }

    fn error_code(&self) -> Cow<'_, str> {
        Cow::Borrowed(self.classification().0)
    }

    fn category(&self) -> Cow<'_, str> {
        Cow::Borrowed("resilience")
    }

    fn severity(&self) -> Severity {
        self.classification().2
    }
}

impl crate::Error {
    /// Code, recovery and severity, in one exhaustive match so that a new variant cannot be left
    /// unclassified.
    fn classification(&self) -> (&'static str, Recovery, Severity) {
        use Recovery::{Abort, Retry};
        use Severity::{Critical, Error, Info, Warning};
        match self {
            crate::Error::Io { .. } => ("resilience::Io", Abort, Error),
            crate::Error::Corrupt { .. } => ("resilience::Corrupt", Abort, Critical),
            crate::Error::SchemaMismatch { .. } => ("resilience::SchemaMismatch", Abort, Error),
            crate::Error::Locked { .. } => ("resilience::Locked", Retry, Warning),
            crate::Error::NothingToResume { .. } => ("resilience::NothingToResume", Abort, Error),
            crate::Error::BackupMissing { .. } => ("resilience::BackupMissing", Abort, Error),
            crate::Error::SourceChanged { .. } => ("resilience::SourceChanged", Abort, Warning),
            crate::Error::Unsupported { .. } => ("resilience::Unsupported", Abort, Error),
            crate::Error::Codec { .. } => ("resilience::Codec", Abort, Error),
            crate::Error::InvalidConfig(_) => ("resilience::InvalidConfig", Abort, Error),
            crate::Error::InvalidOperationId { .. } => {
                ("resilience::InvalidOperationId", Abort, Error)
            }
            crate::Error::Panicked { .. } => ("resilience::Panicked", Abort, Critical),
            crate::Error::InputChanged { .. } => ("resilience::InputChanged", Abort, Error),
            crate::Error::LeaseLost { .. } => ("resilience::LeaseLost", Abort, Warning),
            crate::Error::Paused { .. } => ("resilience::Paused", Abort, Info),
            crate::Error::SimulatedCrash { .. } => ("resilience::SimulatedCrash", Abort, Error),
            crate::Error::Database { retryable: true, .. } => {
                ("resilience::Database", Retry, Warning)
            }
            crate::Error::Database { .. } => ("resilience::Database", Abort, Error),
            crate::Error::RestoreFailed { .. } => ("resilience::RestoreFailed", Abort, Critical),
        }
    }
}
